// Cached validation (docs/protocol.md §4) against a real latch serve and
// its event stream: hits cost no round trip; revocation, renewal and
// revoke-all are seen through the stream; a stopped or silent stream
// empties the cache and validation goes online (fail closed when latch is
// gone); failures are never cached; CSRF is checked against cached keys.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import express from 'express'
import {latch, LatchClient} from '../src/express.js'
import {Jar, client, latchServer, listen, request, subject} from './helpers.js'

const c = client()
const SAME = {'sec-fetch-site': 'same-origin'}

function app(cl, options = {}) {
  const sessions = latch({client: cl, ...options})
  const a = express()
  a.use(sessions)
  a.get('/form', (req, res) => res.json({csrf: req.latch.csrfToken()}))
  a.get('/me', sessions.requireSession, (req, res) => res.json({id: req.latch.session.id}))
  a.post('/transfer', sessions.requireSession, (req, res) => res.json({ok: true}))
  return {a, sessions}
}

async function waitFor(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function started(t, cl = c, options = {}) {
  const {a, sessions} = app(cl, options)
  const srv = await listen(a)
  t.after(async () => { sessions.close(); await srv.close() })
  await waitFor(() => sessions.cache.live, 10_000, 'the event stream')
  return {base: srv.base, cache: sessions.cache}
}

/**
 * Requests with cookie until its session is cached: on a loaded machine
 * the stream can miss its 250 ms bound around one verify, and then the
 * answer is (rightly) not stored.
 */
async function warm(base, cookie, cache) {
  const before = cache.size
  for (let i = 0; i < 50; i++) {
    assert.equal((await request(base, 'GET', '/me', {headers: {cookie}})).status, 200)
    if (cache.size > before) return
  }
  assert.fail('the session was never cached (the stream stayed stale)')
}

async function cookieFor(sub = subject()) {
  const iss = await c.createSession({subject: sub})
  return {iss, cookie: `__Host-latch=${iss.sessionToken}`}
}

test('a hot session is answered from memory: one verify, then hits', async (t) => {
  const {base, cache} = await started(t)
  const {cookie} = await cookieFor()
  await warm(base, cookie, cache)
  const misses = cache.stats.misses
  const hits = cache.stats.hits
  for (let i = 0; i < 20; i++) assert.equal((await request(base, 'GET', '/me', {headers: {cookie}})).status, 200)
  // No verify for a cached session, but for a stale moment on a loaded machine.
  assert.ok(cache.stats.hits - hits >= 18, `hits ${cache.stats.hits - hits}, misses ${cache.stats.misses - misses} of 20`)
})

test('a revocation through latch is seen through the stream', async (t) => {
  const {base, cache} = await started(t)
  const {iss, cookie} = await cookieFor()
  await warm(base, cookie, cache)
  assert.equal(cache.size, 1)
  const t0 = performance.now()
  await c.revokeSession(iss.session.id)
  let status
  while ((status = (await request(base, 'GET', '/me', {headers: {cookie}})).status) === 200) {
    assert.ok(performance.now() - t0 < 2000, 'the revocation was not seen')
  }
  const ms = performance.now() - t0
  assert.equal(status, 401)
  assert.ok(cache.live, 'seen by invalidation, with the stream live (not by a stale stream)')
  t.diagnostic(`revocation seen after ${ms.toFixed(1)} ms`)
})

test('renewal and revoke-all-but-one invalidate by the event table', async (t) => {
  const {base, cache} = await started(t)
  const sub = subject()
  const a = await cookieFor(sub)
  const b = await cookieFor(sub)
  const d = await cookieFor(sub)
  for (const x of [a, b, d]) await warm(base, x.cookie, cache)
  assert.equal(cache.size, 3)
  await c.revokeSubject(sub, {except: a.iss.session.id})
  await waitFor(() => !cache.has(b.iss.sessionToken) && !cache.has(d.iss.sessionToken), 5000, 'subject.revoked')
  assert.ok(cache.has(a.iss.sessionToken) || !cache.live, 'the kept session is still cached (unless the stream went stale)')
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie: b.cookie}})).status, 401)
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie: d.cookie}})).status, 401)
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie: a.cookie}})).status, 200)
  await c.renewSession(a.iss.session.id)
  await waitFor(() => cache.size === 0, 5000, 'session.renewed')
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie: a.cookie}})).status, 401)
})

test('failures are not cached', async (t) => {
  const {base, cache} = await started(t)
  const {iss, cookie} = await cookieFor()
  await c.revokeSession(iss.session.id)
  const misses = cache.stats.misses
  for (let i = 0; i < 3; i++) assert.equal((await request(base, 'GET', '/me', {headers: {cookie}})).status, 401)
  assert.equal(cache.stats.misses, misses + 3)
  assert.equal(cache.size, 0)
})

