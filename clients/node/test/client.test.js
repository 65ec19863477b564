// Every LatchClient call against a real latch serve, and every error code
// it can answer.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {LatchClient, LatchConfigError, LatchError, LatchProblemError, LatchUnavailableError} from '../src/index.js'
import {API_KEY, LATCH_URL, TOKEN_RE, client, freePort, subject} from './helpers.js'

const c = client()

async function rejects(p, code, status) {
  const err = await p.then(() => assert.fail(`expected a ${code} error`), (e) => e)
  assert.ok(err instanceof LatchError, `not a LatchError: ${err}`)
  assert.equal(err.code, code, err.message)
  if (status !== undefined) assert.equal(err.status, status)
  assert.doesNotMatch(err.message, TOKEN_RE, 'an error message carries a token')
  assert.doesNotMatch(String(err.stack), TOKEN_RE)
  return err
}

test('createSession answers tokens and the session view', async () => {
  const sub = subject()
  const iss = await c.createSession({subject: sub, data: {cart: 1}, claims: {role: 'admin'}, ip: '203.0.113.7', userAgent: 'test-agent'})
  assert.match(iss.sessionToken, /^lts_/)
  assert.match(iss.refreshToken, /^ltr_/)
  assert.match(iss.accessToken, /^eyJ/)
  assert.equal(iss.tokenType, 'Bearer')
  assert.ok(iss.expiresIn > 0)
  assert.match(iss.session.id, /^ses_/)
  assert.equal(iss.session.subject, sub)
  assert.deepEqual(iss.session.data, {cart: 1})
  assert.deepEqual(iss.session.claims, {role: 'admin'})
  assert.equal(iss.session.ip, '203.0.113.7')
  assert.equal(iss.session.userAgent, 'test-agent')
  assert.ok(iss.session.expiresAt instanceof Date && iss.session.expiresAt > new Date())
  assert.ok(iss.session.idleExpiresAt <= iss.session.expiresAt)
})

test('verifySession answers the session, a CSRF token and the cache lifetime', async () => {
  const iss = await c.createSession({subject: subject()})
  const v = await c.verifySession(iss.sessionToken)
  assert.equal(v.session.id, iss.session.id)
  assert.equal(v.csrfToken.length, 86)
  assert.ok(v.maxAge > 0, 'verify answers Cache-Control: private, max-age=N')
  const v2 = await c.verifySession(iss.sessionToken)
  assert.notEqual(v2.csrfToken, v.csrfToken, 'CSRF tokens are masked afresh')
})

test('verifyAccessToken checks the signature and that the session is live', async () => {
  const iss = await c.createSession({subject: subject()})
  const v = await c.verifyAccessToken(iss.accessToken)
  assert.equal(v.session.id, iss.session.id)
  await c.revokeSession(iss.session.id)
  await rejects(c.verifyAccessToken(iss.accessToken), 'revoked', 401)
  await rejects(c.verifyAccessToken(iss.accessToken.slice(0, -4) + 'AAAA'), 'invalid_token', 401)
})

test('verify error codes: invalid_token, revoked, refresh token refused as a session token', async () => {
  const iss = await c.createSession({subject: subject()})
  await rejects(c.verifySession('lts_garbage'), 'invalid_token', 401)
  await rejects(c.verifySession(iss.refreshToken), 'invalid_token', 401)
  await c.revokeSession(iss.session.id)
  await rejects(c.verifySession(iss.sessionToken), 'revoked', 401)
})

test('getSession and patchSession with If-Match', async () => {
  const iss = await c.createSession({subject: subject(), data: {a: 1, b: 2}})
  const g = await c.getSession(iss.session.id)
  assert.equal(g.session.id, iss.session.id)
  assert.match(g.etag, /^"\d+"$/)
  const p = await c.patchSession(iss.session.id, {b: null, c: 3}, {ifMatch: g.etag})
  assert.deepEqual(p.session.data, {a: 1, c: 3})
  assert.notEqual(p.etag, g.etag)
  await rejects(c.patchSession(iss.session.id, {d: 4}, {ifMatch: g.etag}), 'conflict', 412)
  const p2 = await c.patchSession(iss.session.id, {d: 4})
  assert.deepEqual(p2.session.data, {a: 1, c: 3, d: 4})
})

test('getSession of an unknown or revoked session is not_found; a bad ID is bad_request', async () => {
  const iss = await c.createSession({subject: subject()})
  await c.revokeSession(iss.session.id)
  await c.revokeSession(iss.session.id) // idempotent
  await rejects(c.getSession(iss.session.id), 'not_found', 404)
  await rejects(c.getSession('not-an-id'), 'bad_request', 400)
})

