// clients/browser's DPoP key in real headless Chromium (playwright-core
// driving Debian's chromium) against a real latch serve, through the
// Express middleware relaying the browser's proofs: WebCrypto makes a
// non-extractable key that no script can export, IndexedDB keeps it across
// reloads, the session is bound to it at login, API calls and refreshes
// with its proofs are accepted, a replayed proof and a stolen token are
// refused, and a server nonce is picked up and retried with.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import express from 'express'
import {fileURLToPath} from 'node:url'
import {dirname, join} from 'node:path'
import {latch, sendTokens, defaultError, LatchClient, DPoPKey, LatchDPoPError, LatchError} from '../src/express.js'
import {TOKEN_RE, latchServer, listen, request, chromiumContext} from './helpers.js'

const chromiumPath = process.env.LATCH_CHROMIUM
const why = 'the browser tests need Chromium (apt-get install chromium, or set LATCH_CHROMIUM)'
if (!chromiumPath && process.env.LATCH_REQUIRE_INTEGRATION === '1') throw new Error(why + ' (LATCH_REQUIRE_INTEGRATION=1)')
const browserModule = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'browser', 'latch.js')

// The page: everything the test drives is on window.t.
const PAGE = `<!doctype html><meta charset="utf-8"><title>dpop</title>
<script type="module">
import {LatchBrowser, LatchDPoP} from '/latch.js'
const state = {refreshes: 0, signedOut: null}
let dpop, latch
window.t = {
  state,
  async open() {
    dpop = await LatchDPoP.open()
    latch = new LatchBrowser({dpop})
    latch.addEventListener('refresh', () => { state.refreshes++ })
    latch.addEventListener('signout', (e) => { state.signedOut = e.detail.reason })
    return dpop.jkt
  },
  // What an attacker's script on the page can do with the stored key.
  async tryExport() {
    const db = await new Promise((res, rej) => { const r = indexedDB.open('latch-dpop'); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error) })
    const keys = await new Promise((res) => { const r = db.transaction('keys').objectStore('keys').get('default'); r.onsuccess = () => res(r.result) })
    db.close()
    const out = {extractable: keys.privateKey.extractable, type: keys.privateKey.type, errors: []}
    for (const f of ['jwk', 'pkcs8']) {
      try { await crypto.subtle.exportKey(f, keys.privateKey); out.errors.push(f + ': exported') } catch (e) { out.errors.push(f + ': ' + e.name) }
    }
    try { await crypto.subtle.wrapKey('jwk', keys.privateKey, await crypto.subtle.generateKey({name: 'AES-GCM', length: 256}, true, ['wrapKey']), {name: 'AES-GCM', iv: new Uint8Array(12)}); out.errors.push('wrap: wrapped') } catch (e) { out.errors.push('wrap: ' + e.name) }
    return out
  },
  async login(user) {
    const {csrf_token} = await (await fetch('/auth/csrf')).json()
    const res = await dpop.fetch('/auth/login', {method: 'POST', headers: {'content-type': 'application/json', 'x-csrf-token': csrf_token}, body: JSON.stringify({user})})
    const body = await res.json()
    if (res.ok) latch.setTokens(body)
    return {status: res.status, tokenType: body.token_type, accessToken: body.access_token}
  },
  async me() {
    const res = await latch.fetch('/api/me')
    return {status: res.status, body: await res.json().catch(() => null), wwwAuthenticate: res.headers.get('www-authenticate')}
  },
  async start() { return latch.start() },
  async refresh() { await latch.refresh(); return latch.authenticated },
  // One proof sent twice, by hand.
  async replay(accessToken) {
    const proof = await dpop.proof({htm: 'GET', htu: '/api/me', accessToken})
    const send = () => fetch('/api/me', {headers: {authorization: 'DPoP ' + accessToken, dpop: proof}})
    const a = await send()
    const b = await send()
    return {first: a.status, second: b.status, secondChallenge: b.headers.get('www-authenticate')}
  },
  async proof(p) { return dpop.proof(p) },
}
</script>`

async function setup(t, latchArgs = []) {
  const l = await latchServer(latchArgs)
  t.after(() => l.stop())
  const client = new LatchClient({url: l.url, apiKey: l.apiKey})
  const sessions = latch({client, accessTokens: 'online', cache: false})
  const app = express()
  const seen = {refreshProofs: 0, logins: 0}
  app.use(sessions)
  app.get('/', (req, res) => res.type('html').send(PAGE))
  app.get('/latch.js', (req, res) => res.type('text/javascript').sendFile(browserModule))
  app.get('/auth/csrf', (req, res) => res.json({csrf_token: req.latch.csrfToken()}))
  app.post('/auth/login', express.json(), async (req, res, next) => {
    seen.logins++
    try {
      // The backend binds the session to the key of the browser's proof.
      const iss = await client.createSession({subject: req.body.user, dpop: req.latch.dpopProof()})
      sendTokens(sessions, res, iss, iss.session)
    } catch (err) { next(err) }
  })
  app.post('/auth/refresh', (req, res, next) => { if (req.headers.dpop) seen.refreshProofs++; next() }, sessions.refresh)
  app.get('/api/me', sessions.requireSession, (req, res) => res.json({subject: req.latch.session.subject, id: req.latch.session.id}))
  // defaultError answers a proof latch refused with its challenge and nonce.
  app.use((err, req, res, next) => err instanceof LatchError ? defaultError(err, req, res) : res.status(500).json({code: 'internal'}))
  const srv = await listen(app)
  t.after(() => srv.close())
  const ctx = await chromiumContext(t)
  // localhost is a secure context: WebCrypto and the __Secure- cookie work over http.
  const base = srv.base.replace('127.0.0.1', 'localhost')
  const page = await ctx.newPage()
  await page.goto(base + '/')
  await page.waitForFunction(() => window.t !== undefined)
  return {client, page, base, seen, l}
}