test('CSRF on a cached session is checked against the cached key', async (t) => {
  const {base, cache} = await started(t)
  const {cookie} = await cookieFor()
  const f = await request(base, 'GET', '/form', {headers: {cookie}})
  const other = await cookieFor()
  const g = await request(base, 'GET', '/form', {headers: {cookie: other.cookie}})
  const hits = cache.stats.hits
  assert.equal((await request(base, 'POST', '/transfer', {headers: {...SAME, cookie}})).status, 403)
  assert.equal((await request(base, 'POST', '/transfer', {headers: {...SAME, cookie, 'x-csrf-token': g.json.csrf}})).status, 403)
  assert.equal((await request(base, 'POST', '/transfer', {headers: {...SAME, cookie, 'x-csrf-token': f.json.csrf}})).status, 200)
  assert.ok(cache.stats.hits >= hits + 3)
})

test('latch stopped: the cache is emptied and requests fail closed (503), never served from memory', async (t) => {
  const l = await latchServer([], {store: 'memory:'})
  t.after(() => l.stop())
  const cl = new LatchClient({url: l.url, apiKey: l.apiKey, timeout: 1000})
  const {base, cache} = await started(t, cl)
  const iss = await cl.createSession({subject: subject()})
  const cookie = `__Host-latch=${iss.sessionToken}`
  await warm(base, cookie, cache)
  await l.stop()
  await waitFor(() => !cache.live, 2000, 'the stream to end')
  const r = await request(base, 'GET', '/me', {headers: {cookie}})
  assert.equal(r.status, 503)
  assert.equal(cache.size, 0)
})

/** A TCP proxy to latch that can stop forwarding the event stream's bytes (sockets stay open). */
async function stallingProxy(target) {
  const u = new URL(target)
  const state = {stalled: false}
  const socks = new Set()
  const server = net.createServer((client) => {
    const up = net.connect(Number(u.port), u.hostname)
    socks.add(client); socks.add(up)
    let isStream = null
    client.on('data', (d) => {
      isStream ??= d.toString('latin1').startsWith('GET /v1/events')
      up.write(d)
    })
    up.on('data', (d) => { if (!(isStream && state.stalled)) client.write(d) })
    const end = () => { client.destroy(); up.destroy() }
    client.on('error', end); up.on('error', end); client.on('close', end); up.on('close', end)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${server.address().port}`, state,
    close: () => { for (const s of socks) s.destroy(); server.close() },
  }
}

test('a silent stream (stalled, still connected) empties the cache within the bound; validation goes online', async (t) => {
  const {LATCH_URL, API_KEY} = await import('./helpers.js')
  const proxy = await stallingProxy(LATCH_URL)
  t.after(() => proxy.close())
  const cl = new LatchClient({url: proxy.url, apiKey: API_KEY})
  const {base, cache} = await started(t, cl)
  const {iss, cookie} = await cookieFor()
  await warm(base, cookie, cache)
  proxy.state.stalled = true
  await waitFor(() => !cache.live, 3000, 'the stream to go stale')
  const misses = cache.stats.misses
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie}})).status, 200)
  assert.equal(cache.stats.misses, misses + 1, 'answered online')
  assert.equal(cache.size, 0, 'nothing stored while the stream is stale')
  // A revocation the stalled stream cannot deliver is still seen: online.
  await c.revokeSession(iss.session.id)
  assert.equal((await request(base, 'GET', '/me', {headers: {cookie}})).status, 401)
})

test('cache settings are checked', () => {
  assert.throws(() => latch({client: c, cache: {staleAfter: 0}}), /staleAfter/)
  assert.throws(() => latch({client: c, cache: 'yes'}), /cache/)
})

test('offline access tokens: the stream refuses a revoked session without asking latch; what it cannot vouch for goes online', async (t) => {
  const {LATCH_URL, API_KEY} = await import('./helpers.js')
  const cl = new LatchClient({url: LATCH_URL, apiKey: API_KEY})
  let online = 0
  const verify = cl.verifyAccessToken.bind(cl)
  cl.verifyAccessToken = (...a) => { online++; return verify(...a) }
  const early = await c.createSession({subject: subject()}) // issued before the stream opens
  const {base} = await started(t, cl, {accessTokens: 'offline'})
  await new Promise((r) => setTimeout(r, 1100)) // iat has one-second resolution
  const iss = await c.createSession({subject: subject()})
  const auth = {authorization: `Bearer ${iss.accessToken}`}
  assert.equal((await request(base, 'GET', '/me', {headers: auth})).status, 200)
  assert.equal((await request(base, 'GET', '/me', {headers: auth})).status, 200)
  assert.equal(online, 0, 'a token issued while the stream was live is verified offline')
  await c.revokeSession(iss.session.id)
  let status
  const t0 = performance.now()
  while ((status = (await request(base, 'GET', '/me', {headers: auth})).status) === 200) {
    assert.ok(performance.now() - t0 < 2000, 'the revocation was not seen')
  }
  assert.equal(status, 401)
  assert.equal(online, 0, 'refused by the stream, not by latch')
  const before = online
  await c.revokeSession(early.session.id)
  const r = await request(base, 'GET', '/me', {headers: {authorization: `Bearer ${early.accessToken}`}})
  assert.equal(r.status, 401, 'a revoked token from before the stream opened')
  assert.equal(online, before + 1, 'the stream cannot vouch for it: latch was asked')
})
