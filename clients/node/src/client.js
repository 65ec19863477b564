// The latch HTTP API client: every call of latch serve's back-channel and
// public API, over keep-alive connections, with timeouts, errors as
// LatchError subclasses carrying latch's problem `code`.

import http from 'node:http'
import https from 'node:https'
import {
  LatchConfigError, LatchDPoPError, LatchDPoPNonceError, LatchInsufficientAuthError, LatchProblemError, LatchUnavailableError,
} from './errors.js'
import {DPoPKey} from './dpop.js'
import {Pool} from './pool.js'

const MIN_API_KEY = 32
const DEFAULT_TIMEOUT = 2000

/**
 * A client for one latch serve (or a load balancer in front of replicas).
 * Create one per process and share it: it keeps a pool of keep-alive
 * connections. Safe for concurrent use.
 *
 * The API key comes from `options.apiKey` or `LATCH_API_KEY`, the URL from
 * `options.url` or `LATCH_URL` (default http://127.0.0.1:8080). The key and
 * tokens are sent only in the Authorization header and JSON bodies, never in
 * a URL, and never appear in an error.
 */
export class LatchClient {
  #base
  #apiKey
  #timeout
  #agent
  #pool
  #mod
  #publicURL

  constructor(options = {}) {
    const url = options.url ?? process.env.LATCH_URL ?? 'http://127.0.0.1:8080'
    let u
    try {
      u = new URL(url)
    } catch {
      throw new LatchConfigError('url', 'not a URL (e.g. http://127.0.0.1:8080 or https://latch.internal)')
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new LatchConfigError('url', 'must be http: or https:')
    }
    if (u.username || u.password || u.search || u.hash) {
      throw new LatchConfigError('url', 'must not carry credentials, a query or a fragment')
    }
    if (u.protocol === 'http:' && !isLoopback(u.hostname) && !options.insecureHTTP) {
      throw new LatchConfigError('url', 'plain http: to a host other than loopback would send the API key and tokens unencrypted; ' +
        'use https:, or set insecureHTTP: true only when the network path is private (a sidecar, a service mesh with mTLS)')
    }
    this.#base = u.href.replace(/\/+$/, '')
    // The base of the htu of proofs this client makes for latch itself
    // (refresh with a DPoPKey): latch's --public-url when latch is reached
    // through something that changes scheme, host or path.
    this.#publicURL = (options.publicURL ?? this.#base).replace(/\/+$/, '')
    this.#mod = u.protocol === 'https:' ? https : http
    const apiKey = options.apiKey ?? process.env.LATCH_API_KEY
    if (apiKey !== undefined && apiKey !== null && apiKey !== '') {
      if (typeof apiKey !== 'string' || apiKey.length < MIN_API_KEY) {
        throw new LatchConfigError('apiKey', `the API key must be at least ${MIN_API_KEY} characters (latch serve refuses shorter ones)`)
      }
      this.#apiKey = apiKey
    }
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT
    if (!Number.isFinite(this.#timeout) || this.#timeout <= 0) {
      throw new LatchConfigError('timeout', 'must be a positive number of milliseconds')
    }
    // With your own agent, calls go through node:http; otherwise through a
    // lighter keep-alive pool (the same wire protocol, less CPU per call).
    this.#agent = options.agent
    if (!this.#agent) this.#pool = new Pool(this.#base, {maxSockets: options.maxSockets ?? 64, tls: options.tls})
  }

  /** The base URL of latch (no trailing slash). */
  get url() { return this.#base }

  /** Closes idle keep-alive connections (the client stays usable). */
  close() { this.#agent?.destroy(); this.#pool?.close() }

  // ---- back-channel -------------------------------------------------------

  /**
   * Creates a session for a user the app has authenticated. Pass the
   * session token the browser carried as `replaceSessionToken` so that it
   * is revoked (session fixation). `authTime` (default now; never in the
   * future), `acr` and `amr` record when and how the user authenticated
   * (RFC 9470 step-up). To bind the session to the client's DPoP key
   * (RFC 9449), pass `dpop: {proof, htm, htu}` — the proof the client sent
   * in its DPoP header, with the method and URL of that request — or
   * `dpopJkt`, the key's thumbprint once you checked a proof yourself (or
   * `dpop: key` for a DPoPKey this process holds). A refused proof is a
   * LatchDPoPError and creates nothing.
   */
  async createSession({subject, data, claims, ip, userAgent, replaceSessionToken, authTime, acr, amr, dpop, dpopJkt} = {}) {
    if (dpop instanceof DPoPKey) [dpop, dpopJkt] = [undefined, dpop.jkt]
    const body = {
      subject, data, claims, ip, user_agent: userAgent, replace_session_token: replaceSessionToken,
      auth_time: authTime instanceof Date ? authTime.toISOString() : authTime, acr, amr, dpop: relay(dpop), dpop_jkt: dpopJkt,
    }
    const r = await this.#call('POST', '/v1/sessions', {body})
    return issued(r)
  }

  /**
   * Validates a session token (and records activity). Answers the session,
   * the masked CSRF token latch sends for session tokens, and the
   * cacheability latch allows (`maxAge` in seconds, 0 if none). Given
   * `maxAge` (seconds) or `acrValues` (step-up, RFC 9470), a session whose
   * user authenticated longer ago, or with an ACR not listed, is refused
   * with a LatchInsufficientAuthError and not touched.
   */
  async verifySession(sessionToken, {ip, userAgent, maxAge, acrValues} = {}) {
    const r = await this.#call('POST', '/v1/sessions/verify', {
      body: {session_token: sessionToken, ip, user_agent: userAgent, max_age: maxAge, acr_values: acrValues},
    })
    return verified(r)
  }

  /**
   * Validates an access token online: its signature and that its session
   * is live. A DPoP-bound token (cnf.jkt) needs `dpop: {proof, htm, htu}`,
   * the proof that came with it and the method and URL of that request;
   * a missing or refused proof is a LatchDPoPError. `maxAge` (seconds) and
   * `acrValues` demand a recent or strong enough authentication
   * (LatchInsufficientAuthError otherwise).
   */
  async verifyAccessToken(accessToken, {ip, userAgent, maxAge, acrValues, dpop} = {}) {
    const r = await this.#call('POST', '/v1/sessions/verify', {
      body: {access_token: accessToken, ip, user_agent: userAgent, max_age: maxAge, acr_values: acrValues, dpop: relay(dpop)},
    })
    return verified(r)
  }

