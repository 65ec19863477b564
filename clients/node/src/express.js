// Express middleware for latch: the __Host-latch cookie with latchhttp's
// attributes, req.latch, fixation-safe login, logout, renew, CSRF (origin
// check and masked tokens, anonymous ones for login forms), Bearer access
// tokens (online or offline), fail closed, and the SPA refresh route.
// The protocol is docs/protocol.md in the latch repository.

import {LatchClient, sessionOf} from './client.js'
import {
  LatchConfigError, LatchCSRFError, LatchDPoPError, LatchError, LatchInsufficientAuthError, LatchUnauthenticatedError, LatchUnavailableError,
} from './errors.js'
import {LocalReplayCache, challenge as dpopChallenge, normalizeURL, unverifiedClaims, verifyProof} from './dpop.js'
import * as csrf from './csrf.js'
import * as cookies from './cookies.js'
import {OnlineValidator} from './validate.js'
import {CachedValidator} from './cache.js'

export const DEFAULT_COOKIE_NAME = '__Host-latch'
export const DEFAULT_REFRESH_COOKIE_NAME = '__Secure-latch-refresh'
export const CSRF_HEADER = 'x-csrf-token'
export const CSRF_FIELD = 'csrf_token'
const ANON_MAX_AGE = 7200
const DEAD = new Set(['invalid_token', 'expired', 'revoked', 'refresh_reuse'])
const SAMESITE = {lax: 'Lax', strict: 'Strict', none: 'None'}

/**
 * Creates the middleware. `app.use(latch(options))`, then in handlers
 * `req.latch.session`, `await req.latch.login({subject})`,
 * `await req.latch.logout()`, `req.latch.csrfToken()`.
 *
 * Insecure settings are refused with a LatchConfigError saying why.
 */
export function latch(options = {}) {
  const o = configure(options)
  const mw = (req, res, next) => {
    handle(o, req, res).then((proceed) => { if (proceed) next() }, (err) => fail(o, err, req, res, next))
  }
  mw.requireSession = (req, res, next) => {
    const l = req.latch
    if (!l) throw new Error('@latch-sessions/node: requireSession used on a request that did not pass through the latch middleware')
    if (l.session) return next()
    if (l.error instanceof LatchDPoPError) {
      // RFC 9449 §7.1: latch's challenge as is, or ours for a local refusal.
      res.setHeader('WWW-Authenticate', l.error.challenge ?? dpopChallenge(l.error))
    } else if (l.method === 'bearer') res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"')
    else if (o.bearer) res.setHeader('WWW-Authenticate', 'Bearer')
    fail(o, new LatchUnauthenticatedError(l.error), req, res, next)
  }
  mw.requireRecentAuth = (need = {}) => requireRecentAuth(o, mw.requireSession, need)
  mw.refresh = refreshHandler(o)
  mw.client = o.client
  mw.options = Object.freeze({cookieName: o.name, refreshCookieName: o.refreshName, refreshPath: o.refreshPath, secure: o.secure})
  mw.close = () => o.validator.close?.()
  /** The cached validator (null when cache: false), for metrics and tests. */
  mw.cache = o.validator instanceof CachedValidator ? o.validator : null
  return mw
}