test('renewSession: new tokens, the old ones dead at once', async () => {
  const iss = await c.createSession({subject: subject()})
  const r = await c.renewSession(iss.session.id, {claims: {role: 'admin'}})
  assert.equal(r.session.id, iss.session.id)
  assert.notEqual(r.sessionToken, iss.sessionToken)
  assert.deepEqual(r.session.claims, {role: 'admin'})
  const e = await rejects(c.verifySession(iss.sessionToken), 'invalid_token', 401)
  assert.equal(e.status, 401)
  await rejects(c.refresh(iss.refreshToken), e.code === 'invalid_token' ? 'invalid_token' : e.code)
  assert.equal((await c.verifySession(r.sessionToken)).session.id, iss.session.id)
})

test('listSessions and revokeSubject with except', async () => {
  const sub = subject()
  const a = await c.createSession({subject: sub})
  const b = await c.createSession({subject: sub})
  const d = await c.createSession({subject: sub})
  const list = await c.listSessions(sub)
  assert.deepEqual(new Set(list.map((s) => s.id)), new Set([a.session.id, b.session.id, d.session.id]))
  assert.equal(await c.revokeSubject(sub, {except: a.session.id}), 2)
  assert.deepEqual((await c.listSessions(sub)).map((s) => s.id), [a.session.id])
  await rejects(c.verifySession(b.sessionToken), 'revoked')
  assert.equal(await c.revokeSubject(sub), 1)
  assert.deepEqual(await c.listSessions(sub), [])
})

test('refresh rotates; a rotated token after the grace window is refresh_reuse and revokes the session', async (t) => {
  // The shared server has the default 10 s grace; a second server with a
  // tiny grace shows reuse detection without sleeping long.
  const {latchServer} = await import('./helpers.js')
  const srv = await latchServer(['--refresh-grace', '1ms'])
  t.after(() => srv.stop())
  const c2 = new LatchClient({url: srv.url, apiKey: srv.apiKey})
  const iss = await c2.createSession({subject: subject()})
  const r1 = await c2.refresh(iss.refreshToken)
  assert.match(r1.refreshToken, /^ltr_/)
  assert.notEqual(r1.refreshToken, iss.refreshToken)
  assert.match(r1.accessToken, /^eyJ/)
  await new Promise((r) => setTimeout(r, 20))
  await rejects(c2.refresh(iss.refreshToken), 'refresh_reuse', 401)
  await rejects(c2.verifySession(iss.sessionToken), 'revoked', 401)
  await rejects(c2.refresh('ltr_nope'), 'invalid_token', 401)
  c2.close()
})

test('refresh within the grace window yields the same successor (tabs refreshing at once)', async () => {
  const iss = await c.createSession({subject: subject()})
  const [x, y] = await Promise.all([c.refresh(iss.refreshToken), c.refresh(iss.refreshToken)])
  assert.equal(x.refreshToken, y.refreshToken)
})

test('expired: an idle session', async (t) => {
  const {latchServer} = await import('./helpers.js')
  const srv = await latchServer(['--idle-timeout', '1s', '--touch-interval', '500ms'])
  t.after(() => srv.stop())
  const c2 = new LatchClient({url: srv.url, apiKey: srv.apiKey})
  const iss = await c2.createSession({subject: subject()})
  await new Promise((r) => setTimeout(r, 1500))
  await rejects(c2.verifySession(iss.sessionToken), 'expired', 401)
  c2.close()
})

test('whoami and logout with an access token', async () => {
  const iss = await c.createSession({subject: subject()})
  assert.equal((await c.whoami(iss.accessToken)).session.id, iss.session.id)
  await c.logout(iss.accessToken)
  await rejects(c.whoami(iss.accessToken), 'revoked', 401)
})

test('keys: list, rotate, JWKS and metadata', async () => {
  const before = await c.listKeys()
  assert.ok(before.length >= 1)
  const r = await c.rotateKeys()
  assert.ok(r.kid)
  const after = await c.listKeys()
  assert.ok(after.some((k) => k.kid === r.kid))
  const jwks = await c.jwks()
  assert.ok(Array.isArray(jwks.keys) && jwks.keys.length >= 1)
  assert.ok(jwks.keys.every((k) => k.d === undefined), 'JWKS holds no private key')
  const md = await c.metadata()
  assert.ok(md.issuer)
  assert.match(md.jwks_uri, /\/\.well-known\/jwks\.json$/)
})

test('error codes: unauthorized without or with a wrong API key, bad_request, too_large', async () => {
  await rejects(new LatchClient({url: LATCH_URL, apiKey: 'x'.repeat(40)}).createSession({subject: 'a'}), 'unauthorized', 401)
  const noKey = new LatchClient({url: LATCH_URL, apiKey: ''})
  await assert.rejects(noKey.createSession({subject: 'a'}), LatchConfigError)
  await rejects(c.createSession({subject: ''}), 'bad_request', 400)
  await rejects(c.createSession({subject: 'a', data: {x: 'y'.repeat(70 * 1024)}}), 'too_large', 413)
  await rejects(c.verifySession(''), 'bad_request', 400)
})