  /** Reads a session by ID. `etag` is for `patchSession`'s `ifMatch`. */
  async getSession(id) {
    const r = await this.#call('GET', `/v1/sessions/${seg(id)}`)
    return {session: sessionOf(r.body.session), etag: r.headers.etag}
  }

  /**
   * Applies a JSON merge patch (RFC 7396) to the session's data. With
   * `ifMatch` (an ETag from getSession) the patch applies only if nothing
   * changed since; otherwise it fails with code `conflict` (412).
   */
  async patchSession(id, data, {ifMatch} = {}) {
    const headers = ifMatch ? {'if-match': ifMatch} : undefined
    const r = await this.#call('PATCH', `/v1/sessions/${seg(id)}`, {body: {data}, headers})
    return {session: sessionOf(r.body.session), etag: r.headers.etag}
  }

  /** Revokes a session (idempotent). */
  async revokeSession(id) {
    await this.#call('DELETE', `/v1/sessions/${seg(id)}`)
  }

  /** Gives a session fresh tokens; every old token stops working at once. */
  async renewSession(id, {claims, authTime, acr, amr} = {}) {
    const r = await this.#call('POST', `/v1/sessions/${seg(id)}/renew`, {
      body: {claims, auth_time: authTime instanceof Date ? authTime.toISOString() : authTime, acr, amr},
    })
    return issued(r)
  }

  /** Lists a subject's live sessions, most recent first. */
  async listSessions(subject) {
    const r = await this.#call('GET', `/v1/subjects/${seg(subject)}/sessions`)
    return r.body.sessions.map(sessionOf)
  }

  /** Revokes every session of a subject, except `except` (a session ID) if given. Answers how many. */
  async revokeSubject(subject, {except} = {}) {
    const q = except ? `?except=${encodeURIComponent(except)}` : ''
    const r = await this.#call('DELETE', `/v1/subjects/${seg(subject)}/sessions${q}`)
    return r.body.revoked
  }

  /** Starts a new signing key; answers its `kid`. */
  async rotateKeys() {
    const r = await this.#call('POST', '/v1/keys/rotate', {body: {}})
    return {kid: r.body.kid, activatesAt: date(r.body.activates_at)}
  }

  /** Revokes a compromised signing key at once; answers the new signing key's `kid`. */
  async revokeKey(kid) {
    const r = await this.#call('POST', `/v1/keys/${seg(kid)}/revoke`, {body: {}})
    return {kid: r.body.kid}
  }

  /** Lists the signing keys (public metadata only). */
  async listKeys() {
    const r = await this.#call('GET', '/v1/keys')
    return r.body.keys.map((k) => ({
      kid: k.kid, alg: k.alg, state: k.state, createdAt: date(k.created_at), activatesAt: date(k.activates_at),
      retiresAt: date(k.retires_at), removesAt: date(k.removes_at),
    }))
  }

  // ---- public ---------------------------------------------------------------

  /**
   * Rotates a refresh token: answers a new access token and refresh token.
   * Presenting an already-rotated refresh token after the grace window
   * revokes the session (code `refresh_reuse`). Sent with the API key when
   * the client has one (an app server relaying its users' refreshes).
   *
   * A DPoP-bound session needs a proof by its key, `dpop`:
   *   - `{proof, htm, htu}`: a proof your client sent you, relayed with the
   *     method and URL of the request it came with;
   *   - a string: a proof made for POST and latch's public URL +
   *     /v1/refresh, sent as the DPoP header;
   *   - a DPoPKey this process holds: the client makes that proof, and if
   *     latch answers use_dpop_nonce, makes one more with the nonce and
   *     retries once (the nonce is kept in key.nonce for the next call).
   * Without a valid proof a bound session is refused (LatchDPoPError) and
   * the refresh token is not rotated.
   */
  async refresh(refreshToken, {dpop} = {}) {
    // With the API key, latch does not count the app server's relayed
    // refreshes against one client's rate limit.
    const opts = {body: {refresh_token: refreshToken}, apiKey: this.#apiKey !== undefined}
    if (dpop instanceof DPoPKey) return tokens(...await this.#proven('POST', '/v1/refresh', opts, dpop))
    if (typeof dpop === 'string') opts.headers = {dpop: headerProof(dpop)}
    else opts.body.dpop = relay(dpop)
    const r = await this.#call('POST', '/v1/refresh', opts)
    return tokens(r.body, r.headers)
  }

  /**
   * The session of an access token (public /v1/whoami). A DPoP-bound
   * token needs `dpop`, the DPoPKey it is bound to.
   */
  async whoami(accessToken, {dpop} = {}) {
    const opts = {apiKey: false, bearer: accessToken}
    const [body] = dpop ? await this.#proven('GET', '/v1/whoami', opts, dpop, accessToken) : [(await this.#call('GET', '/v1/whoami', opts)).body]
    return {session: sessionOf(body.session)}
  }

  /** Revokes the session of an access token (public /v1/logout); `dpop` as for whoami. */
  async logout(accessToken, {dpop} = {}) {
    const opts = {apiKey: false, bearer: accessToken, body: {}}
    if (dpop) await this.#proven('POST', '/v1/logout', opts, dpop, accessToken)
    else await this.#call('POST', '/v1/logout', opts)
  }

  /**
   * A call to latch with a proof by key for method and latch's public URL +
   * path (and `Authorization: DPoP` with accessToken): once more with the
   * nonce if latch answers use_dpop_nonce. Answers [body, headers].
   */
  async #proven(method, path, opts, key, accessToken) {
    if (!(key instanceof DPoPKey)) throw new TypeError('latch: dpop must be a DPoPKey')
    const htu = this.#publicURL + path
    for (let attempt = 0; ; attempt++) {
      opts.headers = {dpop: key.proof({htm: method, htu, accessToken})}
      if (accessToken !== undefined) opts.dpopToken = accessToken
      try {
        const r = await this.#call(method, path, opts)
        if (typeof r.headers['dpop-nonce'] === 'string') key.nonce = r.headers['dpop-nonce']
        return [r.body, r.headers]
      } catch (err) {
        if (!(err instanceof LatchDPoPNonceError) || !err.nonce || attempt > 0) throw err
        key.nonce = err.nonce
      }
    }
  }

  /** The JSON Web Key Set (public keys). */
  async jwks() {
    return (await this.#call('GET', '/.well-known/jwks.json', {apiKey: false})).body
  }

  /** The RFC 8414 metadata (issuer, jwks_uri). */
  async metadata() {
    return (await this.#call('GET', '/.well-known/oauth-authorization-server', {apiKey: false})).body
  }

  /** Resolves when latch's store is reachable (GET /readyz 200); rejects otherwise. */
  async ready() {
    await this.#call('GET', '/readyz', {apiKey: false})
  }

  /**
   * Opens a raw HTTP request to latch with the API key, for the event
   * stream (most users won't need this). Resolves with the response.
   * @internal
   */
  openStream(path, {headers = {}, signal} = {}) {
    return new Promise((resolve, reject) => {
      const req = this.#mod.request(this.#base + path, {
        method: 'GET',
        headers: {...headers, authorization: `Bearer ${this.#requireKey()}`},
        agent: false, // its own connection, not one of the pool's
        signal,
      })
      req.on('response', resolve)
      req.on('error', (err) => reject(unavailable(err, this.#base)))
      req.end()
    })
  }

  #requireKey() {
    if (!this.#apiKey) {
      throw new LatchConfigError('apiKey', 'back-channel calls need the API key: set LATCH_API_KEY or pass apiKey')
    }
    return this.#apiKey
  }

  #call(method, path, {body, headers = {}, apiKey = true, bearer, dpopToken} = {}) {
    const h = {accept: 'application/json', ...headers}
    if (apiKey) h.authorization = `Bearer ${this.#requireKey()}`
    else if (dpopToken !== undefined) h.authorization = `DPoP ${dpopToken}`
    else if (bearer !== undefined) h.authorization = `Bearer ${bearer}`
    let payload
    if (body !== undefined) {
      payload = JSON.stringify(body)
      h['content-type'] = 'application/json'
    }
    const base = this.#base
    const send = this.#pool
      ? this.#pool.request(method, path, h, payload, this.#timeout)
      : this.#viaAgent(method, path, h, payload)
    return send.then((res) => answer(res, base), (err) => {
      throw err?.code === 'ETIMEDOUT'
        ? new LatchUnavailableError('timeout', `latch: no answer from ${base} within ${this.#timeout} ms`)
        : unavailable(err, base)
    })
  }

  #viaAgent(method, path, headers, payload) {
    if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload)
    return new Promise((resolve, reject) => {
      const req = this.#mod.request(this.#base + path, {method, headers, agent: this.#agent})
      const timer = setTimeout(() => {
        const e = new Error('timeout')
        e.code = 'ETIMEDOUT'
        req.destroy(e)
      }, this.#timeout)
      req.on('error', (err) => { clearTimeout(timer); reject(err) })
      req.on('response', (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('error', (err) => { clearTimeout(timer); reject(err) })
        res.on('end', () => { clearTimeout(timer); resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks)}) })
      })
      req.end(payload)
    })
  }
}