function configure(options) {
  const client = options.client ?? new LatchClient({url: options.url, apiKey: options.apiKey, timeout: options.timeout})
  const secure = !options.insecureCookieForDevelopmentOnly
  const o = {
    client,
    name: options.cookieName ?? DEFAULT_COOKIE_NAME,
    domain: options.cookieDomain ?? '',
    path: options.cookiePath ?? '/',
    sameSite: SAMESITE[String(options.sameSite ?? 'lax').toLowerCase()],
    secure,
    bearer: options.accessTokens ?? false,
    trusted: new Set(),
    bypass: new Set(options.crossOriginBypass ?? []),
    maxForm: options.maxFormSize ?? 10 << 20,
    onError: options.onError,
    trustProxy: options.trustProxy ?? false,
    refreshName: options.refreshCookieName ?? DEFAULT_REFRESH_COOKIE_NAME,
    refreshPath: options.refreshPath ?? '/auth/refresh',
    dpopURL: options.dpopURL,
    replay: options.dpopReplayCache ?? new LocalReplayCache(),
    reauthenticate: options.reauthenticate,
  }
  if (o.dpopURL !== undefined && typeof o.dpopURL !== 'function') throw new LatchConfigError('dpopURL', 'must be a function (req) => the absolute URL the client addressed')
  if (typeof o.replay?.seen !== 'function') throw new LatchConfigError('dpopReplayCache', 'must have seen(key, untilMs) answering (a promise of) true the first time a key is seen')
  if (o.reauthenticate !== undefined && typeof o.reauthenticate !== 'function') throw new LatchConfigError('reauthenticate', 'must be a function (req, res, {maxAge, acrValues})')
  if (!o.sameSite) throw new LatchConfigError('sameSite', 'must be "lax" or "strict" (or "none" with a Secure cookie)')
  checkCookie(o, 'cookieName', o.name, o.path, o.domain)
  if (o.sameSite === 'None' && !secure) throw new LatchConfigError('sameSite', 'SameSite=None requires a Secure cookie (browsers reject it otherwise)')
  if (!cookies.validName(o.refreshName)) throw new LatchConfigError('refreshCookieName', 'not a valid cookie name (RFC 6265 token)')
  if (/^__host-/i.test(o.refreshName)) throw new LatchConfigError('refreshCookieName', 'a __Host- cookie must have Path=/, but the refresh cookie is scoped to refreshPath; use a __Secure- name')
  if (/^__secure-/i.test(o.refreshName) && !secure) throw new LatchConfigError('insecureCookieForDevelopmentOnly', 'browsers drop __Secure- cookies that are not Secure; also set refreshCookieName without the prefix for plain-HTTP development')
  if (typeof o.refreshPath !== 'string' || o.refreshPath[0] !== '/' || /[;\s]/.test(o.refreshPath)) throw new LatchConfigError('refreshPath', 'must start with / and contain no ; or whitespace')
  for (const origin of options.trustedOrigins ?? []) {
    let u
    try { u = new URL(origin) } catch { u = null }
    if (!u || u.origin !== origin) throw new LatchConfigError('trustedOrigins', `not an origin of the form scheme://host[:port]: ${JSON.stringify(origin)}`)
    o.trusted.add(origin)
  }
  if (o.bearer !== false && o.bearer !== 'online' && o.bearer !== 'offline') {
    throw new LatchConfigError('accessTokens', 'must be false, "online" (POST /v1/sessions/verify per request) or "offline" (signature by JWKS)')
  }
  if (!Number.isInteger(o.maxForm) || o.maxForm <= 0) throw new LatchConfigError('maxFormSize', 'must be a positive integer of bytes')
  const cache = options.cache ?? true
  if (cache !== false && cache !== true && (typeof cache !== 'object' || cache === null)) {
    throw new LatchConfigError('cache', 'must be true, false or {staleAfter, maxEntries}')
  }
  o.validator = cache === false ? new OnlineValidator(client) : new CachedValidator(client, cache === true ? {} : cache)
  if (o.bearer === 'offline') o.offline = offlineVerifier(client, options)
  return o
}

function checkCookie(o, field, name, path, domain) {
  if (!cookies.validName(name)) throw new LatchConfigError(field, 'not a valid cookie name (RFC 6265 token)')
  const host = /^__host-/i.test(name)
  if ((host || /^__secure-/i.test(name)) && !o.secure) {
    throw new LatchConfigError('insecureCookieForDevelopmentOnly', `browsers drop ${name.slice(0, name.indexOf('-', 2) + 1)} cookies that are not Secure; ` +
      'set cookieName to a name without the prefix (e.g. "latch") for plain-HTTP development, or leave this off: ' +
      'http://localhost is a secure context, so Secure cookies already work there in Chromium and Firefox')
  }
  if (host && domain) throw new LatchConfigError('cookieDomain', 'a __Host- cookie must not have a Domain; use a __Secure- or unprefixed cookieName to share the cookie with subdomains')
  if (host && path !== '/') throw new LatchConfigError('cookiePath', 'a __Host- cookie must have Path=/')
  if (typeof path !== 'string' || path[0] !== '/' || /[;\x00-\x1f\x7f-\uffff]/.test(path)) throw new LatchConfigError('cookiePath', "must start with / and contain only printable ASCII without ';'")
  if (domain && !/^\.?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(domain)) {
    throw new LatchConfigError('cookieDomain', 'not a valid domain name')
  }
}

/** Per-request state: req.latch. */
class RequestLatch {
  /** The authenticated session (client view), or null. */
  session = null
  /** 'cookie', 'bearer' or null. */
  method = null
  /** The access token's verified claims (bearer requests). */
  claims = null
  /** Why a presented credential failed (a LatchError), or null. */
  error = null

  #o; #req; #res
  #token = ''      // the session token the request carries (cookie)
  #csrfKey = null  // k of the session
  #anon = null     // {value, secret, key, fresh}
  #cookies = []    // Set-Cookie values to send
  #noStore = false
  #clearSiteData = false

