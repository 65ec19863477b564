// The Express middleware against a real latch serve: cookie attributes
// byte for byte as latchhttp, fixation, CSRF (both layers, session and
// anonymous tokens), logout (everywhere), renew, bearer tokens, fail
// closed, refused settings, and no token in logs or error answers.

import {test, before, after} from 'node:test'
import assert from 'node:assert/strict'
import express from 'express'
import {latch, LatchClient, LatchConfigError} from '../src/express.js'
import {Jar, TOKEN_RE, client, latchServer, listen, redisServer, request, subject, KEK, LATCH_URL, API_KEY} from './helpers.js'

const c = client()
const SAME = {'sec-fetch-site': 'same-origin'}

// Every console line written while the tests run is checked for tokens.
const logged = []
for (const m of ['log', 'info', 'warn', 'error', 'debug']) {
  const orig = console[m]
  console[m] = (...args) => { logged.push(args.map(String).join(' ')); orig.apply(console, args) }
}

function app(options = {}) {
  // cache: false — these tests revoke through latch and expect the very
  // next request to see it; cache.test.js covers cached validation.
  const sessions = latch({client: c, accessTokens: 'online', cache: false, ...options})
  const a = express()
  a.use(sessions)
  a.get('/form', (req, res) => res.json({csrf: req.latch.csrfToken(), authenticated: !!req.latch.session}))
  a.post('/login', express.urlencoded({extended: false}), async (req, res, next) => {
    try {
      const user = req.body.user
      await req.latch.login({subject: user})
      res.json({id: req.latch.session.id, csrf: req.latch.csrfToken()})
    } catch (err) { next(err) }
  })
  a.get('/me', sessions.requireSession, (req, res) => {
    res.json({id: req.latch.session.id, subject: req.latch.session.subject, method: req.latch.method, left: req.latch.idleTimeLeft()})
  })
  a.post('/transfer', sessions.requireSession, (req, res) => res.json({ok: true, body: req.body ?? null}))
  // Reads the raw body itself, as multer or busboy would.
  a.post('/upload', sessions.requireSession, (req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => res.json({bytes: Buffer.concat(chunks).toString('base64')}))
  })
  a.post('/logout', async (req, res, next) => { try { await req.latch.logout(); res.status(204).end() } catch (e) { next(e) } })
  a.post('/logout-everywhere', async (req, res, next) => {
    try { res.json({revoked: await req.latch.logoutEverywhere()}) } catch (e) { next(e) }
  })
  a.post('/revoke-others', async (req, res, next) => {
    try { res.json({revoked: await req.latch.revokeOthers()}) } catch (e) { next(e) }
  })
  a.post('/renew', async (req, res, next) => {
    try { await req.latch.renew({claims: {role: 'admin'}}); res.json({csrf: req.latch.csrfToken()}) } catch (e) { next(e) }
  })
  a.use((err, req, res, next) => { res.status(err.status ?? 500).json({code: err.code}) })
  return {a, sessions}
}

let srv
before(async () => { srv = await listen(app().a) })
after(async () => { await srv.close() })

/** A browser that loads the login form and signs in as user. */
async function signIn(user = subject(), base = srv.base) {
  const jar = new Jar()
  const f = jar.take(await request(base, 'GET', '/form'))
  const r = jar.take(await request(base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user, csrf_token: f.json.csrf}}))
  assert.equal(r.status, 200, r.text)
  return {jar, user, id: r.json.id, csrf: r.json.csrf, res: r}
}