/** Turns latch's answer into a result or a LatchError. */
function answer(res, base) {
  const text = res.body.length ? res.body.toString('utf8') : ''
  let parsed
  if (text) {
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = undefined
    }
  }
  const status = res.status
  if (status >= 200 && status < 300) {
    if (text && parsed === undefined) {
      throw new LatchUnavailableError('unavailable', `latch: unreadable answer from ${base} (status ${status})`)
    }
    return {status, headers: res.headers, body: parsed}
  }
  if (status === 503 || (status >= 502 && status <= 504 && parsed?.code === undefined)) {
    const code = parsed?.code === 'store_unavailable' ? 'store_unavailable' : 'unavailable'
    throw new LatchUnavailableError(code, `latch: ${code}: ${parsed?.detail || `status ${status}`}`)
  }
  const err = parsed?.code === 'invalid_dpop_proof' || parsed?.code === 'use_dpop_nonce' ? LatchDPoPError.fromProblem(parsed, status, res.headers)
    : parsed?.code === 'insufficient_user_authentication' ? LatchInsufficientAuthError.fromProblem(parsed, status, res.headers)
      : new LatchProblemError(parsed, status)
  if (status === 429) err.retryAfter = Number(res.headers['retry-after']) || undefined
  // With --dpop-nonce latch sends its nonce with every answer to a proof,
  // refusals included; a relaying backend passes it on (protocol §5).
  if (typeof res.headers['dpop-nonce'] === 'string') err.dpopNonce = res.headers['dpop-nonce']
  throw err
}

