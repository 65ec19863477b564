// Types for @latch-sessions/node.

import type {Agent} from 'node:http'

/** A session as latch reports it. It holds no secret. */
export interface Session {
  id: string
  subject: string
  createdAt: Date
  authTime: Date
  lastSeenAt: Date
  /** Moves forward as the session is used. */
  idleExpiresAt: Date
  /** Never moves. */
  expiresAt: Date
  ip: string
  userAgent: string
  data: Record<string, unknown>
  claims: Record<string, unknown>
  version: number
  acr?: string
  amr?: string[]
}

export interface Tokens {
  accessToken: string
  refreshToken: string
  tokenType: 'Bearer' | 'DPoP'
  /** Seconds until the access token expires. */
  expiresIn: number
}

export interface Issued extends Tokens {
  session: Session
  sessionToken: string
  etag?: string
}

export interface Verified {
  session: Session
  /** A masking of the session's CSRF key (session tokens only). */
  csrfToken?: string
  /** Seconds latch allows the answer to be cached (0: not cacheable). */
  maxAge: number
  etag?: string
}

export interface KeyInfo {
  kid: string
  alg: string
  state: string
  createdAt?: Date
  activatesAt?: Date
  retiresAt?: Date
  removesAt?: Date
}

export interface ClientOptions {
  /** Base URL of latch serve. Default: LATCH_URL, else http://127.0.0.1:8080. */
  url?: string
  /** The back-channel API key (>= 32 characters). Default: LATCH_API_KEY. */
  apiKey?: string
  /** Per-call timeout in milliseconds (default 2000). */
  timeout?: number
  /** Keep-alive connections per host (default 64). */
  maxSockets?: number
  /** Your own http(s).Agent instead of the default keep-alive one. */
  agent?: Agent
  /** TLS options for the default https agent (ca, cert, key …). */
  tls?: Record<string, unknown>
  /** Allows plain http: to a non-loopback host. Only on a private network path. */
  insecureHTTP?: boolean
}

export interface ClientInfo {
  ip?: string
  userAgent?: string
}

/**
 * A client for latch serve. One per process; safe for concurrent use. The
 * API key and tokens never appear in an error message.
 */
export class LatchClient {
  constructor(options?: ClientOptions)
  readonly url: string
  close(): void
  createSession(p: {
    subject: string
    data?: Record<string, unknown>
    claims?: Record<string, unknown>
    ip?: string
    userAgent?: string
    /** The session token the browser carried before login: revoked (fixation). */
    replaceSessionToken?: string
    acr?: string
    amr?: string[]
    dpopJkt?: string
  }): Promise<Issued>
  verifySession(sessionToken: string, info?: ClientInfo): Promise<Verified>
  verifyAccessToken(accessToken: string, info?: ClientInfo & {maxAge?: number; acrValues?: string[]}): Promise<Verified>
  getSession(id: string): Promise<{session: Session; etag: string}>
  patchSession(id: string, data: Record<string, unknown>, opts?: {ifMatch?: string}): Promise<{session: Session; etag: string}>
  revokeSession(id: string): Promise<void>
  renewSession(id: string, opts?: {claims?: Record<string, unknown>; authTime?: Date | string; acr?: string; amr?: string[]}): Promise<Issued>
  listSessions(subject: string): Promise<Session[]>
  revokeSubject(subject: string, opts?: {except?: string}): Promise<number>
  rotateKeys(): Promise<{kid: string; activatesAt?: Date}>
  revokeKey(kid: string): Promise<{kid: string}>
  listKeys(): Promise<KeyInfo[]>
  refresh(refreshToken: string): Promise<Tokens>
  whoami(accessToken: string): Promise<{session: Session}>
  logout(accessToken: string): Promise<void>
  jwks(): Promise<{keys: Record<string, unknown>[]}>
  metadata(): Promise<{issuer: string; jwks_uri: string; [k: string]: unknown}>
  ready(): Promise<void>
}

/** Base class; branch on `code`. */
export class LatchError extends Error {
  code: string
  status?: number
}

/** latch answered a problem document; `code` is its code (api/problems.md). */
export class LatchProblemError extends LatchError {
  code:
    | 'bad_request' | 'unauthorized' | 'invalid_token' | 'expired' | 'revoked' | 'refresh_reuse' | 'csrf'
    | 'not_found' | 'conflict' | 'too_large' | 'rate_limited' | 'method_not_allowed' | 'unsupported_media_type'
    | 'invalid_dpop_proof' | 'use_dpop_nonce' | 'insufficient_user_authentication' | 'internal' | (string & {})
  status: number
  title: string
  detail: string
  type?: string
  /** Seconds, for rate_limited. */
  retryAfter?: number
}

/** latch (or its store) could not be reached: fail closed. */
export class LatchUnavailableError extends LatchError {
  code: 'unavailable' | 'timeout' | 'store_unavailable'
  status: 503
}

export class LatchConfigError extends LatchError {
  code: 'config'
  field: string
  reason: string
}

export class LatchCSRFError extends LatchError {
  code: 'csrf'
  status: 403
  reason: 'cross-origin' | 'missing-token' | 'invalid-token'
}

export class LatchUnauthenticatedError extends LatchError {
  code: 'unauthenticated'
  status: 401
  /** The failed credential's code (expired, revoked, invalid_token …), if any. */
  reason?: string
}
