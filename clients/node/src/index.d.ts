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
  /** latch's public URL (its --public-url), the base of the htu of refresh proofs a DPoPKey makes. Default: url. */
  publicURL?: string
}

/** A DPoP proof relayed by the app backend, with the method and absolute URL of the request it came with. */
export interface DPoPRelay {
  proof: string
  htm: string
  htu: string
}

/** Step-up (RFC 9470): what an action demands of the user's authentication. */
export interface AuthDemand {
  /** Seconds since auth_time the action accepts. */
  maxAge?: number
  /** ACR values the action accepts. */
  acrValues?: string[]
}

/**
 * A DPoP key pair (EC P-256 or Ed25519) held by this process, for a Node
 * program that is itself a DPoP client. Only the public JWK and its
 * thumbprint are exposed.
 */
export class DPoPKey {
  constructor(privateKey: import('node:crypto').KeyObject)
  static generate(opts?: {alg?: 'ES256' | 'EdDSA'}): DPoPKey
  readonly alg: 'ES256' | 'EdDSA'
  readonly publicJwk: Readonly<Record<string, string>>
  /** RFC 7638 SHA-256 thumbprint, base64url (dpop_jkt, cnf.jkt). */
  readonly jkt: string
  /** The server nonce for the next proof, learnt from DPoP-Nonce. */
  nonce?: string
  proof(p: {htm: string; htu: string; accessToken?: string; nonce?: string; iat?: number}): string
}

/** Seen-once memory for DPoP proofs (jti): true the first time key is seen before untilMs. */
export interface ReplayCache {
  seen(key: string, untilMs: number): boolean | Promise<boolean>
}

/** A replay cache of this process only (see the README: per process, not per cluster). */
export class LocalReplayCache implements ReplayCache {
  constructor(opts?: {maxEntries?: number})
  readonly size: number
  seen(key: string, untilMs: number): boolean
}

/** RFC 7638 thumbprint of a public JWK. */
export function thumbprint(jwk: Record<string, unknown>): string

/** Checks a proof as latch does (see the README); throws LatchDPoPError. */
export function verifyProof(proof: string, use: {
  method: string; url: string; accessToken?: string; jkt?: string; replay: ReplayCache; window?: number; skew?: number; now?: number
}): Promise<{jkt: string; iat: number}>

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
    /** When the user authenticated (default now; never in the future). */
    authTime?: Date | string
    acr?: string
    amr?: string[]
    /** Binds the session to the key of this relayed proof (or to a DPoPKey this process holds). */
    dpop?: DPoPRelay | DPoPKey
    /** Binds the session to a key whose proof the app checked itself. */
    dpopJkt?: string
  }): Promise<Issued>
  verifySession(sessionToken: string, info?: ClientInfo & AuthDemand): Promise<Verified>
  /** A DPoP-bound token needs `dpop`, the proof that came with it. */
  verifyAccessToken(accessToken: string, info?: ClientInfo & AuthDemand & {dpop?: DPoPRelay}): Promise<Verified>
  getSession(id: string): Promise<{session: Session; etag: string}>
  patchSession(id: string, data: Record<string, unknown>, opts?: {ifMatch?: string}): Promise<{session: Session; etag: string}>
  revokeSession(id: string): Promise<void>
  renewSession(id: string, opts?: {claims?: Record<string, unknown>; authTime?: Date | string; acr?: string; amr?: string[]}): Promise<Issued>
  listSessions(subject: string): Promise<Session[]>
  revokeSubject(subject: string, opts?: {except?: string}): Promise<number>
  rotateKeys(): Promise<{kid: string; activatesAt?: Date}>
  revokeKey(kid: string): Promise<{kid: string}>
  listKeys(): Promise<KeyInfo[]>
  /** A DPoP-bound session needs `dpop`: a relayed proof, a proof for the DPoP header, or a DPoPKey (nonce retry included). */
  refresh(refreshToken: string, opts?: {dpop?: DPoPRelay | string | DPoPKey}): Promise<Tokens>
  /** A DPoP-bound token needs `dpop`: the DPoPKey it is bound to (the proof is made, nonce retry included). */
  whoami(accessToken: string, opts?: {dpop?: DPoPKey}): Promise<{session: Session}>
  logout(accessToken: string, opts?: {dpop?: DPoPKey}): Promise<void>
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

/** A DPoP proof was refused (by latch or locally); nothing changed. */
export class LatchDPoPError extends LatchProblemError {
  code: 'invalid_dpop_proof' | 'use_dpop_nonce'
  /** The failed check: htu, htm, jti_replayed, key_mismatch, bound_as_bearer, ath_missing, … */
  reason: string
  description: string
  /** The WWW-Authenticate challenge latch answered with, if any. */
  challenge?: string
  /** use_dpop_nonce: the nonce the next proof must carry. */
  nonce?: string
  constructor(reason: string, opts?: {nonce?: string})
}

/** use_dpop_nonce: retry with a proof carrying `nonce`. */
export class LatchDPoPNonceError extends LatchDPoPError {
  code: 'use_dpop_nonce'
}

/** RFC 9470 insufficient_user_authentication: re-authenticate, then renew. */
export class LatchInsufficientAuthError extends LatchProblemError {
  code: 'insufficient_user_authentication'
  status: 401
  maxAge?: number
  acrValues?: string[]
  /** The WWW-Authenticate value: Bearer error="insufficient_user_authentication", … */
  challenge: string
  constructor(need?: {maxAge?: number; acrValues?: string[]})
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