function unavailable(err, base) {
  if (err instanceof LatchUnavailableError) return err
  // Node's network errors name the host and port, never the headers or body.
  const code = err?.code ? ` (${err.code})` : ''
  return new LatchUnavailableError('unavailable', `latch: cannot reach ${base}${code}`)
}

function isLoopback(host) {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

function seg(s) {
  if (typeof s !== 'string' || s === '') throw new TypeError('latch: an ID or subject must be a non-empty string')
  return encodeURIComponent(s)
}

/** A relayed proof for a request body, checked for shape only (latch checks the rest). */
function relay(d) {
  if (d === undefined || d === null) return undefined
  if (typeof d !== 'object' || typeof d.proof !== 'string' || typeof d.htm !== 'string' || typeof d.htu !== 'string') {
    throw new TypeError('latch: dpop must be {proof, htm, htu}: the proof, and the method and absolute URL of the request it came with')
  }
  return {proof: d.proof, htm: d.htm, htu: d.htu}
}

/** A proof for the DPoP request header: a compact JWS, nothing that could split a header. */
function headerProof(p) {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(p)) throw new TypeError('latch: a DPoP proof must be a compact JWS')
  return p
}

function date(s) {
  return s ? new Date(s) : undefined
}

/** Converts latch's session view to the client's (camelCase, Dates). */
export function sessionOf(v) {
  const s = {
    id: v.id,
    subject: v.subject,
    createdAt: date(v.created_at),
    authTime: date(v.auth_time),
    lastSeenAt: date(v.last_seen_at),
    idleExpiresAt: date(v.idle_expires_at),
    expiresAt: date(v.expires_at),
    ip: v.ip ?? '',
    userAgent: v.user_agent ?? '',
    data: v.data ?? {},
    claims: v.claims ?? {},
    version: v.version,
  }
  if (v.acr !== undefined) s.acr = v.acr
  if (v.amr !== undefined) s.amr = v.amr
  // Frozen: a session may be shared by requests through the cache, and
  // changes go through patchSession anyway.
  return deepFreeze(s)
}

