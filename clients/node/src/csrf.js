// CSRF by docs/protocol.md §2: the same-origin rule of Go's
// net/http.CrossOriginProtection, and masked synchronizer tokens
// base64url(m ‖ (m ⊕ k)) for session keys and anonymous keys.

import {createHmac, randomBytes, timingSafeEqual} from 'node:crypto'

export const KEY_LEN = 32
export const TOKEN_LEN = 86 // base64url of 64 bytes, no padding
const ANON_INFO = 'latch anon csrf v1'
const B64URL = /^[A-Za-z0-9_-]*$/

/** Masks key k with fresh randomness: a token that is never the same twice (BREACH). */
export function mask(k) {
  const b = Buffer.allocUnsafe(2 * KEY_LEN)
  randomBytes(KEY_LEN).copy(b, 0)
  for (let i = 0; i < KEY_LEN; i++) b[KEY_LEN + i] = b[i] ^ k[i]
  return b.toString('base64url')
}

/** Unmasks a token to its key, or returns null for anything malformed. */
export function unmask(tok) {
  if (typeof tok !== 'string' || tok.length !== TOKEN_LEN || !B64URL.test(tok)) return null
  const b = Buffer.from(tok, 'base64url')
  if (b.length !== 2 * KEY_LEN || b.toString('base64url') !== tok) return null // strict: no non-canonical trailing bits
  const k = Buffer.allocUnsafe(KEY_LEN)
  for (let i = 0; i < KEY_LEN; i++) k[i] = b[i] ^ b[KEY_LEN + i]
  return k
}

/** Reports in constant time whether tok is a masking of key k. */
export function check(k, tok) {
  if (!k) return false
  const got = unmask(tok)
  if (!got) return false
  return timingSafeEqual(got, k)
}

/** The anonymous CSRF key of an anonymous cookie's 32 secret bytes. */
export function anonKey(secret) {
  return createHmac('sha256', secret).update(ANON_INFO).digest()
}

/** Decodes an anonymous cookie value to its 32 bytes, or null. */
export function anonSecret(value) {
  if (typeof value !== 'string' || value.length !== 43 || !B64URL.test(value)) return null
  const b = Buffer.from(value, 'base64url')
  return b.length === KEY_LEN && b.toString('base64url') === value ? b : null
}

/** A fresh anonymous cookie value. */
export function newAnonSecret() {
  const b = randomBytes(KEY_LEN)
  return {value: b.toString('base64url'), secret: b}
}

export function isSafeMethod(m) {
  return m === 'GET' || m === 'HEAD' || m === 'OPTIONS' || m === 'TRACE'
}

/**
 * The first layer, as Go's CrossOriginProtection.Check: refuses an unsafe
 * request whose Sec-Fetch-Site is neither same-origin nor none; without
 * that header, one whose Origin host differs from Host. Requests with
 * neither header pass (non-browser clients). Trusted origins and bypass
 * paths are exempt. Returns true when the request may proceed.
 */
export function sameOrigin(req, trusted, bypass) {
  if (isSafeMethod(req.method)) return true
  const sfs = req.headers['sec-fetch-site']
  if (sfs !== undefined && sfs !== '') {
    if (sfs === 'same-origin' || sfs === 'none') return true
    return exempt(req, trusted, bypass)
  }
  const origin = req.headers.origin
  if (origin === undefined || origin === '') return true
  try {
    if (new URL(origin).host === req.headers.host) return true
  } catch {
    // an unparsable Origin is cross-origin
  }
  return exempt(req, trusted, bypass)
}

function exempt(req, trusted, bypass) {
  if (bypass.size > 0) {
    const path = (req.originalUrl ?? req.url).split('?')[0]
    if (bypass.has(`${req.method} ${path}`) || bypass.has(path)) return true
  }
  const origin = req.headers.origin
  return origin !== undefined && trusted.has(origin)
}
