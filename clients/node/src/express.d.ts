// Types for @latch-sessions/node/express.

import type {Request, Response, NextFunction, RequestHandler} from 'express'
import type {LatchClient, LatchError, Session, Issued, Tokens} from './index.js'
export * from './index.js'

export const DEFAULT_COOKIE_NAME: '__Host-latch'
export const DEFAULT_REFRESH_COOKIE_NAME: '__Secure-latch-refresh'
export const CSRF_HEADER: 'x-csrf-token'
export const CSRF_FIELD: 'csrf_token'

export interface LatchOptions {
  /** A LatchClient to share; otherwise one is made from url/apiKey/timeout (or LATCH_URL, LATCH_API_KEY). */
  client?: LatchClient
  url?: string
  apiKey?: string
  timeout?: number
  /** Session cookie name (default "__Host-latch"; a __Host- name needs Path=/ and no Domain). */
  cookieName?: string
  /** Sends the cookie to subdomains too. Needs a non-__Host- name. */
  cookieDomain?: string
  /** Default "/". */
  cookiePath?: string
  /** Default "lax". "none" requires Secure. */
  sameSite?: 'lax' | 'strict' | 'none'
  /** Drops Secure. Never in production; needs a name without __Host-/__Secure-. */
  insecureCookieForDevelopmentOnly?: boolean
  /** Accept "Authorization: Bearer <access token>": verified by latch per request, or offline by JWKS. Default false. */
  accessTokens?: false | 'online' | 'offline'
  /** Offline verification: the expected iss (default: from latch's metadata). */
  issuer?: string
  /** Offline verification: the expected aud (default "latch"). */
  audience?: string
  /** Offline verification: the JWKS URL (default: from latch's metadata). */
  jwksURI?: string
  /** Origins other than the request's own that may send unsafe cookie requests. */
  trustedOrigins?: string[]
  /** "METHOD /path" or "/path" entries exempt from the cross-origin check (form_post callbacks). */
  crossOriginBypass?: string[]
  /** Limit for a url-encoded body read to find csrf_token (default 10 MiB). */
  maxFormSize?: number
  /** Cached validation by docs/protocol.md §4 (default: on when latch serves /v1/events). */
  cache?: boolean | CacheOptions
  /** SPA refresh cookie (default "__Secure-latch-refresh"), scoped to refreshPath. */
  refreshCookieName?: string
  /** The app's refresh route (default "/auth/refresh"). */
  refreshPath?: string
  /**
   * The URL a client addressed, the htu its DPoP proofs name. Default: the
   * request's scheme and Host (X-Forwarded-Proto/-Host only from a peer
   * Express's "trust proxy" trusts) and its path.
   */
  dpopURL?: (req: Request) => string
  /** Offline DPoP: where proofs' jti are remembered (default: a LocalReplayCache, per process). */
  dpopReplayCache?: import('./index.js').ReplayCache
  /** For cookie sessions that fail requireRecentAuth: render a page asking for the password again. */
  reauthenticate?: (req: Request, res: Response, need: {maxAge?: number; acrValues?: string[]}) => void
  /** Answers refused requests; default: status and its standard text. */
  onError?: (err: LatchError, req: Request, res: Response, next: NextFunction) => void
}

export interface CacheOptions {
  /** A stream silent for longer is not trusted (default 250 ms). */
  staleAfter?: number
  /** Most entries kept (default 100000). */
  maxEntries?: number
}

/** req.latch */
export interface RequestLatch {
  session: Session | null
  method: 'cookie' | 'bearer' | null
  /** Verified access-token claims (offline bearer). */
  claims: Record<string, unknown> | null
  /** Why a presented credential failed. */
  error: LatchError | null
  /** A masked CSRF token: the session's, or an anonymous one for login forms. */
  csrfToken(): string
  /** Fixation-safe login: revokes the carried token, sets the cookie. */
  login(p: {subject: string; data?: Record<string, unknown>; claims?: Record<string, unknown>; acr?: string; amr?: string[]}): Promise<Issued>
  /** Revokes the session, expires the cookie, sends Clear-Site-Data. */
  logout(): Promise<void>
  /** Revokes every session of the user, this one included. */
  logoutEverywhere(): Promise<number>
  /** Fresh secrets after a privilege change. */
  renew(p?: {claims?: Record<string, unknown>; authTime?: Date | string; acr?: string; amr?: string[]}): Promise<Issued>
  /** Revokes the user's other sessions. */
  revokeOthers(): Promise<number>
  /** Seconds before the idle or absolute deadline. */
  idleTimeLeft(): number
  /** The request's DPoP proof with its method and URL, for createSession's dpop; undefined without one. */
  dpopProof(): import('./index.js').DPoPRelay | undefined
}

declare global {
  namespace Express {
    interface Request {
      latch: RequestLatch
    }
  }
}

export interface LatchMiddleware extends RequestHandler {
  /** 401 unless the request has a session. */
  requireSession: RequestHandler
  /**
   * Step-up (RFC 9470): 401 insufficient_user_authentication (with the
   * RFC 9470 challenge for Bearer/DPoP requests) unless the user
   * authenticated within maxAge seconds and/or with one of the acr values.
   */
  requireRecentAuth(need: {maxAge?: number; acr?: string | string[]; reauthenticate?: LatchOptions['reauthenticate']}): RequestHandler
  /** POST handler for the SPA refresh route: rotates the refresh cookie, answers a new access token. */
  refresh: RequestHandler
  client: LatchClient
  readonly options: {cookieName: string; refreshCookieName: string; refreshPath: string; secure: boolean}
  /** Stops the event stream of cached validation. */
  close(): void
}

export function latch(options?: LatchOptions): LatchMiddleware

/** SPA login: sets the refresh cookie (HttpOnly, scoped to refreshPath) and answers the access token as JSON. */
export function sendTokens(mw: LatchMiddleware, res: Response, tokens: Tokens, session?: Session): void
/** SPA logout: expires the refresh cookie. */
export function clearTokens(mw: LatchMiddleware, res: Response): void
export function defaultError(err: LatchError, req: Request, res: Response): void