function deepFreeze(o) {
  for (const v of Object.values(o)) if (v && typeof v === 'object' && !(v instanceof Date)) deepFreeze(v)
  return Object.freeze(o)
}

function tokens(b, headers) {
  const t = {accessToken: b.access_token, refreshToken: b.refresh_token, tokenType: b.token_type, expiresIn: b.expires_in}
  return withNonce(t, headers)
}

/** Adds latch's DPoP-Nonce (sent with --dpop-nonce to requests with a proof), for the client's next proof. */
function withNonce(o, headers) {
  if (typeof headers?.['dpop-nonce'] === 'string') o.dpopNonce = headers['dpop-nonce']
  return o
}

function issued(r) {
  return {session: sessionOf(r.body.session), sessionToken: r.body.session_token, ...tokens(r.body, r.headers), etag: r.headers.etag}
}

function verified(r) {
  const m = /(?:^|,)\s*max-age=(\d+)/i.exec(r.headers['cache-control'] ?? '')
  const priv = /(?:^|,)\s*private\b/i.test(r.headers['cache-control'] ?? '')
  return withNonce({
    session: sessionOf(r.body.session),
    csrfToken: r.body.csrf_token,
    maxAge: m && priv ? Number(m[1]) : 0,
    etag: r.headers.etag,
  }, r.headers)
}