test('a non-extractable WebCrypto key binds the session; its proofs are accepted, a replay and a stolen token are refused', {skip: !chromiumPath && why, timeout: 120_000}, async (t) => {
  const {page, base, seen} = await setup(t)
  const jkt = await page.evaluate(() => window.t.open())
  assert.match(jkt, /^[A-Za-z0-9_-]{43}$/)

  // The private key cannot leave WebCrypto, whatever script on the page tries.
  const ex = await page.evaluate(() => window.t.tryExport())
  assert.equal(ex.extractable, false)
  assert.equal(ex.type, 'private')
  assert.deepEqual(ex.errors, ['jwk: InvalidAccessError', 'pkcs8: InvalidAccessError', 'wrap: InvalidAccessError'])

  const login = await page.evaluate(() => window.t.login('alice'))
  assert.equal(login.status, 200)
  assert.equal(login.tokenType, 'DPoP')
  const cnf = JSON.parse(Buffer.from(login.accessToken.split('.')[1], 'base64url')).cnf
  assert.equal(cnf.jkt, jkt, 'the session is bound to the browser key')

  const me = await page.evaluate(() => window.t.me())
  assert.equal(me.status, 200, JSON.stringify(me))
  assert.equal(me.body.subject, 'alice')

  // Refresh through the app's route: the browser's proof is relayed to latch.
  assert.equal(await page.evaluate(() => window.t.refresh()), true)
  assert.equal(await page.evaluate(() => window.t.state.refreshes), 1)
  assert.equal(seen.refreshProofs, 1)
  assert.equal((await page.evaluate(() => window.t.me())).status, 200, 'the refreshed token with a proof')

  // The same proof twice: the second is refused.
  const tok = login.accessToken
  const rp = await page.evaluate((tk) => window.t.replay(tk), (await page.evaluate(() => window.t.login('alice'))).accessToken)
  assert.equal(rp.first, 200)
  assert.equal(rp.second, 401)
  assert.match(rp.secondChallenge, /^DPoP algs="EdDSA Ed25519 ES256 RS256", error="invalid_dpop_proof", error_description="the DPoP proof was already used"/)

  // A token copied out of the page is worthless: as Bearer, or with a proof by another key.
  const stolen = await request(base.replace('localhost', '127.0.0.1'), 'GET', '/api/me', {headers: {authorization: `Bearer ${tok}`}})
  assert.equal(stolen.status, 401)
  assert.match(stolen.headers['www-authenticate'], /bound_as_bearer|must be sent with the DPoP scheme/)
  const other = DPoPKey.generate()
  const u = base.replace('localhost', '127.0.0.1') + '/api/me'
  const withOther = await request(base.replace('localhost', '127.0.0.1'), 'GET', '/api/me', {headers: {authorization: `DPoP ${tok}`, dpop: other.proof({htm: 'GET', htu: u, accessToken: tok})}})
  assert.equal(withOther.status, 401)
  assert.match(withOther.headers['www-authenticate'], new RegExp(new LatchDPoPError('key_mismatch').description))
  // A proof the browser made for this very URL is bound to its Host (localhost), not another.
  const browserProof = await page.evaluate((tk) => window.t.proof({htm: 'GET', htu: '/api/me', accessToken: tk}), tok)
  const wrongHost = await request(base.replace('localhost', '127.0.0.1'), 'GET', '/api/me', {headers: {authorization: `DPoP ${tok}`, dpop: browserProof}})
  assert.equal(wrongHost.status, 401, 'the browser\'s proof for localhost is refused at 127.0.0.1')
  // The refresh token is not in script's reach, and refreshing needs the key anyway.
  assert.doesNotMatch(await page.evaluate(() => document.cookie + JSON.stringify({...localStorage})), TOKEN_RE)

  // A reload keeps the key (IndexedDB) and so the session: start() refreshes with a proof by it.
  await page.reload()
  await page.waitForFunction(() => window.t !== undefined)
  assert.equal(await page.evaluate(() => window.t.open()), jkt, 'the same key after a reload')
  assert.equal(await page.evaluate(() => window.t.start()), true)
  assert.equal((await page.evaluate(() => window.t.me())).status, 200)
})

test('server nonces (latch serve --dpop-nonce): the browser takes latch\'s nonce through the app and retries once', {skip: !chromiumPath && why, timeout: 120_000}, async (t) => {
  const {page, seen} = await setup(t, ['--dpop-nonce'])
  await page.evaluate(() => window.t.open())
  // The first login proof has no nonce: latch refuses it (use_dpop_nonce),
  // the app passes the refusal and DPoP-Nonce on, the page retries once.
  const login = await page.evaluate(() => window.t.login('carol'))
  assert.equal(login.status, 200)
  assert.equal(login.tokenType, 'DPoP')
  assert.equal(seen.logins, 2, 'one refused attempt without the nonce, one retry with it')
  // From then on every proof carries the newest nonce: no more refusals.
  const me = await page.evaluate(() => window.t.me())
  assert.equal(me.status, 200, JSON.stringify(me))
  assert.equal(await page.evaluate(() => window.t.refresh()), true)
  assert.equal(seen.refreshProofs, 1, 'the refresh needed no retry')
  assert.equal((await page.evaluate(() => window.t.me())).status, 200)
})
