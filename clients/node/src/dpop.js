// DPoP (RFC 9449) for Node: a key that makes proofs (DPoPKey, for a Node
// process that is itself the DPoP client), and the strict local proof
// check the Express middleware uses for offline access-token verification
// (verifyProof). It mirrors the Go package dpop: the same checks, in the
// same order, with the same reasons and descriptions, so a refusal reads
// the same from latch serve, latchhttp and this package.

import {createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, timingSafeEqual, verify} from 'node:crypto'
import {LatchDPoPError} from './errors.js'

/** How old a proof's iat may be (ms), as latch serve. */
export const DEFAULT_WINDOW = 60_000
/** How far in the future iat may be (ms): client clocks run fast. */
export const DEFAULT_SKEW = 5_000
/** The longest proof read, in bytes. */
export const MAX_PROOF_SIZE = 8 << 10
const MAX_JTI = 256

/** The proof algorithms accepted, for the algs parameter of a challenge. */
export const ALGORITHMS = ['EdDSA', 'Ed25519', 'ES256', 'RS256'] // as dpop.Algorithms: Ed25519 is RFC 9864's name for EdDSA

/** The WWW-Authenticate value (RFC 9449 §7.1) for a refusal: byte for byte latchhttp's. */
export function challenge(err) {
  let c = `DPoP algs="${ALGORITHMS.join(' ')}"`
  if (err instanceof LatchDPoPError) c += `, error="${err.code}", error_description="${err.description}"`
  return c
}

/**
 * A DPoP key pair held by this process, for a Node program that calls
 * latch (or a resource server) as a DPoP client itself. The private key is
 * a KeyObject kept in a private field; only the public JWK and its
 * thumbprint are exposed.
 *
 *   const key = DPoPKey.generate()                 // ES256; or {alg: 'EdDSA'}
 *   await client.createSession({subject, dpopJkt: key.jkt})
 *   await client.refresh(refreshToken, {dpop: key}) // proof made and sent, nonce retry included
 */
export class DPoPKey {
  #private
  #alg
  #jwk
  #jkt
  /** The server nonce to put in the next proof (RFC 9449 §8), learnt from DPoP-Nonce. */
  nonce = undefined

  /** Wraps an existing private KeyObject (EC P-256 or Ed25519). Most users call DPoPKey.generate(). */
  constructor(privateKey) {
    const type = privateKey?.asymmetricKeyType
    if (privateKey?.type !== 'private' || (type !== 'ec' && type !== 'ed25519')) {
      throw new TypeError('latch: DPoPKey needs a private EC P-256 or Ed25519 KeyObject')
    }
    const jwk = createPublicKey(privateKey).export({format: 'jwk'})
    if (type === 'ec' && jwk.crv !== 'P-256') throw new TypeError('latch: DPoPKey supports EC keys on P-256 only (ES256)')
    this.#private = privateKey
    this.#alg = type === 'ec' ? 'ES256' : 'EdDSA'
    this.#jwk = Object.freeze(type === 'ec' ? {kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y} : {kty: 'OKP', crv: 'Ed25519', x: jwk.x})
    this.#jkt = thumbprint(this.#jwk)
  }

  /** A new key pair: alg 'ES256' (default) or 'EdDSA'. */
  static generate({alg = 'ES256'} = {}) {
    if (alg === 'ES256') return new DPoPKey(generateKeyPairSync('ec', {namedCurve: 'P-256'}).privateKey)
    if (alg === 'EdDSA' || alg === 'Ed25519') return new DPoPKey(generateKeyPairSync('ed25519').privateKey)
    throw new TypeError('latch: DPoPKey alg must be ES256 or EdDSA')
  }

