// @latch-sessions/browser: a dependency-free ES module for single-page apps
// on latch's refresh flow.
//
//   import {LatchBrowser} from './latch.js'
//   const latch = new LatchBrowser({refreshURL: '/auth/refresh'})
//   latch.addEventListener('signout', (e) => showLogin(e.detail.reason))
//   latch.addEventListener('idle', (e) => showCountdown(e.detail.secondsLeft))
//   await latch.start()                    // a token from another tab, or a refresh
//   const res = await latch.fetch('/api/me') // Authorization: Bearer …, refreshed on 401 expired
//
// Security model:
//   - The access token lives only in this module's memory (a private
//     field), never in localStorage, sessionStorage, IndexedDB or a
//     readable cookie. Tabs of the same origin hand it to each other over
//     a BroadcastChannel, which is in-memory and same-origin only.
//   - The refresh token is an HttpOnly cookie scoped to the app's refresh
//     route (set by the server); script never sees it.
//   - One refresh for all tabs: on a 401 with code "expired" the tab takes
//     a Web Lock; a tab that finds the token already replaced by another
//     tab retries with the new one instead of refreshing again. (Without
//     Web Locks, tabs announce refreshes on the channel and wait for them.)
//   - Any other 401 (revoked, invalid_token, refresh_reuse …) signs every
//     tab out: a "signout" event with the reason.
//   - With a LatchDPoP key (RFC 9449) the tokens are bound to a private key
//     that script cannot read: WebCrypto generates it non-extractable and
//     IndexedDB keeps the CryptoKey object itself, never its bytes. Every
//     API call and refresh carries a fresh proof by it, so a copied access
//     or refresh token is worthless elsewhere.

const DEFAULTS = {
  refreshURL: '/auth/refresh',
  channel: 'latch',
  lockName: 'latch-refresh',
  /** Seconds before the idle deadline at which "idle" countdown events start. */
  idleWarning: 120,
  /** How long a tab waits for another tab's answer (ms). */
  peerTimeout: 1000,
}

export class LatchBrowser extends EventTarget {
  #opts
  #token = null          // the access token, memory only
  #exp = 0               // its expiry (ms since epoch, local clock)
  #idleDeadline = 0      // the session's idle deadline (ms), 0 if unknown
  #idleSpan = 0          // the server's idle timeout (ms), learnt from token answers
  #absDeadline = 0
  #signedOut = false
  #inflight = null
  #bc = null
  #waiters = new Set()
  #timer = null
  #release = null        // ends this tab's shared "I hold a token" Web Lock
  #peerRefreshing = 0    // without Web Locks: until when another tab said it is refreshing
  #fetch

  #dpop

  constructor(options = {}) {
    super()
    this.#opts = {...DEFAULTS, ...options}
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.#dpop = options.dpop ?? null
    if (typeof BroadcastChannel !== 'undefined') {
      this.#bc = new BroadcastChannel(this.#opts.channel)
      this.#bc.onmessage = (e) => this.#onMessage(e.data)
    }
  }