  constructor(o, req, res) {
    this.#o = o; this.#req = req; this.#res = res
    hookHeaders(res, () => this.#commit())
  }

  /** @internal */ _setCookieSession(token, v) {
    this.#token = token
    this.session = v.session
    this.#csrfKey = v.csrfKey
    this.method = 'cookie'
  }
  /** @internal */ _dropDeadCookie(err) {
    this.error = err
    this.#token = ''
    this.#cookies.push(sessionCookie(this.#o, '', true))
    this.#noStore = true
  }
  /** @internal */ _csrfKey() { return this.#csrfKey }
  /** @internal */ _anonKey() {
    const s = csrf.anonSecret(cookies.read(this.#req.headers.cookie, anonName(this.#o)))
    return s ? csrf.anonKey(s) : null
  }

  /**
   * A CSRF token for forms (`csrf_token` field) and scripts (X-CSRF-Token
   * header): the session's, or for a visitor without a session an
   * anonymous one (setting the anonymous cookie if needed). Every call
   * returns a different masking; all are valid. Marks the response
   * Cache-Control: no-store.
   */
  csrfToken() {
    this.#noStore = true
    if (this.session && this.method === 'cookie') {
      if (!this.#csrfKey) throw new LatchError('latch: latch did not send a CSRF key for this session (is latch serve older than the protocol?)')
      return csrf.mask(this.#csrfKey)
    }
    if (!this.#anon) {
      const s = csrf.anonSecret(cookies.read(this.#req.headers.cookie, anonName(this.#o)))
      if (s) {
        this.#anon = {secret: s, key: csrf.anonKey(s)}
      } else {
        const n = csrf.newAnonSecret()
        this.#anon = {secret: n.secret, key: csrf.anonKey(n.secret)}
        this.#cookies.push(anonCookie(this.#o, n.value, false))
      }
    }
    return csrf.mask(this.#anon.key)
  }

  /**
   * Starts a session for a user the handler has just authenticated and sets
   * its cookie. Fixation-safe: the session token the request carried, if
   * any, is revoked. The anonymous CSRF cookie is expired. Answers latch's
   * issued tokens (the refresh and access tokens are for API clients; a
   * browser needs only the cookie, which is set).
   */
  async login({subject, data, claims, acr, amr} = {}) {
    this.#mustNotBeSent('login')
    const iss = await this.#o.client.createSession({
      subject, data, claims, acr, amr,
      ip: clientIP(this.#o, this.#req), userAgent: this.#req.headers['user-agent'],
      replaceSessionToken: this.#token || undefined,
    })
    this.#o.validator.forget(this.#token)
    await this.#adopt(iss)
    this.#cookies.push(anonCookie(this.#o, '', true))
    this.#anon = null
    return iss
  }

  async #adopt(iss) {
    // One verify answers the new session's CSRF key, so this response can
    // render forms for it.
    const v = await this.#o.validator.validate(iss.sessionToken, {})
    this.#token = iss.sessionToken
    this.session = v.session
    this.#csrfKey = v.csrfKey
    this.method = 'cookie'
    this.error = null
    this.#cookies = this.#cookies.filter((c) => !c.startsWith(this.#o.name + '='))
    this.#cookies.push(sessionCookie(this.#o, iss.sessionToken, false, v.session.expiresAt))
    this.#noStore = true
    this.#clearSiteData = false
  }

  /**
   * Ends the session: revokes it in latch (cookie, refresh and access
   * tokens, on every replica), expires the cookie with identical
   * attributes and sends Clear-Site-Data: "cookies". If latch cannot be
   * reached it throws (LatchUnavailableError) and changes nothing.
   */
  async logout() {
    this.#mustNotBeSent('logout')
    if (this.session) await this.#o.client.revokeSession(this.session.id)
    this.#ended()
  }

  /** Signs the user out on every device, this one included. Answers how many sessions were revoked. */
  async logoutEverywhere() {
    this.#mustNotBeSent('logoutEverywhere')
    if (!this.session) throw new LatchUnauthenticatedError(this.error)
    const n = await this.#o.client.revokeSubject(this.session.subject)
    this.#ended()
    return n
  }

  #ended() {
    this.#o.validator.forget(this.#token)
    this.session = null
    this.method = null
    this.#token = ''
    this.#csrfKey = null
    this.#cookies = this.#cookies.filter((c) => !c.startsWith(this.#o.name + '='))
    this.#cookies.push(sessionCookie(this.#o, '', true))
    this.#noStore = true
    this.#clearSiteData = true
  }

  /**
   * Gives the session fresh secrets after a privilege change: the old
   * cookie and every CSRF token rendered before stop working. Sets the new
   * cookie (cookie sessions); answers the issued tokens.
   */
  async renew({claims, authTime, acr, amr} = {}) {
    this.#mustNotBeSent('renew')
    if (!this.session) throw new LatchUnauthenticatedError(this.error)
    const iss = await this.#o.client.renewSession(this.session.id, {claims, authTime, acr, amr})
    this.#o.validator.forget(this.#token)
    if (this.method === 'cookie') await this.#adopt(iss)
    else this.session = iss.session
    return iss
  }

  /** Signs the user out everywhere else; answers how many sessions were revoked. */
  async revokeOthers() {
    if (!this.session) throw new LatchUnauthenticatedError(this.error)
    return this.#o.client.revokeSubject(this.session.subject, {except: this.session.id})
  }

  /**
   * The DPoP proof this request carries, as `{proof, htm, htu}` for
   * LatchClient.createSession's `dpop` (binding a new session to the
   * client's key) — the method and the URL the client addressed
   * (dpopURL) — or undefined without a DPoP header. Several DPoP headers
   * are refused (LatchDPoPError, RFC 9449 §4.3).
   */
  dpopProof() {
    return proofOf(this.#o, this.#req)
  }

  /** Seconds before the session's idle or absolute deadline, whichever is first (0 without a session). */
  idleTimeLeft() {
    if (!this.session) return 0
    const d = Math.min(+this.session.idleExpiresAt, +this.session.expiresAt) - Date.now()
    return d > 0 ? Math.floor(d / 1000) : 0
  }

  #mustNotBeSent(fn) {
    if (this.#res.headersSent) throw new LatchError(`latch: ${fn} called after the response headers were sent; call it before writing the response`)
  }

  #commit() {
    const res = this.#res
    vary(res, 'Cookie')
    if (this.#cookies.length > 0) {
      const prev = res.getHeader('Set-Cookie')
      res.setHeader('Set-Cookie', [...(prev === undefined ? [] : [].concat(prev)), ...this.#cookies])
      if (!this.#noStore && !res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', 'no-cache="Set-Cookie"')
    }
    if (this.#noStore) res.setHeader('Cache-Control', 'no-store')
    if (this.#clearSiteData) res.setHeader('Clear-Site-Data', '"cookies"')
  }
}

async function handle(o, req, res) {
  const l = new RequestLatch(o, req, res)
  req.latch = l
  if (o.bearer) {
    vary(res, 'Authorization')
    const auth = req.headers.authorization
    const scheme = auth === undefined ? null : /^bearer /i.test(auth) ? 'Bearer' : /^dpop /i.test(auth) ? 'DPoP' : null
    if (scheme) {
      const tok = auth.slice(scheme.length + 1).trim()
      l.method = 'bearer'
      try {
        const c = o.offline ? await o.offline(tok) : null
        // The binding (RFC 9449 §7): checked before latch is asked, from
        // the token's claims — verified offline; online, read unverified,
        // which is sound because latch then verifies that very token.
        const claims = c ?? unverifiedClaims(tok)
        if (!claims) {
          // Not a JWS of a JSON object: no token latch issued (as latchhttp,
          // the token is refused before its binding is looked at).
          const e = new LatchError('latch: invalid access token')
          e.code = 'invalid_token'
          throw e
        }
        const relay = checkBinding(o, req, scheme, tok, claims.cnf?.jkt)
        if (c && relay) {
          await verifyProof(relay.proof, {method: relay.htm, url: relay.htu, accessToken: tok, jkt: c.cnf.jkt, replay: o.replay})
        }
        // Offline, the event stream vouches for the session; when it
        // cannot, latch is asked (and a failure to reach it fails closed).
        const status = c ? o.validator.accessTokenStatus?.(c) ?? 'ok' : 'ask'
        if (status === 'revoked') {
          const e = new LatchError('latch: the access token\'s session was revoked or renewed')
          e.code = 'revoked'
          throw e
        }
        if (status === 'ok') {
          l.claims = c
          l.session = offlineSession(c)
        } else {
          const v = await o.client.verifyAccessToken(tok, {ip: clientIP(o, req), userAgent: req.headers['user-agent'], dpop: relay})
          if (v.dpopNonce) res.setHeader('DPoP-Nonce', v.dpopNonce)
          l.session = v.session
          l.claims = c
        }
      } catch (err) {
        // latch's nonce goes back to the client on every answer (protocol §5).
        if (err?.dpopNonce ?? err?.nonce) res.setHeader('DPoP-Nonce', err.dpopNonce ?? err.nonce)
        if (err instanceof LatchUnavailableError) throw err
        l.error = err instanceof LatchError ? err : new LatchError('latch: invalid access token')
        if (!(err instanceof LatchError)) l.error.code = 'invalid_token'
        l.method = 'bearer'
      }
      return true
    }
  }
  const unsafe = !csrf.isSafeMethod(req.method)
  // Layer one, before any latch call: cross-origin unsafe requests are
  // refused whether or not they carry a session (login CSRF).
  if (unsafe && !csrf.sameOrigin(req, o.trusted, o.bypass)) throw new LatchCSRFError('cross-origin')

  const tok = cookies.read(req.headers.cookie, o.name)
  if (tok !== undefined && tok !== '') {
    try {
      const v = await o.validator.validate(tok, {ip: clientIP(o, req), userAgent: req.headers['user-agent']})
      l._setCookieSession(tok, v)
    } catch (err) {
      if (err instanceof LatchError && DEAD.has(err.code)) {
        l._dropDeadCookie(err)
      } else {
        throw err instanceof LatchError ? err : new LatchUnavailableError('unavailable', 'latch: validation failed')
      }
    }
  }
  if (!unsafe) return true
  // The refresh route checks its own SameSite=Strict cookie; it has no
  // session and no form to carry a token.
  if (req.method === 'POST' && pathOf(req) === o.refreshPath) return true
  // Layer two: the synchronizer token, the session's or the anonymous one.
  const key = l.session ? l._csrfKey() : l._anonKey()
  const got = await csrfTokenFrom(o, req)
  if (!got) throw new LatchCSRFError('missing-token')
  if (!csrf.check(key, got)) throw new LatchCSRFError('invalid-token')
  return true
}

/** The X-CSRF-Token header, else the csrf_token field of a url-encoded body (parsed into req.body). */
async function csrfTokenFrom(o, req) {
  const h = req.headers[CSRF_HEADER]
  if (typeof h === 'string' && h !== '') return h
  if (req.body && typeof req.body === 'object' && typeof req.body[CSRF_FIELD] === 'string') return req.body[CSRF_FIELD]
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
  if (req.readableEnded || req._body) return ''
  if (ct === 'multipart/form-data') return multipartToken(req, o.maxForm)
  if (ct !== 'application/x-www-form-urlencoded') return ''
  const raw = await readBody(req, o.maxForm)
  const form = new URLSearchParams(raw)
  const body = {}
  for (const [k, v] of form) if (!(k in body)) body[k] = v
  // Leave the form parsed for the handler, as express.urlencoded() would.
  req.body = body
  req._body = true
  return body[CSRF_FIELD] ?? ''
}

/**
 * Reads a multipart body only as far as the csrf_token field, then puts
 * every byte read back into the request (unshift), so the handler's own
 * parser (multer, busboy) sees the body untouched. Forms put the hidden
 * field first; the token must come within the first MiB of the body.
 */
const MULTIPART_SCAN = 1 << 20

function multipartToken(req, limit) {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(req.headers['content-type'] ?? '')
  if (!m) return Promise.resolve('')
  const delim = Buffer.from(`\r\n--${m[1] ?? m[2]}`)
  const head = Buffer.from('name="csrf_token"')
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    const finish = (tok, err) => {
      req.removeListener('readable', onReadable)
      req.removeListener('end', onEnd)
      req.removeListener('error', onError)
      if (chunks.length) req.unshift(Buffer.concat(chunks))
      if (err) reject(err)
      else resolve(tok)
    }
    const scan = () => {
      // "\r\n" before the first boundary makes every part start with delim.
      const b = Buffer.concat([Buffer.from('\r\n'), ...chunks])
      let at = 0
      for (;;) {
        const part = b.indexOf(delim, at)
        if (part < 0) return null
        const hdrEnd = b.indexOf('\r\n\r\n', part + delim.length)
        if (hdrEnd < 0) return null
        const headers = b.subarray(part + delim.length, hdrEnd)
        const next = b.indexOf(delim, hdrEnd + 4)
        if (headers.indexOf(head) >= 0 && /content-disposition:\s*form-data/i.test(headers.toString('latin1'))) {
          if (next < 0) return null
          return b.toString('utf8', hdrEnd + 4, next)
        }
        if (next < 0) return null
        at = next
      }
    }
    const onReadable = () => {
      let c
      while ((c = req.read()) !== null) {
        size += c.length
        chunks.push(c)
        // The field must come within the first MiB (or maxFormSize):
        // scanning further would let any client make the server copy
        // megabytes per request. Later than that counts as missing.
        if (size > Math.min(limit, MULTIPART_SCAN)) return finish('')
        const tok = scan()
        if (tok !== null) return finish(tok)
      }
    }
    const onEnd = () => finish('')
    const onError = () => {
      const e = new LatchError('latch: the request body could not be read')
      e.code = 'bad_request'
      e.status = 400
      finish('', e)
    }
    req.on('readable', onReadable)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks = []
    req.on('data', (c) => {
      size += c.length
      if (size > limit) {
        const e = new LatchError('latch: the form is larger than maxFormSize')
        e.code = 'too_large'
        e.status = 413
        req.removeAllListeners('data')
        req.resume()
        reject(e)
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', () => {
      const e = new LatchError('latch: the request body could not be read')
      e.code = 'bad_request'
      e.status = 400
      reject(e)
    })
  })
}

function fail(o, err, req, res, next) {
  if (!(err instanceof LatchError)) err = new LatchUnavailableError('unavailable', 'latch: unexpected failure')
  if (o.onError) return o.onError(err, req, res, next)
  defaultError(err, req, res)
}

/**
 * Answers with the error's status as a problem document (RFC 9457) whose
 * `code` a client can branch on: the failed credential's code for 401s
 * (expired, revoked, invalid_token; unauthorized if none was sent), csrf,
 * store_unavailable. It carries no detail from the error.
 */
export function defaultError(err, req, res) {
  const status = err.status ?? 503
  if (res.headersSent) return res.destroy()
  let code = err.code
  if (status === 401 && err instanceof LatchUnauthenticatedError) code = err.reason ?? 'unauthorized'
  else if (status === 503) code = 'store_unavailable'
  if (status === 503) res.setHeader('Retry-After', '5')
  if (err.dpopNonce ?? err.nonce) res.setHeader('DPoP-Nonce', err.dpopNonce ?? err.nonce)
  if (err instanceof LatchDPoPError) {
    // A proof latch refused while binding a session at login (or any
    // relayed call): the client needs the challenge and latch's nonce.
    res.setHeader('WWW-Authenticate', err.challenge ?? dpopChallenge(err))
    return problem(res, 401, err.code, err.description)
  }
  problem(res, status, code)
}

const STATUS_TEXT = {400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 405: 'Method Not Allowed', 413: 'Request Entity Too Large', 503: 'Service Unavailable'}

// ---- SPA refresh flow -------------------------------------------------------

/**
 * Sets the refresh token as an HttpOnly cookie scoped to the refresh route
 * and answers the access token in JSON: what a login route of a single-page
 * app sends after creating a session.
 */
export function sendTokens(mw, res, t, session) {
  const o = mw.options
  res.setHeader('Set-Cookie', refreshCookie(o.refreshCookieName, o.refreshPath, t.refreshToken, o.secure, false))
  res.setHeader('Cache-Control', 'no-store')
  if (t.dpopNonce) res.setHeader('DPoP-Nonce', t.dpopNonce)
  res.json(tokenBody(t, session))
}

function tokenBody(t, session) {
  const b = {access_token: t.accessToken, token_type: t.tokenType, expires_in: t.expiresIn}
  if (session) {
    b.idle_expires_at = session.idleExpiresAt?.toISOString()
    b.expires_at = session.expiresAt?.toISOString()
  }
  return b
}

function refreshCookie(name, path, value, secure, expire) {
  return cookies.serialize({name, value, path, maxAge: 0, expire, secure, sameSite: 'Strict'})
}

function refreshHandler(o) {
  return async (req, res, next) => {
    try {
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST')
        return problem(res, 405, 'method_not_allowed', 'use POST')
      }
      if (!csrf.sameOrigin(req, o.trusted, o.bypass)) {
        return problem(res, 403, 'csrf', 'refresh must come from the same origin')
      }
      const rt = cookies.read(req.headers.cookie, o.refreshName)
      res.setHeader('Cache-Control', 'no-store')
      if (!rt) return problem(res, 401, 'unauthorized', 'no refresh cookie')
      let t
      try {
        // A DPoP-bound session's browser sends a proof for this route:
        // relayed with the method and URL it was made for.
        t = await o.client.refresh(rt, {dpop: proofOf(o, req)})
      } catch (err) {
        if (err?.dpopNonce) res.setHeader('DPoP-Nonce', err.dpopNonce)
        if (err instanceof LatchDPoPError) {
          // A refused proof changes nothing: the cookie stays, and the
          // client may retry (with the nonce for use_dpop_nonce).
          res.setHeader('WWW-Authenticate', err.challenge ?? dpopChallenge(err))
          return problem(res, 401, err.code, err.description)
        }
        if (err instanceof LatchError && (err.status === 401 || DEAD.has(err.code))) {
          res.setHeader('Set-Cookie', refreshCookie(o.refreshName, o.refreshPath, '', o.secure, true))
          return problem(res, 401, err.code, 'sign in again')
        }
        throw err
      }
      res.setHeader('Set-Cookie', refreshCookie(o.refreshName, o.refreshPath, t.refreshToken, o.secure, false))
      if (t.dpopNonce) res.setHeader('DPoP-Nonce', t.dpopNonce)
      res.json(tokenBody(t))
    } catch (err) {
      fail(o, err, req, res, next)
    }
  }
}

/** Expires the SPA's refresh cookie (logout). */
export function clearTokens(mw, res) {
  const o = mw.options
  res.setHeader('Set-Cookie', refreshCookie(o.refreshCookieName, o.refreshPath, '', o.secure, true))
  res.setHeader('Clear-Site-Data', '"cookies"')
  res.setHeader('Cache-Control', 'no-store')
}

function problem(res, status, code, detail) {
  res.statusCode = status
  res.setHeader('Content-Type', 'application/problem+json')
  res.setHeader('Cache-Control', 'no-store')
  res.setHeader('X-Content-Type-Options', 'nosniff')
  const p = {title: STATUS_TEXT[status] ?? 'Error', status, code}
  if (detail) p.detail = detail
  res.end(JSON.stringify(p))
}

// ---- helpers ----------------------------------------------------------------

/**
 * Enforces an access token's DPoP binding for this request and answers
 * the proof to check ({proof, htm, htu}) or undefined: a bound token
 * (jkt) only with the DPoP scheme and exactly one proof; the DPoP scheme
 * only with a bound token (as latchhttp).
 */
function checkBinding(o, req, scheme, tok, jkt) {
  if (scheme === 'Bearer') {
    if (jkt) throw new LatchDPoPError('bound_as_bearer')
    return undefined
  }
  const relay = proofOf(o, req)
  if (!jkt || !relay) throw new LatchDPoPError('proof_missing')
  return relay
}

function proofOf(o, req) {
  const h = req.headers.dpop
  if (h === undefined) return undefined
  // Node joins repeated headers with ", "; a proof has no comma.
  if (typeof h !== 'string' || h.includes(',')) throw new LatchDPoPError('malformed')
  const htu = dpopURL(o, req)
  if (normalizeURL(htu) === null) throw new LatchDPoPError('htu')
  return {proof: h.trim(), htm: req.method, htu}
}

/**
 * The URL the client addressed, the htu its proof must name: options.dpopURL,
 * else the scheme and host of the request — X-Forwarded-Proto and
 * X-Forwarded-Host only when Express's "trust proxy" setting trusts the peer,
 * as req.protocol and req.host do — and its path (originalUrl, so mounted
 * routers see the full path).
 */
function dpopURL(o, req) {
  if (o.dpopURL) return o.dpopURL(req)
  const trust = req.app?.get?.('trust proxy fn')
  const trusted = typeof trust === 'function' && trust(req.socket?.remoteAddress, 0)
  let proto = req.socket?.encrypted ? 'https' : 'http'
  let host = req.headers.host
  if (trusted) {
    const xp = firstValue(req.headers['x-forwarded-proto'])
    const xh = firstValue(req.headers['x-forwarded-host'])
    if (xp) proto = xp.toLowerCase()
    if (xh) host = xh
  }
  return `${proto}://${host}${pathOf(req)}`
}

function firstValue(h) {
  return typeof h === 'string' ? h.split(',')[0].trim() : ''
}

/** The session of an access token verified offline, with what step-up needs (RFC 9068 §2.2.1). */
function offlineSession(c) {
  const s = {id: c.sid, subject: c.sub, claims: c}
  if (Number.isFinite(c.auth_time)) s.authTime = new Date(c.auth_time * 1000)
  if (typeof c.acr === 'string') s.acr = c.acr
  if (Array.isArray(c.amr)) s.amr = c.amr
  return Object.freeze(s)
}

// ---- step-up (RFC 9470) ------------------------------------------------------

// As latch.AuthRequirement.Valid: visible ASCII without '"' and ''.
const ACR_VALUE = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/

/**
 * Middleware for sensitive routes: passes a request on only if its
 * session's user authenticated within maxAge seconds and, with acr, with
 * one of those ACR values — from the session the middleware loaded, so it
 * costs no latch call. As latchhttp.RequireRecentAuth: a request without a
 * session gets requireSession's answer; a Bearer/DPoP request that does not
 * meet the requirement gets 401 insufficient_user_authentication with
 * WWW-Authenticate: Bearer error="insufficient_user_authentication",
 * error_description, max_age and acr_values; a cookie request goes to
 * `reauthenticate(req, res, {maxAge, acrValues})` (per route, else the
 * middleware's option) — a browser needs a page asking for the password —
 * or, without one, gets the same 401 without the header.
 */
function requireRecentAuth(o, requireSession, {maxAge, acr, reauthenticate} = {}) {
  if (maxAge !== undefined && (!Number.isInteger(maxAge) || maxAge <= 0)) throw new LatchConfigError('maxAge', 'must be a positive whole number of seconds')
  const acrValues = acr === undefined ? undefined : [].concat(acr)
  if (acrValues && (acrValues.length === 0 || acrValues.length > 8 || !acrValues.every((v) => typeof v === 'string' && ACR_VALUE.test(v)))) {
    throw new LatchConfigError('acr', 'must be 1 to 8 values of 1 to 128 visible ASCII characters other than \'"\' and \'\\\'')
  }
  if (maxAge === undefined && acrValues === undefined) throw new LatchConfigError('requireRecentAuth', 'give maxAge, acr or both')
  if (reauthenticate !== undefined && typeof reauthenticate !== 'function') throw new LatchConfigError('reauthenticate', 'must be a function (req, res, {maxAge, acrValues})')
  return (req, res, next) => requireSession(req, res, () => {
    const s = req.latch.session
    const tooOld = maxAge !== undefined && (!(s.authTime instanceof Date) || Date.now() - +s.authTime > maxAge * 1000)
    const wrongACR = acrValues !== undefined && !acrValues.includes(s.acr)
    if (!tooOld && !wrongACR) return next()
    const err = new LatchInsufficientAuthError({maxAge, acrValues})
    err.tooOld = tooOld
    err.wrongACR = wrongACR
    if (req.latch.method === 'bearer') {
      res.setHeader('WWW-Authenticate', err.challenge)
      return fail(o, err, req, res, next)
    }
    const re = reauthenticate ?? o.reauthenticate
    if (re) {
      res.setHeader('Cache-Control', 'no-store')
      return re(req, res, {maxAge, acrValues})
    }
    fail(o, err, req, res, next)
  })
}

function pathOf(req) {
  return (req.originalUrl ?? req.url).split('?')[0]
}

function anonName(o) { return o.name + '-csrf' }

/** The session cookie, lasting until the absolute deadline (whole seconds, at least 1), as latchhttp sets it. */
function sessionCookie(o, value, expire, expiresAt) {
  const maxAge = expire ? 0 : Math.max(1, Math.floor((+expiresAt - Date.now()) / 1000))
  return cookies.serialize({name: o.name, value, path: o.path, domain: o.domain, maxAge, expire, secure: o.secure, sameSite: o.sameSite})
}

function anonCookie(o, value, expire) {
  return cookies.serialize({name: anonName(o), value, path: o.path, domain: o.domain, maxAge: ANON_MAX_AGE, expire, secure: o.secure, sameSite: o.sameSite})
}

function clientIP(o, req) {
  // Express computes req.ip from X-Forwarded-For only when the app's
  // "trust proxy" setting says so; otherwise it is the socket's address.
  return req.ip ?? req.socket?.remoteAddress ?? ''
}

function vary(res, field) {
  const cur = res.getHeader('Vary')
  if (cur === undefined || cur === '') return res.setHeader('Vary', field)
  const list = String(cur).split(',').map((s) => s.trim().toLowerCase())
  if (!list.includes(field.toLowerCase()) && !list.includes('*')) res.setHeader('Vary', `${cur}, ${field}`)
}

/** Runs fn once, right before the response headers are written (like on-headers). */
function hookHeaders(res, fn) {
  const writeHead = res.writeHead
  let done = false
  res.writeHead = function (...args) {
    if (!done) {
      done = true
      // Headers passed to writeHead as an object apply after ours.
      fn()
    }
    return writeHead.apply(this, args)
  }
}

function offlineVerifier(client, options) {
  let verifier
  return async (tok) => {
    verifier ??= (async () => {
      const {createRemoteJWKSet, jwtVerify} = await import('jose')
      let issuer = options.issuer
      let jwksURI = options.jwksURI
      if (!issuer || !jwksURI) {
        const md = await client.metadata().catch(() => null)
        issuer ??= md?.issuer
        jwksURI ??= md?.jwks_uri ?? `${client.url}/.well-known/jwks.json`
      }
      if (!issuer) throw new LatchConfigError('issuer', 'offline verification needs the issuer: latch did not publish /.well-known/oauth-authorization-server; pass issuer')
      const jwks = createRemoteJWKSet(new URL(jwksURI))
      return (t) => jwtVerify(t, jwks, {
        issuer, audience: options.audience ?? 'latch', typ: 'at+jwt',
        algorithms: ['EdDSA', 'ES256', 'RS256'], maxTokenAge: undefined, clockTolerance: 30,
      })
    })()
    const verify = await verifier
    try {
      const {payload} = await verify(tok)
      if (typeof payload.sid !== 'string') throw new Error('no sid')
      return payload
    } catch (err) {
      if (err instanceof LatchError) throw err
      const e = new LatchError('latch: the access token was refused')
      e.code = err?.code === 'ERR_JWT_EXPIRED' ? 'expired' : 'invalid_token'
      if (err?.code === 'ERR_JWKS_TIMEOUT' || err?.code === 'ERR_JOSE_GENERIC' && /fetch/i.test(err.message)) {
        throw new LatchUnavailableError('unavailable', 'latch: JWKS could not be fetched')
      }
      throw e
    }
  }
}

export {sessionOf}
export {LatchClient} from './client.js'
export * from './errors.js'
export {DPoPKey, LocalReplayCache} from './dpop.js'