test('the session cookie has exactly latchhttp\'s attributes; logout expires it identically', async () => {
  const {jar, csrf, res} = await signIn()
  const tok = jar.get('__Host-latch')
  assert.match(tok, /^lts_/)
  const set = res.setCookie.find((s) => s.startsWith('__Host-latch='))
  assert.equal(set.replace(tok, 'TOKEN').replace(/; Max-Age=\d+/, '; Max-Age=N'), process.env.LATCH_EXPECT_LOGIN_COOKIE)
  const m = new RegExp(`^__Host-latch=${tok}; Path=/; Max-Age=(\\d+); HttpOnly; Secure; SameSite=Lax$`).exec(set) // docs/protocol.md §1
  assert.ok(m, set)
  assert.ok(Number(m[1]) > 23 * 3600 && Number(m[1]) <= 24 * 3600, `Max-Age ${m[1]} counts to the absolute deadline (24 h)`)
  assert.equal(res.headers['cache-control'], 'no-store')
  assert.match(res.headers.vary, /Cookie/)
  const out = await request(srv.base, 'POST', '/logout', {headers: {...SAME, cookie: jar.header(), 'x-csrf-token': csrf}})
  assert.equal(out.status, 204)
  assert.ok(out.setCookie.includes(process.env.LATCH_EXPECT_LOGOUT_COOKIE), `${out.setCookie} lacks ${process.env.LATCH_EXPECT_LOGOUT_COOKIE}`)
  assert.equal(out.headers['clear-site-data'], '"cookies"')
  assert.equal(out.headers['cache-control'], 'no-store')
})

test('the anonymous CSRF cookie: protocol attributes, set once, expired at login', async () => {
  const f = await request(srv.base, 'GET', '/form')
  assert.equal(f.setCookie.length, 1)
  const [set] = f.setCookie
  assert.match(set, /^__Host-latch-csrf=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=7200; HttpOnly; Secure; SameSite=Lax$/)
  assert.equal(f.headers['cache-control'], 'no-store')
  const jar = new Jar()
  jar.take(f)
  const again = await request(srv.base, 'GET', '/form', {headers: {cookie: jar.header()}})
  assert.deepEqual(again.setCookie, [], 'a valid anonymous cookie is kept')
  assert.notEqual(again.json.csrf, f.json.csrf, 'tokens are masked afresh')
  const r = await request(srv.base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user: subject(), csrf_token: again.json.csrf}})
  assert.equal(r.status, 200)
  assert.ok(r.setCookie.includes('__Host-latch-csrf=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Secure; SameSite=Lax'))
})

test('login CSRF: the anonymous token must match the visitor\'s own cookie', async () => {
  const post = (headers, form) => request(srv.base, 'POST', '/login', {headers: {...SAME, ...headers}, form: {user: subject(), ...form}})
  const mine = new Jar()
  const f = mine.take(await request(srv.base, 'GET', '/form'))
  const other = new Jar()
  const g = other.take(await request(srv.base, 'GET', '/form'))
  assert.equal((await post({}, {csrf_token: f.json.csrf})).status, 403, 'no cookie')
  assert.equal((await post({cookie: mine.header()}, {})).status, 403, 'no token')
  assert.equal((await post({cookie: mine.header()}, {csrf_token: 'A'.repeat(86)})).status, 403, 'made-up token')
  assert.equal((await post({cookie: mine.header()}, {csrf_token: g.json.csrf})).status, 403, "another visitor's token")
  assert.equal((await post({cookie: 'x; __Host-latch-csrf=short'}, {csrf_token: f.json.csrf})).status, 403, 'malformed cookie')
  const cross = await post({cookie: mine.header(), 'sec-fetch-site': 'cross-site'}, {csrf_token: f.json.csrf})
  assert.equal(cross.status, 403, 'cross-site login form')
  assert.equal((await post({cookie: mine.header()}, {csrf_token: f.json.csrf})).status, 200)
})