  /** Whether this tab holds an access token. */
  get authenticated() { return this.#token !== null && !this.#signedOut }

  /** Seconds left before the idle (or absolute) deadline, or null if unknown. */
  get secondsLeft() {
    const d = this.#deadline()
    return d ? Math.max(0, Math.floor((d - Date.now()) / 1000)) : null
  }

  /**
   * Takes the JSON a login or refresh route answered ({access_token,
   * expires_in, idle_expires_at?, expires_at?}) and shares it with the
   * other tabs.
   */
  setTokens(body) {
    this.#adopt(body)
    this.#post({type: 'token', body})
  }

  /**
   * For a freshly loaded tab: asks the other tabs for their access token;
   * if none answers, refreshes with the refresh cookie. Resolves true when
   * signed in, false when there is no session (a "signout" event also
   * fires).
   */
  async start() {
    if (this.authenticated) return true
    this.#signedOut = false
    if (this.#bc) {
      // Tabs holding a token hold a shared Web Lock: ask them only if
      // there are any (without Web Locks, ask and wait briefly).
      const locks = globalThis.navigator?.locks
      const holders = locks ? (await locks.query()).held.filter((l) => l.name === this.#holderLock()).length : -1
      if (holders !== 0) {
        const got = this.#waitForToken(null, holders > 0 ? 2 * this.#opts.peerTimeout : 300)
        this.#post({type: 'need-token'})
        if (await got) return true
      }
    }
    await this.refresh(null)
    return this.authenticated
  }

  /**
   * fetch with the access token. On a 401 "expired" it refreshes once
   * (once across all tabs) and retries; on any other 401 it signs out and
   * returns the response.
   */
  async fetch(input, init = {}) {
    if (this.#signedOut) throw new SignedOutError()
    if (!this.#token) await this.start()
    if (this.#signedOut) throw new SignedOutError()
    const used = this.#token
    let res = await this.#send(input, init, used)
    if (res.status !== 401) {
      this.#activity()
      return res
    }
    const code = await problemCode(res)
    if (code !== 'expired') {
      this.#signOut(code || 'unauthorized', true)
      return res
    }
    await this.refresh(used)
    if (this.#signedOut || !this.#token) return res
    res = await this.#send(input, init, this.#token)
    if (res.status === 401) this.#signOut((await problemCode(res)) || 'unauthorized', true)
    else this.#activity()
    return res
  }

  /**
   * Refreshes the access token unless another tab (or call) already
   * replaced `failed`, the token that was refused. Most apps never call
   * it: fetch does.
   */
  refresh(failed = this.#token) {
    this.#inflight ??= this.#coordinated(failed).finally(() => { this.#inflight = null })
    return this.#inflight
  }

  /** Signs this tab and every other tab out locally (the server session is not touched). */
  signOut(reason = 'logout') { this.#signOut(reason, true) }

  /** Stops timers and the channel. */
  close() {
    clearInterval(this.#timer)
    this.#bc?.close()
  }

  // ---- internals -------------------------------------------------------------

  async #coordinated(failed) {
    const locks = globalThis.navigator?.locks
    if (!locks) return this.#unlocked(failed)
    let busy = false
    await locks.request(this.#opts.lockName, {ifAvailable: true}, async (lock) => {
      if (!lock) { busy = true; return }
      if (this.#replaced(failed)) return
      await this.#doRefresh()
    })
    if (!busy) return
    // Another tab is refreshing: wait for it, then use its token. Its
    // broadcast is sent before it lets the lock go, but may arrive just
    // after we get the lock, so wait a moment for it before refreshing.
    await locks.request(this.#opts.lockName, async () => {
      if (this.#replaced(failed)) return
      if (await this.#waitForToken(failed, this.#opts.peerTimeout)) return
      if (!this.#signedOut) await this.#doRefresh()
    })
  }

  async #unlocked(failed) {
    if (this.#peerRefreshing > Date.now() && await this.#waitForToken(failed, this.#opts.peerTimeout)) return
    if (this.#replaced(failed)) return
    this.#post({type: 'refreshing'})
    await this.#doRefresh()
  }

  #replaced(failed) {
    return this.#signedOut || (this.#token !== null && this.#token !== failed)
  }

  async #doRefresh() {
    let res
    try {
      const init = {method: 'POST', credentials: 'same-origin', headers: {accept: 'application/json'}, cache: 'no-store'}
      // A bound session's refresh needs a proof for the refresh route.
      res = this.#dpop ? await this.#dpop.fetch(this.#opts.refreshURL, init) : await this.#fetch(this.#opts.refreshURL, init)
    } catch {
      return // offline: keep the tab signed in; the next call tries again
    }
    if (res.ok) {
      this.setTokens(await res.json())
      this.dispatchEvent(new CustomEvent('refresh'))
      return
    }
    if (res.status === 401 || res.status === 403) {
      this.#signOut((await problemCode(res)) || 'unauthorized', true)
    }
  }

  #send(input, init, token) {
    if (this.#dpop) return this.#dpop.fetch(input, {...init, credentials: init.credentials ?? 'same-origin'}, {accessToken: token})
    const headers = new Headers(init.headers)
    headers.set('authorization', `Bearer ${token}`)
    return this.#fetch(input, {...init, headers, credentials: init.credentials ?? 'same-origin'})
  }

  #adopt(body) {
    if (!body || typeof body.access_token !== 'string') return
    this.#token = body.access_token
    this.#exp = Date.now() + (Number(body.expires_in) || 0) * 1000
    this.#signedOut = false
    if (body.idle_expires_at) {
      this.#idleDeadline = Date.parse(body.idle_expires_at)
      this.#idleSpan = Math.max(0, this.#idleDeadline - Date.now())
    }
    if (body.expires_at) this.#absDeadline = Date.parse(body.expires_at)
    for (const w of this.#waiters) w()
    this.#tick()
    this.#timer ??= setInterval(() => this.#tick(), 1000)
    const locks = globalThis.navigator?.locks
    if (locks && !this.#release) {
      const held = new Promise((resolve) => { this.#release = resolve })
      locks.request(this.#holderLock(), {mode: 'shared'}, () => held)
    }
  }

  #holderLock() { return this.#opts.lockName + '-holder' }

  #activity(fromPeer) {
    if (!this.#idleSpan) return
    const d = fromPeer ?? Date.now() + this.#idleSpan
    if (d > this.#idleDeadline) this.#idleDeadline = d
    if (fromPeer === undefined) this.#post({type: 'activity', deadline: this.#idleDeadline})
  }

  #deadline() {
    const ds = [this.#idleDeadline, this.#absDeadline].filter((d) => d > 0)
    return ds.length ? Math.min(...ds) : 0
  }

  #tick() {
    if (this.#signedOut) return
    const left = this.secondsLeft
    if (left === null) return
    if (left <= 0) {
      this.dispatchEvent(new CustomEvent('idle', {detail: {secondsLeft: 0}}))
      this.#signOut('idle', false)
    } else if (left <= this.#opts.idleWarning) {
      this.dispatchEvent(new CustomEvent('idle', {detail: {secondsLeft: left}}))
    }
  }

  #signOut(reason, broadcast) {
    if (this.#signedOut) return
    this.#signedOut = true
    this.#token = null
    this.#release?.()
    this.#release = null
    clearInterval(this.#timer)
    this.#timer = null
    for (const w of this.#waiters) w()
    if (broadcast) this.#post({type: 'signout', reason})
    this.dispatchEvent(new CustomEvent('signout', {detail: {reason}}))
  }

  /** Resolves true once the token differs from `failed` (another tab's), false on timeout or sign-out. */
  #waitForToken(failed, ms) {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#signedOut) return finish(false)
        if (this.#token !== null && this.#token !== failed) finish(true)
      }
      const finish = (v) => { clearTimeout(t); this.#waiters.delete(check); resolve(v) }
      const t = setTimeout(() => finish(false), ms)
      this.#waiters.add(check)
      check()
    })
  }

  #post(msg) { this.#bc?.postMessage(msg) }

  #onMessage(m) {
    switch (m?.type) {
      case 'token':
        this.#adopt(m.body)
        break
      case 'need-token':
        if (this.authenticated && this.#exp > Date.now()) {
          this.#post({type: 'token', body: {access_token: this.#token, expires_in: Math.floor((this.#exp - Date.now()) / 1000),
            idle_expires_at: this.#idleDeadline ? new Date(this.#idleDeadline).toISOString() : undefined,
            expires_at: this.#absDeadline ? new Date(this.#absDeadline).toISOString() : undefined}})
        }
        break
      case 'refreshing':
        this.#peerRefreshing = Date.now() + this.#opts.peerTimeout
        break
      case 'activity':
        this.#activity(m.deadline)
        break
      case 'signout':
        this.#signOut(m.reason, false)
        break
    }
  }
}

/** Thrown by fetch after sign-out: sign in again. */
export class SignedOutError extends Error {
  code = 'signed_out'
  constructor() { super('latch: signed out; sign in again') }
}

async function problemCode(res) {
  try {
    const b = await res.clone().json()
    return typeof b?.code === 'string' ? b.code : ''
  } catch {
    return ''
  }
}

// ---- DPoP (RFC 9449) -----------------------------------------------------------

const DPOP_DB = 'latch-dpop'
const DPOP_STORE = 'keys'

/**
 * A DPoP key for this origin: an ECDSA P-256 key pair generated by
 * WebCrypto with extractable: false, kept in IndexedDB as the CryptoKey
 * objects (structured clone keeps them non-extractable), so it survives
 * reloads and is shared by the origin's tabs, while no script — the app's or
 * an attacker's — can read the private key's bytes. It makes the proofs for
 * fetch calls: htm, htu (without query and fragment), iat, a random jti,
 * ath when an access token goes with it, and the server's nonce, retrying
 * once when a server answers use_dpop_nonce.
 *
 *   const dpop = await LatchDPoP.open()
 *   const res = await dpop.fetch('/auth/login', {method: 'POST', body})  // the backend binds the session
 *   const latch = new LatchBrowser({dpop})                            // API calls: Authorization: DPoP + proof
 */
export class LatchDPoP {
  #keys
  #jwk
  #jkt
  #fetch
  #nonces = new Map() // origin -> the newest DPoP-Nonce it sent

  constructor(keys, jwk, jkt, fetchFn) {
    this.#keys = keys
    this.#jwk = jwk
    this.#jkt = jkt
    this.#fetch = fetchFn
  }

  /**
   * The origin's key named `name` from IndexedDB, generated (non-extractable)
   * and stored the first time. Tabs opening at once end up with the same key.
   */
  static async open({name = 'default', fetch: fetchFn} = {}) {
    const db = await idb()
    let keys = await idbGet(db, name)
    if (!keys) {
      const fresh = await crypto.subtle.generateKey({name: 'ECDSA', namedCurve: 'P-256'}, false, ['sign', 'verify'])
      // add, not put: if another tab stored a key meanwhile, take that one.
      keys = await idbAddOrGet(db, name, {privateKey: fresh.privateKey, publicKey: fresh.publicKey})
    }
    db.close()
    const full = await crypto.subtle.exportKey('jwk', keys.publicKey) // public keys are always exportable
    const jwk = {kty: 'EC', crv: 'P-256', x: full.x, y: full.y}
    const jkt = b64u(await crypto.subtle.digest('SHA-256', utf8(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`)))
    return new LatchDPoP(keys, Object.freeze(jwk), jkt, fetchFn ?? globalThis.fetch.bind(globalThis))
  }

  /** Deletes the key `name` from IndexedDB (e.g. at sign-out; the next open makes a new one). */
  static async forget(name = 'default') {
    const db = await idb()
    await new Promise((resolve, reject) => {
      const tx = db.transaction(DPOP_STORE, 'readwrite')
      tx.objectStore(DPOP_STORE).delete(name)
      tx.oncomplete = resolve
      tx.onerror = () => reject(tx.error)
    })
    db.close()
  }

  /** The RFC 7638 thumbprint of the key (what the session is bound to: cnf.jkt). */
  get jkt() { return this.#jkt }
  /** The public key as a JWK. */
  get publicJwk() { return this.#jwk }

  /** A proof for one request. `htu` may be relative (to the page); its query and fragment are dropped. */
  async proof({htm, htu, accessToken, nonce}) {
    const u = new URL(htu, globalThis.location?.href)
    u.search = ''
    u.hash = ''
    nonce ??= this.#nonces.get(u.origin)
    const claims = {jti: b64u(crypto.getRandomValues(new Uint8Array(16))), htm: htm.toUpperCase(), htu: u.href, iat: Math.floor(Date.now() / 1000)}
    if (accessToken !== undefined) claims.ath = b64u(await crypto.subtle.digest('SHA-256', utf8(accessToken)))
    if (nonce) claims.nonce = nonce
    const input = `${b64u(utf8(JSON.stringify({typ: 'dpop+jwt', alg: 'ES256', jwk: this.#jwk})))}.${b64u(utf8(JSON.stringify(claims)))}`
    // WebCrypto's ECDSA signature is r‖s, the JWS form already.
    const sig = await crypto.subtle.sign({name: 'ECDSA', hash: 'SHA-256'}, this.#keys.privateKey, utf8(input))
    return `${input}.${b64u(sig)}`
  }

  /**
   * fetch with a DPoP header (and `Authorization: DPoP <accessToken>` when
   * one is given). A server's DPoP-Nonce is remembered for its origin; an
   * answer asking for it (use_dpop_nonce) is retried once with a new proof.
   * A body that is a stream cannot be sent twice: pass strings, FormData or
   * Blobs if the server uses nonces.
   */
  async fetch(input, init = {}, {accessToken} = {}) {
    const url = new URL(input instanceof Request ? input.url : String(input), globalThis.location?.href)
    const htm = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()
    for (let retried = false; ; retried = true) {
      const used = this.#nonces.get(url.origin)
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
      headers.set('dpop', await this.proof({htm, htu: url.href, accessToken, nonce: used}))
      if (accessToken !== undefined) headers.set('authorization', `DPoP ${accessToken}`)
      const res = await this.#fetch(input, {...init, headers})
      // Servers send their newest nonce with any answer (RFC 9449 §8.2).
      const nonce = res.headers.get('dpop-nonce')
      if (nonce) this.#nonces.set(url.origin, nonce)
      // Once, and only with a nonce other than the one this proof carried.
      if (retried || !nonce || nonce === used || !(await wantsNonce(res))) return res
    }
  }
}

async function wantsNonce(res) {
  if (res.status !== 401 && res.status !== 400) return false
  if (/error="use_dpop_nonce"/.test(res.headers.get('www-authenticate') ?? '')) return true
  try {
    const b = await res.clone().json()
    return b?.code === 'use_dpop_nonce' || b?.error === 'use_dpop_nonce'
  } catch {
    return false
  }
}

function idb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DPOP_DB, 1)
    r.onupgradeneeded = () => r.result.createObjectStore(DPOP_STORE)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

function idbGet(db, name) {
  return new Promise((resolve, reject) => {
    const r = db.transaction(DPOP_STORE, 'readonly').objectStore(DPOP_STORE).get(name)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}

/** Adds value under name unless a value is there; answers the stored one (one readwrite transaction). */
function idbAddOrGet(db, name, value) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(DPOP_STORE, 'readwrite')
    const st = tx.objectStore(DPOP_STORE)
    let out = value
    const g = st.get(name)
    g.onsuccess = () => {
      if (g.result) out = g.result
      else st.add(value, name)
    }
    tx.oncomplete = () => resolve(out)
    tx.onerror = () => reject(tx.error)
  })
}

function utf8(s) { return new TextEncoder().encode(s) }

function b64u(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf)
  let s = ''
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i])
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
