// Types for clients/browser/latch.js.

export interface LatchBrowserOptions {
  /** The app's refresh route (POST, refresh cookie). Default "/auth/refresh". */
  refreshURL?: string
  /** BroadcastChannel name shared by the app's tabs. Default "latch". */
  channel?: string
  /** Web Lock name for the one refresh across tabs. Default "latch-refresh". */
  lockName?: string
  /** Seconds before the idle deadline at which "idle" events start. Default 120. */
  idleWarning?: number
  /** Milliseconds a tab waits for another tab's token. Default 1000. */
  peerTimeout?: number
  fetch?: typeof fetch
  /** Bind calls to a DPoP key: Authorization: DPoP with a proof on every call and refresh. */
  dpop?: LatchDPoP
}

/** What a login or refresh route answers. */
export interface TokenAnswer {
  access_token: string
  token_type?: string
  expires_in: number
  idle_expires_at?: string
  expires_at?: string
}

export interface LatchBrowserEventMap {
  signout: CustomEvent<{reason: string}>
  idle: CustomEvent<{secondsLeft: number}>
  refresh: CustomEvent<undefined>
}

export class LatchBrowser extends EventTarget {
  constructor(options?: LatchBrowserOptions)
  readonly authenticated: boolean
  readonly secondsLeft: number | null
  setTokens(body: TokenAnswer): void
  start(): Promise<boolean>
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>
  refresh(failed?: string | null): Promise<void>
  signOut(reason?: string): void
  close(): void
  addEventListener<K extends keyof LatchBrowserEventMap>(type: K, listener: (ev: LatchBrowserEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void
}

export class SignedOutError extends Error {
  code: 'signed_out'
}

/**
 * A non-extractable WebCrypto ECDSA P-256 key kept in IndexedDB (survives
 * reloads, shared by the origin's tabs) that makes DPoP proofs (RFC 9449).
 */
export class LatchDPoP {
  static open(opts?: {name?: string; fetch?: typeof fetch}): Promise<LatchDPoP>
  static forget(name?: string): Promise<void>
  /** RFC 7638 thumbprint (cnf.jkt of bound tokens). */
  readonly jkt: string
  readonly publicJwk: Readonly<{kty: 'EC'; crv: 'P-256'; x: string; y: string}>
  proof(p: {htm: string; htu: string; accessToken?: string; nonce?: string}): Promise<string>
  /** fetch with a proof (and Authorization: DPoP when accessToken is given); one retry on use_dpop_nonce. */
  fetch(input: RequestInfo | URL, init?: RequestInit, opts?: {accessToken?: string}): Promise<Response>
}
