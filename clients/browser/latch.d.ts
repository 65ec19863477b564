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