test('unavailable: nothing listening, and timeout', async () => {
  const port = await freePort()
  const dead = new LatchClient({url: `http://127.0.0.1:${port}`, apiKey: API_KEY})
  const e = await rejects(dead.verifySession('lts_x'), 'unavailable', 503)
  assert.ok(e instanceof LatchUnavailableError)
  // A server that accepts and never answers.
  const net = await import('node:net')
  const socks = []
  const silent = net.createServer((s) => socks.push(s))
  await new Promise((r) => silent.listen(0, '127.0.0.1', r))
  const slow = new LatchClient({url: `http://127.0.0.1:${silent.address().port}`, apiKey: API_KEY, timeout: 200})
  const t = await rejects(slow.verifySession('lts_secret_token_value_that_must_not_leak'), 'timeout', 503)
  assert.ok(t instanceof LatchUnavailableError)
  socks.forEach((s) => s.destroy())
  silent.close()
})

test('store_unavailable: latch answers 503 when its store is gone', async (t) => {
  const {latchServer, redisServer, KEK} = await import('./helpers.js')
  const redis = await redisServer()
  t.after(() => redis.stop())
  const srv = await latchServer([], {store: redis.url, env: {LATCH_KEK: KEK}})
  t.after(() => srv.stop())
  const c2 = new LatchClient({url: srv.url, apiKey: srv.apiKey, timeout: 5000})
  const iss = await c2.createSession({subject: subject()})
  await redis.stop()
  const e = await rejects(c2.verifySession(iss.sessionToken), 'store_unavailable', 503)
  assert.ok(e instanceof LatchUnavailableError)
  await assert.rejects(c2.ready(), LatchUnavailableError)
  c2.close()
})

test('configuration is refused with a reason', () => {
  assert.throws(() => new LatchClient({url: 'http://latch.example.com', apiKey: API_KEY}), (e) => e instanceof LatchConfigError && e.field === 'url' && /unencrypted/.test(e.message))
  assert.throws(() => new LatchClient({url: 'ftp://x', apiKey: API_KEY}), LatchConfigError)
  assert.throws(() => new LatchClient({url: LATCH_URL, apiKey: 'k3y-v4lue'}), (e) => e.field === 'apiKey' && !e.message.includes('k3y-v4lue'))
  assert.throws(() => new LatchClient({url: LATCH_URL, apiKey: API_KEY, timeout: 0}), LatchConfigError)
  assert.ok(new LatchClient({url: 'http://latch.internal:8080', apiKey: API_KEY, insecureHTTP: true}))
  assert.ok(new LatchClient({url: 'https://latch.example.com', apiKey: API_KEY}))
})

test('the API key comes from LATCH_API_KEY', async () => {
  const fromEnv = new LatchClient()
  assert.equal(fromEnv.url, LATCH_URL)
  const iss = await fromEnv.createSession({subject: subject()})
  assert.match(iss.session.id, /^ses_/)
})

test('problem errors are LatchProblemError with status, title, detail', async () => {
  const e = await rejects(c.verifySession('lts_x'), 'invalid_token', 401)
  assert.ok(e instanceof LatchProblemError)
  assert.equal(typeof e.title, 'string')
})

test('answers the pool reads: chunked bodies; malformed answers are unavailable, never a crash', async (t) => {
  const net = await import('node:net')
  const replies = [
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5\r\n{"key\r\nb\r\ns":[{"kid":\r\n9\r\n"k1"}]}  \r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{x}',
    'HTTP/1.1 200 OK\r\n\r\n{}',
    'garbage\r\n\r\n',
    'HTTP/1.1 401 Unauthorized\r\nContent-Type: application/problem+json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{"code":"unauthorized","status":401} ',
  ]
  let i = 0
  const srv = net.createServer((s) => s.on('data', () => { s.write(replies[i++]); if (i >= 3) s.end() }))
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  t.after(() => srv.close())
  const raw = new LatchClient({url: `http://127.0.0.1:${srv.address().port}`, apiKey: API_KEY, timeout: 1000})
  assert.deepEqual((await raw.listKeys()).map((k) => k.kid), ['k1'])
  await rejects(raw.listKeys(), 'unavailable', 503)
  await rejects(raw.listKeys(), 'unavailable', 503)
  await rejects(raw.listKeys(), 'unavailable', 503)
  await rejects(raw.listKeys(), 'unauthorized', 401)
  raw.close()
})