test('CSRF on a session: missing, wrong, another session\'s, cross-site, Origin mismatch; header and form field accepted', async () => {
  const a = await signIn()
  const b = await signIn()
  const post = (headers, form) => request(srv.base, 'POST', '/transfer', {headers: {cookie: a.jar.header(), ...headers}, form})
  assert.equal((await post(SAME)).status, 403, 'missing')
  assert.equal((await post({...SAME, 'x-csrf-token': 'x'})).status, 403, 'garbage')
  const wrong = a.csrf.slice(0, 43) + (a.csrf[43] === 'A' ? 'B' : 'A') + a.csrf.slice(44)
  assert.equal((await post({...SAME, 'x-csrf-token': wrong})).status, 403, 'wrong')
  assert.equal((await post({...SAME, 'x-csrf-token': b.csrf})).status, 403, "another session's token")
  assert.equal((await post({'sec-fetch-site': 'cross-site', 'x-csrf-token': a.csrf})).status, 403, 'cross-site')
  assert.equal((await post({'sec-fetch-site': 'same-site', 'x-csrf-token': a.csrf})).status, 403, 'same-site is not same-origin')
  assert.equal((await post({origin: 'https://evil.example', 'x-csrf-token': a.csrf})).status, 403, 'Origin of another host')
  const anon = new Jar()
  const f = anon.take(await request(srv.base, 'GET', '/form'))
  assert.equal((await post({...SAME, 'x-csrf-token': f.json.csrf})).status, 403, 'an anonymous token does not pass for a session')
  assert.equal((await post({...SAME, 'x-csrf-token': a.csrf})).status, 200)
  assert.equal((await post({origin: srv.base, 'x-csrf-token': a.csrf})).status, 200, 'same Origin, no Sec-Fetch-Site')
  assert.equal((await post({'x-csrf-token': a.csrf})).status, 200, 'no browser headers (layer 2 still checked)')
  const form = await post(SAME, {csrf_token: a.csrf, amount: '10'})
  assert.equal(form.status, 200)
  assert.deepEqual(form.json.body, {csrf_token: a.csrf, amount: '10'}, 'the parsed form is left for the handler')
  // Fresh maskings from GET pages are all valid.
  const me = await request(srv.base, 'GET', '/form', {headers: {cookie: a.jar.header()}})
  assert.equal((await post({...SAME, 'x-csrf-token': me.json.csrf})).status, 200)
})

test('multipart forms: csrf_token is found and the body reaches the handler byte for byte', async () => {
  const a = await signIn()
  const b = await signIn()
  const boundary = '----latchtest' + 'x'.repeat(10)
  const file = Buffer.alloc(200_000, 7).toString('latin1')
  const body = (tok) => `--${boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${tok}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${file}\r\n--${boundary}--\r\n`
  const post = (tok) => request(srv.base, 'POST', '/upload', {
    headers: {...SAME, cookie: a.jar.header(), 'content-type': `multipart/form-data; boundary=${boundary}`}, body: body(tok),
  })
  const ok = await post(a.csrf)
  assert.equal(ok.status, 200)
  assert.equal(Buffer.from(ok.json.bytes, 'base64').toString('latin1'), body(a.csrf))
  assert.equal((await post(b.csrf)).status, 403, "another session's token in a multipart form")
  const none = await request(srv.base, 'POST', '/upload', {
    headers: {...SAME, cookie: a.jar.header(), 'content-type': `multipart/form-data; boundary=${boundary}`},
    body: `--${boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n--${boundary}--\r\n`,
  })
  assert.equal(none.status, 403, 'a multipart form without csrf_token')
  const big = Buffer.alloc(1_200_000, 7).toString('latin1')
  const late = await request(srv.base, 'POST', '/upload', {
    headers: {...SAME, cookie: a.jar.header(), 'content-type': `multipart/form-data; boundary=${boundary}`},
    body: `--${boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\n${big}\r\n--${boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n${a.csrf}\r\n--${boundary}--\r\n`,
  })
  assert.equal(late.status, 403, 'a token after the first MiB is not looked for')
})

test('fixation: login revokes the session token the browser carried', async () => {
  // The attacker's own valid session, planted in the victim's browser.
  const planted = await c.createSession({subject: 'attacker'})
  const jar = new Jar()
  jar.cookies.set('__Host-latch', planted.sessionToken)
  const f = await request(srv.base, 'GET', '/form', {headers: {cookie: jar.header()}})
  const r = jar.take(await request(srv.base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user: subject('victim'), csrf_token: f.json.csrf}}))
  assert.equal(r.status, 200)
  assert.notEqual(jar.get('__Host-latch'), planted.sessionToken)
  await assert.rejects(c.verifySession(planted.sessionToken), (e) => e.code === 'revoked')
  const me = await request(srv.base, 'GET', '/me', {headers: {cookie: jar.header()}})
  assert.notEqual(me.json.subject, 'attacker')
})