  get alg() { return this.#alg }
  /** The public key as a JWK (no private member). */
  get publicJwk() { return this.#jwk }
  /** Its RFC 7638 SHA-256 thumbprint, base64url: what dpop_jkt and cnf.jkt hold. */
  get jkt() { return this.#jkt }

  /**
   * A proof for one request: htm (method), htu (URL; query and fragment are
   * dropped), ath for an access token, and the nonce (this.nonce unless
   * given). Each call makes a fresh jti.
   */
  proof({htm, htu, accessToken, nonce = this.nonce, iat = Math.floor(Date.now() / 1000)}) {
    if (typeof htm !== 'string' || !htm || typeof htu !== 'string') throw new TypeError('latch: a DPoP proof needs htm and htu')
    const u = new URL(htu)
    u.search = ''
    u.hash = ''
    const header = {typ: 'dpop+jwt', alg: this.#alg, jwk: this.#jwk}
    const claims = {jti: randomBytes(16).toString('base64url'), htm, htu: u.href, iat}
    if (accessToken !== undefined) claims.ath = ath(accessToken)
    if (nonce) claims.nonce = nonce
    const input = `${b64json(header)}.${b64json(claims)}`
    const sig = this.#alg === 'ES256'
      ? sign('sha256', Buffer.from(input), {key: this.#private, dsaEncoding: 'ieee-p1363'})
      : sign(null, Buffer.from(input), this.#private)
    return `${input}.${sig.toString('base64url')}`
  }

  toJSON() { return {alg: this.#alg, jkt: this.#jkt} }
}

/** base64url(SHA-256(accessToken)): a proof's ath. */
export function ath(accessToken) {
  return createHash('sha256').update(accessToken).digest('base64url')
}

/** The RFC 7638 SHA-256 thumbprint (base64url) of a public JWK. */
export function thumbprint(jwk) {
  let members
  switch (jwk.kty) {
    case 'EC': members = {crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y}; break
    case 'OKP': members = {crv: jwk.crv, kty: 'OKP', x: jwk.x}; break
    case 'RSA': members = {e: jwk.e, kty: 'RSA', n: jwk.n}; break
    default: throw new TypeError('latch: unsupported JWK kty')
  }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

/**
 * The form htu is compared in (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3): scheme
 * and host in lower case, default port dropped, dot segments removed,
 * percent-encoding normalised, no query or fragment; as dpop.NormalizeURL.
 * Answers null for anything but an absolute http(s) URL without user info.
 */
export function normalizeURL(raw) {
  let u
  try { u = new URL(raw) } catch { return null }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.host || u.username || u.password) return null
  const path = u.pathname.replace(/%([0-9a-fA-F]{2})/g, (m, h) => {
    const c = String.fromCharCode(parseInt(h, 16))
    return /[A-Za-z0-9\-._~]/.test(c) ? c : '%' + h.toUpperCase()
  })
  return `${u.protocol}//${u.host}${path || '/'}`
}

// Header parameters latch does not implement, or that would name the key
// elsewhere than jwk (as the Go verifier).
const REFUSED_HEADERS = new Set(['crit', 'b64', 'zip', 'enc', 'jku', 'x5u', 'x5c', 'kid'])
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
const B64URL = /^[A-Za-z0-9_-]+$/

function refuse(reason, nonce) { return new LatchDPoPError(reason, {nonce}) }

/**
 * A replay cache of one process: remembers each accepted proof's key until
 * its deadline. With several app processes behind a load balancer each has
 * its own, so a proof replayed to another process within the window is not
 * caught; pass a shared cache (seen(key, untilMs) → boolean) to catch it.
 */
export class LocalReplayCache {
  #seen = new Map() // key -> until (ms)
  #max
  #pruneAt = 1024
  /** maxEntries bounds memory (about 150 bytes an entry); a full cache of live entries refuses proofs. */
  constructor({maxEntries = 1_000_000} = {}) { this.#max = maxEntries }
  get size() { return this.#seen.size }
  /** True the first time key is seen before its deadline, false on a replay. */
  seen(key, until) {
    const now = Date.now()
    const prev = this.#seen.get(key)
    if (prev !== undefined && prev > now) return false
    // Expired entries go whenever the map has doubled since the last sweep:
    // amortised O(1), and memory stays near twice the live entries.
    if (this.#seen.size >= Math.min(this.#pruneAt, this.#max)) {
      for (const [k, u] of this.#seen) if (u <= now) this.#seen.delete(k)
      this.#pruneAt = Math.max(1024, 2 * this.#seen.size)
    }
    // Full of live entries: refuse rather than forget one (fail closed).
    if (this.#seen.size >= this.#max) return false
    this.#seen.set(key, until)
    return true
  }
}

/**
 * Checks a proof for one use, as the Go dpop.Verifier does: compact JWS of
 * JSON objects, typ dpop+jwt, an asymmetric alg matching a public-only
 * jwk, the signature, htm, htu, iat within the window, ath for
 * accessToken, the key's thumbprint equal to jkt, and last a jti the replay
 * cache has not seen (so a refusal records nothing). Throws a
 * LatchDPoPError naming the reason; answers {jkt, iat}.
 */
export async function verifyProof(proof, {method, url, accessToken, jkt, replay, window = DEFAULT_WINDOW, skew = DEFAULT_SKEW, now = Date.now()}) {
  if (typeof proof !== 'string' || proof === '') throw refuse('proof_missing')
  if (proof.length > MAX_PROOF_SIZE) throw refuse('too_large')
  const parts = proof.split('.')
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) throw refuse('malformed')
  const header = strictObject(parts[0])
  if (!header) throw refuse('malformed')
  for (const h of Object.keys(header)) if (REFUSED_HEADERS.has(h)) throw refuse('header')
  if (!optionalString(header, 'typ') || !optionalString(header, 'alg')) throw refuse('malformed')
  if (header.typ !== 'dpop+jwt') throw refuse('typ')
  const alg = header.alg
  if (alg === undefined) throw refuse('alg')
  if (alg.toLowerCase() === 'none') throw refuse('alg_none')
  if (/^HS/i.test(alg)) throw refuse('alg_symmetric')
  const jwk = header.jwk
  if (!jwk || typeof jwk !== 'object' || Array.isArray(jwk)) throw refuse('jwk')
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw refuse('private_key')
  let key, got
  try {
    ({key, jkt: got} = publicKeyFor(alg, jwk))
  } catch (err) {
    throw err instanceof LatchDPoPError ? err : refuse('jwk')
  }
  const input = Buffer.from(`${parts[0]}.${parts[1]}`)
  const sig = Buffer.from(parts[2], 'base64url')
  let ok = false
  try {
    ok = alg === 'ES256' ? verify('sha256', input, {key, dsaEncoding: 'ieee-p1363'}, sig)
      : alg === 'RS256' ? verify('sha256', input, key, sig)
        : verify(null, input, key, sig)
  } catch { ok = false }
  if (!ok) throw refuse('signature')
  const claims = strictObject(parts[1])
  if (!claims || !['jti', 'htm', 'htu', 'ath', 'nonce'].every((n) => optionalString(claims, n))) throw refuse('malformed')
  const {jti, htm, htu, iat} = claims
  if (jti === undefined || jti === '' || htm === undefined || htu === undefined || iat === undefined) throw refuse('missing_claim')
  if (jti.length > MAX_JTI || typeof iat !== 'number' || iat < 0 || iat > 2 ** 40) throw refuse('malformed')
  if (htm !== method) throw refuse('htm')
  const want = normalizeURL(url)
  if (want === null) throw new TypeError('latch: the request URL is not an absolute http(s) URL')
  if (normalizeURL(htu) !== want) throw refuse('htu')
  const iatMs = iat * 1000
  if (now - iatMs > window) throw refuse('iat_stale')
  if (iatMs - now > skew) throw refuse('iat_future')
  if (accessToken !== undefined && accessToken !== '') {
    if (claims.ath === undefined) throw refuse('ath_missing')
    if (!same(claims.ath, ath(accessToken))) throw refuse('ath')
  } else if (claims.ath !== undefined) {
    throw refuse('ath_unexpected')
  }
  if (jkt && !same(got, jkt)) throw refuse('key_mismatch')
  // The replay key is a hash of the thumbprint and the jti (jti is unique
  // per key), kept for the whole window from now.
  const rkey = 'dpop:' + createHash('sha256').update(got).update('\0').update(jti).digest('base64url')
  if (!(await replay.seen(rkey, Date.now() + window + skew))) throw refuse('jti_replayed')
  return {jkt: got, iat}
}

// Imported proof keys by their RFC 7638 members: a client signs many
// proofs with one key, and importing a JWK (an EC point's validation above
// all) costs more than the signature check itself. Bounded; the oldest go
// first.
const KEYS = new Map()
const MAX_KEYS = 10_000

/** The public KeyObject and the RFC 7638 thumbprint of a proof's jwk, for alg. */
function publicKeyFor(alg, jwk) {
  const want = {ES256: ['EC', 'P-256'], EdDSA: ['OKP', 'Ed25519'], Ed25519: ['OKP', 'Ed25519'], RS256: ['RSA']}[alg]
  if (!want) throw refuse('alg')
  if (jwk.kty !== want[0] || (want[1] && jwk.crv !== want[1])) throw refuse('alg')
  const members = jwk.kty === 'RSA' ? {e: jwk.e, kty: 'RSA', n: jwk.n} : jwk.kty === 'EC' ? {crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y} : {crv: jwk.crv, kty: 'OKP', x: jwk.x}
  for (const v of Object.values(members)) if (typeof v !== 'string' || !B64URL.test(v)) throw refuse('jwk')
  const canonical = JSON.stringify(members) // RFC 7638: the required members, sorted, no whitespace
  let k = KEYS.get(canonical)
  if (!k) {
    const key = createPublicKey({key: members, format: 'jwk'})
    if (jwk.kty === 'RSA' && key.asymmetricKeyDetails.modulusLength < 2048) throw refuse('jwk')
    k = {key, jkt: createHash('sha256').update(canonical).digest('base64url')}
    if (KEYS.size >= MAX_KEYS) KEYS.delete(KEYS.keys().next().value)
    KEYS.set(canonical, k)
  }
  return k
}

function jsonObject(seg) {
  let v
  try {
    v = JSON.parse(Buffer.from(seg, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  return v && typeof v === 'object' && !Array.isArray(v) ? v : null
}

/**
 * A JSON object whose members are all distinct, as the Go verifier demands
 * (JSON.parse would silently keep the last of two), or null.
 */
function strictObject(seg) {
  const text = Buffer.from(seg, 'base64url').toString('utf8')
  const v = jsonObject(seg)
  if (!v) return null
  // Collect the top-level member names: strings at depth 1 followed by ':'.
  const names = new Set()
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]
    if (ch === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      let k = j + 1
      while (k < text.length && ' \t\n\r'.includes(text[k])) k++
      if (depth === 1 && text[k] === ':') {
        const name = JSON.parse(text.slice(i, j + 1))
        if (names.has(name)) return null
        names.add(name)
      }
      i = j
    } else if (ch === '{' || ch === '[') depth++
    else if (ch === '}' || ch === ']') depth--
  }
  return v
}

function optionalString(o, name) { return o[name] === undefined || typeof o[name] === 'string' }

function same(a, b) {
  const x = Buffer.from(String(a))
  const y = Buffer.from(String(b))
  return x.length === y.length && timingSafeEqual(x, y)
}

function b64json(v) { return Buffer.from(JSON.stringify(v)).toString('base64url') }

/** The claims of a compact JWS without checking anything (only to read cnf.jkt of a token latch verified). */
export function unverifiedClaims(jws) {
  const p = typeof jws === 'string' ? jws.split('.') : []
  return p.length === 3 ? jsonObject(p[1]) : null
}
