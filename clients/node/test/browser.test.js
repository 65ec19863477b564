// clients/browser in real headless Chromium (playwright-core driving
// Debian's chromium), on the SPA example (DPoP-bound: the tabs share one
// non-extractable key): two tabs whose access tokens
// expire together make one refresh and neither is signed out; a revoked
// session signs both out; no token is ever readable from document.cookie
// or Web Storage.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {LatchClient} from '../src/index.js'
import {createApp} from '../examples/spa/server.js'
import {TOKEN_RE, latchServer, listen, chromiumContext} from './helpers.js'

const chromiumPath = process.env.LATCH_CHROMIUM
const why = 'the browser tests need Chromium (apt-get install chromium, or set LATCH_CHROMIUM)'
if (!chromiumPath && process.env.LATCH_REQUIRE_INTEGRATION === '1') throw new Error(why + ' (LATCH_REQUIRE_INTEGRATION=1)')

const PASSWORD = 'correct horse battery staple'
const ACCESS_TTL = 6 // seconds: long enough to open the second tab on a loaded machine

async function setup(t, args = []) {
  const l = await latchServer(['--access-ttl', `${ACCESS_TTL}s`, ...args])
  t.after(() => l.stop())
  const client = new LatchClient({url: l.url, apiKey: l.apiKey})
  const refreshes = []
  const logins = []
  const {app} = createApp({client, password: PASSWORD, hooks: {onRefresh: (req) => refreshes.push(Date.now()), onLogin: (iss) => logins.push(iss)}})
  const srv = await listen(app)
  t.after(() => srv.close())
  const ctx = await chromiumContext(t)
  // localhost is a secure context: the __Host-/__Secure- cookies work over http.
  const base = srv.base.replace('127.0.0.1', 'localhost')
  return {client, refreshes, logins, ctx, base}
}

/** Everything script can read that could hold a token. */
async function readable(page) {
  return page.evaluate(() => [document.cookie, JSON.stringify({...localStorage}), JSON.stringify({...sessionStorage})].join('\n'))
}

async function tab(ctx, base) {
  const p = await ctx.newPage()
  await p.goto(base + '/')
  // The module awaits its DPoP key before it defines window.app (until
  // then window.app is the element with id "app").
  await p.waitForFunction(() => typeof window.app?.login === 'function')
  await p.evaluate(() => window.app.ready)
  return p
}

test('two tabs: one refresh for both when their tokens expire together; a revocation signs both out', {skip: !chromiumPath && why, timeout: 90_000}, async (t) => {
  const {client, refreshes, logins, ctx, base} = await setup(t)
  const one = await tab(ctx, base)
  assert.equal(await one.evaluate(() => window.app.latch.authenticated), false)
  assert.equal(await one.evaluate((pw) => window.app.login('alice', pw), PASSWORD), true)
  assert.equal(logins[0].tokenType, 'DPoP', 'the page bound its session to its DPoP key')
  assert.equal((await one.evaluate(() => window.app.me())).status, 200)
  refreshes.length = 0 // the first tab's attempt at load, before sign-in (no refresh cookie: 401)

  // The second tab gets the first tab's token over the channel: no refresh.
  const two = await tab(ctx, base)
  assert.equal(await two.evaluate(() => window.app.latch.authenticated), true)
  assert.equal(refreshes.length, 0, 'a new tab takes the token of an open one')
  const tokenOf = (p) => p.evaluate(() => window.app.me()).then((r) => r.body?.session_id)
  assert.equal(await tokenOf(two), await tokenOf(one))

  // Let the shared access token expire, then call the API from both tabs at once.
  await one.waitForTimeout((ACCESS_TTL + 1) * 1000)
  const [a, b] = await Promise.all([one.evaluate(() => window.app.me()), two.evaluate(() => window.app.me())])
  assert.equal(a.status, 200)
  assert.equal(b.status, 200)
  assert.equal(refreshes.length, 1, `tabs made ${refreshes.length} refreshes, want 1`)
  assert.equal(await one.evaluate(() => window.app.state.signedOut), null)
  assert.equal(await two.evaluate(() => window.app.state.signedOut), null)
  const refreshed = (await one.evaluate(() => window.app.state.refreshes)) + (await two.evaluate(() => window.app.state.refreshes))
  assert.equal(refreshed, 1)

  for (const p of [one, two]) assert.doesNotMatch(await readable(p), TOKEN_RE, 'a token is readable from script storage')

  // The user's session is revoked (an admin, "sign out everywhere"):
  // the next API call in either tab signs both tabs out.
  const sid = a.body.session_id
  await client.revokeSession(sid)
  const r = await one.evaluate(() => window.app.me())
  assert.equal(r.status, 401)
  await two.waitForFunction(() => window.app.state.signedOut !== null, null, {timeout: 5000})
  assert.equal(await one.evaluate(() => window.app.state.signedOut), 'revoked')
  assert.equal(await two.evaluate(() => window.app.state.signedOut), 'revoked')
  assert.equal(await two.evaluate(() => window.app.latch.authenticated), false)
  assert.equal(refreshes.length, 1, 'a revoked session is not refreshed')
  for (const p of [one, two]) assert.doesNotMatch(await readable(p), TOKEN_RE)
})

test('a revoked session signs out both tabs even when each calls at once, and the refresh cookie is scoped and HttpOnly', {skip: !chromiumPath && why, timeout: 90_000}, async (t) => {
  const {client, ctx, base} = await setup(t)
  const one = await tab(ctx, base)
  await one.evaluate((pw) => window.app.login('bob', pw), PASSWORD)
  const two = await tab(ctx, base)
  const cookies = await ctx.cookies()
  const rc = cookies.find((c) => c.name === '__Secure-latch-refresh')
  assert.ok(rc, 'the refresh cookie is set')
  assert.equal(rc.path, '/auth/refresh')
  assert.equal(rc.httpOnly, true)
  assert.equal(rc.secure, true)
  assert.equal(rc.sameSite, 'Strict')
  const sid = (await one.evaluate(() => window.app.me())).body.session_id
  await client.revokeSession(sid)
  const [a, b] = await Promise.all([one.evaluate(() => window.app.me()), two.evaluate(() => window.app.me())])
  assert.equal(a.status, 401)
  assert.equal(b.status, 401)
  for (const p of [one, two]) assert.equal(await p.evaluate(() => window.app.state.signedOut), 'revoked')
  for (const p of [one, two]) assert.doesNotMatch(await readable(p), TOKEN_RE)
})

test('the idle countdown: "idle" events count down to the deadline, then the tab signs out', {skip: !chromiumPath && why, timeout: 90_000}, async (t) => {
  const {ctx, base} = await setup(t, ['--idle-timeout', '4s', '--touch-interval', '1s'])
  const one = await tab(ctx, base)
  await one.evaluate((pw) => window.app.login('alice', pw), PASSWORD)
  await one.waitForFunction(() => window.app.state.signedOut !== null, null, {timeout: 20_000})
  assert.equal(await one.evaluate(() => window.app.state.signedOut), 'idle')
  const idle = await one.evaluate(() => window.app.state.idle)
  assert.ok(idle.length >= 2, `idle events: ${idle}`)
  assert.ok(idle[0] <= 4 && idle.at(-1) === 0, `idle events: ${idle}`)
  for (let i = 1; i < idle.length; i++) assert.ok(idle[i] <= idle[i - 1], `the countdown goes down: ${idle}`)
  assert.equal(await one.evaluate(() => document.getElementById('signedout').textContent), 'Your session timed out. Sign in again.')
})