test('logout revokes the session in latch; a dead cookie is removed', async () => {
  const a = await signIn()
  const tok = a.jar.get('__Host-latch')
  const me = await request(srv.base, 'GET', '/me', {headers: {cookie: a.jar.header()}})
  assert.equal(me.status, 200)
  assert.equal(me.json.method, 'cookie')
  assert.ok(me.json.left > 0 && me.json.left <= 30 * 60)
  assert.equal((await request(srv.base, 'POST', '/logout', {headers: {...SAME, cookie: a.jar.header()}})).status, 403, 'logout needs the CSRF token')
  assert.equal((await request(srv.base, 'POST', '/logout', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': a.csrf}})).status, 204)
  await assert.rejects(c.verifySession(tok), (e) => e.code === 'revoked')
  const after = await request(srv.base, 'GET', '/me', {headers: {cookie: `__Host-latch=${tok}`}})
  assert.equal(after.status, 401)
  assert.ok(after.setCookie.includes(process.env.LATCH_EXPECT_LOGOUT_COOKIE), 'the dead cookie is expired')
})

test('logout everywhere and revokeOthers', async () => {
  const user = subject()
  const a = await signIn(user)
  const b = await signIn(user)
  const d = await signIn(user)
  const r = await request(srv.base, 'POST', '/revoke-others', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': a.csrf}})
  assert.deepEqual(r.json, {revoked: 2})
  assert.equal((await request(srv.base, 'GET', '/me', {headers: {cookie: b.jar.header()}})).status, 401)
  assert.equal((await request(srv.base, 'GET', '/me', {headers: {cookie: a.jar.header()}})).status, 200)
  const e = await signIn(user)
  const all = await request(srv.base, 'POST', '/logout-everywhere', {headers: {...SAME, cookie: e.jar.header(), 'x-csrf-token': e.csrf}})
  assert.deepEqual(all.json, {revoked: 2})
  assert.equal(all.headers['clear-site-data'], '"cookies"')
  for (const s of [a, d, e]) assert.equal((await request(srv.base, 'GET', '/me', {headers: {cookie: s.jar.header()}})).status, 401)
  assert.deepEqual(await c.listSessions(user), [])
})

test('renew: a new cookie; the old cookie and old CSRF tokens stop working', async () => {
  const a = await signIn()
  const old = a.jar.get('__Host-latch')
  const r = a.jar.take(await request(srv.base, 'POST', '/renew', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': a.csrf}}))
  assert.equal(r.status, 200)
  assert.notEqual(a.jar.get('__Host-latch'), old)
  assert.equal(r.headers['cache-control'], 'no-store')
  assert.equal((await request(srv.base, 'GET', '/me', {headers: {cookie: `__Host-latch=${old}`}})).status, 401)
  assert.equal((await request(srv.base, 'POST', '/transfer', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': a.csrf}})).status, 403, 'a CSRF token from before the renewal')
  assert.equal((await request(srv.base, 'POST', '/transfer', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': r.json.csrf}})).status, 200)
})

test('bearer access tokens: verified online, no CSRF needed, revocation ends them', async () => {
  const iss = await c.createSession({subject: subject()})
  const auth = {authorization: `Bearer ${iss.accessToken}`}
  const me = await request(srv.base, 'GET', '/me', {headers: auth})
  assert.equal(me.status, 200)
  assert.equal(me.json.method, 'bearer')
  assert.equal((await request(srv.base, 'POST', '/transfer', {headers: {...auth, 'sec-fetch-site': 'cross-site'}})).status, 200)
  await c.revokeSession(iss.session.id)
  const after = await request(srv.base, 'GET', '/me', {headers: auth})
  assert.equal(after.status, 401)
  assert.equal(after.headers['www-authenticate'], 'Bearer error="invalid_token"')
  assert.equal((await request(srv.base, 'GET', '/me', {headers: {authorization: 'Bearer eyJnope'}})).status, 401)
})

test('bearer access tokens offline: jose against the remote JWKS', async (t) => {
  const off = await listen(app({accessTokens: 'offline'}).a)
  t.after(() => off.close())
  const iss = await c.createSession({subject: subject()})
  const me = await request(off.base, 'GET', '/me', {headers: {authorization: `Bearer ${iss.accessToken}`}})
  assert.equal(me.status, 200, me.text)
  assert.equal(me.json.id, iss.session.id)
  const forged = iss.accessToken.slice(0, iss.accessToken.lastIndexOf('.') + 1) + 'A'.repeat(86)
  assert.equal((await request(off.base, 'GET', '/me', {headers: {authorization: `Bearer ${forged}`}})).status, 401)
  const [h, p, s] = iss.accessToken.split('.')
  const none = Buffer.from(JSON.stringify({alg: 'none', typ: 'at+jwt'})).toString('base64url')
  assert.equal((await request(off.base, 'GET', '/me', {headers: {authorization: `Bearer ${none}.${p}.`}})).status, 401, 'alg none')
  assert.ok(h && s)
})

test('fail closed: 503 when latch is stopped or its store is down, never the page', async (t) => {
  const redis = await redisServer()
  t.after(() => redis.stop())
  const l = await latchServer([], {store: redis.url, env: {LATCH_KEK: KEK}})
  t.after(() => l.stop())
  const c2 = new LatchClient({url: l.url, apiKey: l.apiKey, timeout: 3000})
  const s2 = await listen(app({client: c2}).a)
  t.after(() => s2.close())
  const a = await signIn(subject(), s2.base)
  assert.equal((await request(s2.base, 'GET', '/me', {headers: {cookie: a.jar.header()}})).status, 200)
  await redis.stop()
  const down = await request(s2.base, 'GET', '/me', {headers: {cookie: a.jar.header()}})
  assert.equal(down.status, 503, 'store down')
  assert.equal(down.headers['retry-after'], '5')
  assert.deepEqual(down.setCookie, [], 'the cookie is kept: latch did not say it is dead')
  await l.stop()
  assert.equal((await request(s2.base, 'GET', '/me', {headers: {cookie: a.jar.header()}})).status, 503, 'latch stopped')
  assert.equal((await request(s2.base, 'POST', '/transfer', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': a.csrf}})).status, 503)
  const iss = {accessToken: 'eyJhbGciOiJFZERTQSJ9.eyJzaWQiOiJ4In0.sig'}
  assert.equal((await request(s2.base, 'GET', '/me', {headers: {authorization: `Bearer ${iss.accessToken}`}})).status, 503, 'bearer, latch stopped')
  for (const r of [down]) assert.doesNotMatch(r.text, TOKEN_RE)
})

test('insecure or incompatible settings are refused with a reason', () => {
  const bad = [
    [{insecureCookieForDevelopmentOnly: true}, 'insecureCookieForDevelopmentOnly', /__Host-/],
    [{cookieDomain: 'example.com'}, 'cookieDomain', /__Host-/],
    [{cookiePath: '/app'}, 'cookiePath', /Path=\//],
    [{cookieName: 'bad name'}, 'cookieName', /token/],
    [{cookieName: 'latch', sameSite: 'none', insecureCookieForDevelopmentOnly: true, refreshCookieName: 'latch-refresh'}, 'sameSite', /Secure/],
    [{sameSite: 'sometimes'}, 'sameSite', /lax/],
    [{trustedOrigins: ['https://a.example/path']}, 'trustedOrigins', /origin/],
    [{accessTokens: 'maybe'}, 'accessTokens', /online/],
    [{refreshCookieName: '__Host-latch-refresh'}, 'refreshCookieName', /Path=\//],
  ]
  for (const [opts, field, why] of bad) {
    assert.throws(() => latch({client: c, ...opts}), (e) => e instanceof LatchConfigError && e.field === field && why.test(e.message), JSON.stringify(opts))
  }
  assert.ok(latch({client: c, cookieName: 'latch', insecureCookieForDevelopmentOnly: true, refreshCookieName: 'latch-refresh'}))
})

test('requireSession outside the middleware is a programmer error', () => {
  const {sessions} = app()
  assert.throws(() => sessions.requireSession({}, {}, () => {}), /did not pass through the latch middleware/)
})

test('no token in any log line or error answer', async () => {
  const a = await signIn()
  const tok = a.jar.get('__Host-latch')
  const r = await request(srv.base, 'POST', '/transfer', {headers: {...SAME, cookie: a.jar.header(), 'x-csrf-token': 'A'.repeat(86)}})
  assert.equal(r.status, 403)
  assert.ok(!r.text.includes(tok))
  for (const line of logged) assert.doesNotMatch(line, TOKEN_RE)
  assert.ok(LATCH_URL && API_KEY)
})
