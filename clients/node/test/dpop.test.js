// DPoP (RFC 9449) and step-up (RFC 9470) against a real latch serve: the
// client's calls and typed errors, and the Express middleware's
// Authorization: DPoP in both modes — online (the proof relayed to latch)
// and offline (checked here, replay cache per process) — under an attack
// table whose every row must be refused with the same reason in both modes
// (so the local check agrees with latch's Go verifier), plus proofs made
// by an independent implementation (panva's dpop, WebCrypto keys).

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {createHash, createHmac, generateKeyPairSync, sign} from 'node:crypto'
import express from 'express'
import * as panva from 'dpop'
import {
  latch, LatchClient, DPoPKey, LocalReplayCache, LatchDPoPError, LatchDPoPNonceError, LatchInsufficientAuthError, LatchProblemError, LatchConfigError,
} from '../src/express.js'
import {TOKEN_RE, client, latchServer, listen, request, subject} from './helpers.js'

const c = client()

function app(options = {}, cl = c) {
  const sessions = latch({client: cl, accessTokens: 'online', cache: false, ...options})
  const a = express()
  if (options.trustProxy) a.set('trust proxy', options.trustProxy)
  a.use(sessions)
  a.get('/auth/csrf', (req, res) => res.json({csrf_token: req.latch.csrfToken()}))
  a.get('/api/me', sessions.requireSession, (req, res) => res.json({id: req.latch.session.id, subject: req.latch.session.subject}))
  a.post('/api/orders', sessions.requireSession, (req, res) => res.json({ok: true}))
  a.post('/api/sensitive', sessions.requireRecentAuth({maxAge: 300}), (req, res) => res.json({ok: true}))
  a.post('/api/mfa', sessions.requireRecentAuth({acr: ['mfa', 'hwk']}), (req, res) => res.json({ok: true}))
  a.post('/api/both', sessions.requireRecentAuth({maxAge: 300, acr: 'mfa'}), (req, res) => res.json({ok: true}))
  a.post('/api/reauth', sessions.requireRecentAuth({maxAge: 300, reauthenticate: (req, res, need) => res.status(200).json({reauth: need})}), (req, res) => res.json({ok: true}))
  // A single-page app's login: binds the new session to the key of the
  // proof the browser sent with this request.
  a.post('/auth/login', async (req, res, next) => {
    try {
      const iss = await cl.createSession({subject: subject('dpop'), dpop: req.latch.dpopProof()})
      res.json({access_token: iss.accessToken, refresh_token: iss.refreshToken, token_type: iss.tokenType})
    } catch (err) { next(err) }
  })
  a.use((err, req, res, next) => {
    if (err instanceof LatchDPoPError) return res.status(401).json({code: err.code, reason: err.reason})
    res.status(err.status ?? 500).json({code: err.code})
  })
  return {a, sessions}
}

async function started(t, options) {
  const {a, sessions} = app(options, options?.client)
  const srv = await listen(a)
  t.after(() => { sessions.close(); return srv.close() })
  return srv.base
}

async function bound(key = DPoPKey.generate(), extra = {}) {
  return c.createSession({subject: subject('dpop'), dpopJkt: key.jkt, ...extra})
}

function dpopHeaders(tok, proof) {
  return {authorization: `DPoP ${tok}`, dpop: proof}
}

/** A compact JWS with any header and claims, signed by an ES256 key (or an HMAC secret): for the attacks. */
function forge(header, claims, {ecKey, hmac} = {}) {
  const json = (v) => typeof v === 'string' ? v : JSON.stringify(v) // a string: raw JSON (duplicate members)
  const input = `${Buffer.from(json(header)).toString('base64url')}.${Buffer.from(json(claims)).toString('base64url')}`
  let sig
  if (hmac) sig = createHmac('sha256', hmac).update(input).digest()
  else if (ecKey) sig = sign('sha256', Buffer.from(input), {key: ecKey, dsaEncoding: 'ieee-p1363'})
  else sig = Buffer.from('not a signature')
  return `${input}.${sig.toString('base64url')}`
}

/** The headers of a same-origin browser request with the anonymous CSRF token (for the login form). */
async function anonCSRF(base) {
  const r = await request(base, 'GET', '/auth/csrf')
  return {cookie: r.setCookie.map((c) => c.split(';')[0]).join('; '), 'x-csrf-token': r.json.csrf_token, 'sec-fetch-site': 'same-origin'}
}

function reasonOf(res) {
  const m = /error_description="([^"]*)"/.exec(res.headers['www-authenticate'] ?? '')
  return m ? m[1] : ''
}

// ---- the client ---------------------------------------------------------------

test('createSession binds with a relayed proof; refresh needs a proof by that key (header, relayed or made by a DPoPKey)', async () => {
  const key = DPoPKey.generate()
  const htu = 'https://app.example/auth/login'
  const iss = await c.createSession({subject: subject(), dpop: {proof: key.proof({htm: 'POST', htu}), htm: 'POST', htu}})
  assert.equal(iss.tokenType, 'DPoP')
  const claims = JSON.parse(Buffer.from(iss.accessToken.split('.')[1], 'base64url'))
  assert.equal(claims.cnf.jkt, key.jkt, 'the access token carries cnf.jkt, the thumbprint of the proof key')

  // No proof: refused, typed, and the refresh token is not rotated.
  const none = await c.refresh(iss.refreshToken).then(() => assert.fail('refreshed without a proof'), (e) => e)
  assert.ok(none instanceof LatchDPoPError && none instanceof LatchProblemError)
  assert.equal(none.code, 'invalid_dpop_proof')
  assert.equal(none.reason, 'proof_missing')
  assert.equal(none.status, 401)
  assert.match(none.challenge, /^DPoP algs="[^"]+", error="invalid_dpop_proof"/)
  assert.doesNotMatch(none.message, TOKEN_RE)

  // Another key: refused the same way, still nothing rotated.
  const other = DPoPKey.generate({alg: 'EdDSA'})
  const wrong = await c.refresh(iss.refreshToken, {dpop: other}).then(() => assert.fail('refreshed with another key'), (e) => e)
  assert.equal(wrong.reason, 'key_mismatch')

  // The bound key through the header (the client makes the proof) …
  const t1 = await c.refresh(iss.refreshToken, {dpop: key})
  assert.equal(t1.tokenType, 'DPoP')
  // … a proof string made for latch's refresh URL …
  const t2 = await c.refresh(t1.refreshToken, {dpop: key.proof({htm: 'POST', htu: c.url + '/v1/refresh'})})
  // … or relayed from a browser with the method and URL it was made for.
  const appURL = 'https://app.example/auth/refresh'
  const t3 = await c.refresh(t2.refreshToken, {dpop: {proof: key.proof({htm: 'POST', htu: appURL}), htm: 'POST', htu: appURL}})
  assert.ok(t3.refreshToken)
  // A proof for another URL than the one relayed is refused.
  const mis = await c.refresh(t3.refreshToken, {dpop: {proof: key.proof({htm: 'POST', htu: 'https://evil.example/x'}), htm: 'POST', htu: appURL}}).catch((e) => e)
  assert.equal(mis.reason, 'htu')
  await assert.rejects(c.refresh(t3.refreshToken, {dpop: 'not a\r\nproof'}), TypeError, 'a proof that could split a header is refused before sending')
  await assert.rejects(c.refresh(t3.refreshToken, {dpop: {proof: 'x'}}), TypeError)
})

test('createSession with a DPoPKey binds to its thumbprint; verifyAccessToken relays the proof', async () => {
  const key = DPoPKey.generate({alg: 'EdDSA'})
  const iss = await c.createSession({subject: subject(), dpop: key})
  assert.equal(iss.tokenType, 'DPoP')
  const htu = 'https://api.example/orders'
  const ok = await c.verifyAccessToken(iss.accessToken, {dpop: {proof: key.proof({htm: 'GET', htu, accessToken: iss.accessToken}), htm: 'GET', htu}})
  assert.equal(ok.session.id, iss.session.id)
  const e1 = await c.verifyAccessToken(iss.accessToken).catch((e) => e)
  assert.ok(e1 instanceof LatchDPoPError)
  assert.equal(e1.reason, 'proof_missing')
  const e2 = await c.verifyAccessToken(iss.accessToken, {dpop: {proof: key.proof({htm: 'GET', htu}), htm: 'GET', htu}}).catch((e) => e)
  assert.equal(e2.reason, 'ath_missing')
})

test('whoami and logout with a bound token: refused as Bearer (the session is neither read nor ended), accepted with the DPoPKey', async () => {
  const key = DPoPKey.generate()
  const iss = await c.createSession({subject: subject(), dpop: key})
  const asBearer = await c.whoami(iss.accessToken).catch((e) => e)
  assert.ok(asBearer instanceof LatchDPoPError, String(asBearer))
  assert.equal(asBearer.reason, 'bound_as_bearer')
  assert.equal((await c.logout(iss.accessToken).catch((e) => e)).reason, 'bound_as_bearer')
  assert.equal((await c.whoami(iss.accessToken, {dpop: DPoPKey.generate()}).catch((e) => e)).reason, 'key_mismatch')
  assert.equal((await c.whoami(iss.accessToken, {dpop: key})).session.id, iss.session.id, 'the session survived the attempts')
  await c.logout(iss.accessToken, {dpop: key})
  await assert.rejects(c.whoami(iss.accessToken, {dpop: key}), (e) => e.code === 'revoked')
})

test('step-up: acr/amr/authTime at create and renew; verify with maxAge/acrValues answers LatchInsufficientAuthError', async () => {
  const old = new Date(Date.now() - 600_000)
  const iss = await c.createSession({subject: subject(), authTime: old, acr: 'pwd', amr: ['pwd']})
  assert.equal(iss.session.acr, 'pwd')
  assert.deepEqual(iss.session.amr, ['pwd'])
  assert.ok(Math.abs(+iss.session.authTime - +old) < 1000)
  const tooOld = await c.verifySession(iss.sessionToken, {maxAge: 300}).catch((e) => e)
  assert.ok(tooOld instanceof LatchInsufficientAuthError && tooOld instanceof LatchProblemError)
  assert.equal(tooOld.code, 'insufficient_user_authentication')
  assert.equal(tooOld.status, 401)
  assert.equal(tooOld.maxAge, 300)
  assert.equal(tooOld.acrValues, undefined)
  const acr = await c.verifyAccessToken(iss.accessToken, {acrValues: ['mfa', 'hwk']}).catch((e) => e)
  assert.ok(acr instanceof LatchInsufficientAuthError)
  assert.deepEqual(acr.acrValues, ['mfa', 'hwk'])
  assert.match(acr.challenge, /^Bearer error="insufficient_user_authentication", .*acr_values="mfa hwk"/)
  // The user signs in again with a second factor: renew records it.
  const re = await c.renewSession(iss.session.id, {acr: 'mfa', amr: ['pwd', 'otp']})
  assert.equal(re.session.acr, 'mfa')
  assert.deepEqual(re.session.amr, ['pwd', 'otp'])
  const v = await c.verifySession(re.sessionToken, {maxAge: 300, acrValues: ['mfa']})
  assert.equal(v.session.id, iss.session.id)
  await assert.rejects(c.createSession({subject: subject(), authTime: new Date(Date.now() + 3_600_000)}), (e) => e.code === 'bad_request', 'no future auth_time')
})

// ---- the middleware: the attack table, online and offline -----------------------

const URL_PATH = '/api/me'

/**
 * Each row: a name, how to build the request from a bound session
 * ({iss, key, base}), and the reason it must be refused with. Every row
 * changes one thing from a valid request.
 */
const attacks = [
  ['wrong key', ({iss, base}) => dpopHeaders(iss.accessToken, DPoPKey.generate().proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken})), 'key_mismatch'],
  ['wrong htu', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + '/api/other', accessToken: iss.accessToken})), 'htu'],
  ['wrong htm', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'POST', htu: base + URL_PATH, accessToken: iss.accessToken})), 'htm'],
  ['stale iat', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken, iat: Math.floor(Date.now() / 1000) - 120})), 'iat_stale'],
  ['future iat', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken, iat: Math.floor(Date.now() / 1000) + 120})), 'iat_future'],
  ['missing ath', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH})), 'ath_missing'],
  ['ath of another token', ({iss, key, base}) => dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: 'eyJ.other.token'})), 'ath'],
  ['bound token as Bearer', ({iss}) => ({authorization: `Bearer ${iss.accessToken}`}), 'bound_as_bearer'],
  ['bound token as Bearer with a valid proof', ({iss, key, base}) => ({authorization: `Bearer ${iss.accessToken}`, dpop: key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken})}), 'bound_as_bearer'],
  ['DPoP scheme without a proof', ({iss}) => ({authorization: `DPoP ${iss.accessToken}`}), 'proof_missing'],
  ['two proofs', ({iss, key, base}) => {
    const p = key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken})
    return {authorization: `DPoP ${iss.accessToken}`, dpop: [p, p]}
  }, 'malformed'],
  ['alg none', ({iss, key, base}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk},
    {jti: 'n1', htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)})), 'alg_none'],
  ['HMAC', ({iss, key, base}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'HS256', jwk: key.publicJwk},
    {jti: 'h1', htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)}, {hmac: 'secret'})), 'alg_symmetric'],
  ['typ JWT', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'JWT', alg: 'ES256', jwk: ec.jwk},
    {jti: 't1', htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)}, {ecKey: ec.key})), 'typ'],
  ['private key in the header', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'ES256', jwk: ec.privateJwk},
    {jti: 'p1', htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)}, {ecKey: ec.key})), 'private_key'],
  ['a kid header', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'ES256', jwk: ec.jwk, kid: 'k1'},
    {jti: 'k1', htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)}, {ecKey: ec.key})), 'header'],
  ['a duplicate claim (two htu)', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'ES256', jwk: ec.jwk},
    `{"jti":"d1","htm":"GET","htu":"https://evil.example/x","htu":${JSON.stringify(base + URL_PATH)},"iat":${now()},"ath":"${athOf(iss.accessToken)}"}`, {ecKey: ec.key})), 'malformed'],
  ['iat not a number', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'ES256', jwk: ec.jwk},
    {jti: 'i1', htm: 'GET', htu: base + URL_PATH, iat: String(now()), ath: athOf(iss.accessToken)}, {ecKey: ec.key})), 'malformed'],
  ['no jti', ({iss, base, ec}) => dpopHeaders(iss.accessToken, forge({typ: 'dpop+jwt', alg: 'ES256', jwk: ec.jwk},
    {htm: 'GET', htu: base + URL_PATH, iat: now(), ath: athOf(iss.accessToken)}, {ecKey: ec.key})), 'missing_claim'],
  ['bad signature', ({iss, key, base}) => {
    const p = key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken}).split('.')
    return dpopHeaders(iss.accessToken, `${p[0]}.${p[1]}.${p[2].slice(0, -6)}AAAAAA`)
  }, 'signature'],
]

function now() { return Math.floor(Date.now() / 1000) }
function athOf(tok) { return createHash('sha256').update(tok).digest('base64url') }

/** An ES256 key the session is bound to, for forged proofs that are validly signed. */
function ecKeyPair() {
  const {privateKey, publicKey} = generateKeyPairSync('ec', {namedCurve: 'P-256'})
  const privateJwk = privateKey.export({format: 'jwk'})
  const jwk = publicKey.export({format: 'jwk'})
  return {key: privateKey, jwk, privateJwk, dpopKey: new DPoPKey(privateKey)}
}

// offline+cache: cached validation on, so the event stream vouches for the
// session or, when it cannot, latch is asked with the proof relayed after the
// local check — both must hold.
const MODES = {online: {accessTokens: 'online'}, offline: {accessTokens: 'offline'}, 'offline+cache': {accessTokens: 'offline', cache: {}}}
for (const [mode, modeOptions] of Object.entries(MODES)) {
  test(`middleware (${mode}): Authorization: DPoP with a proof by the bound key is accepted, each proof once`, async (t) => {
    const base = await started(t, modeOptions)
    const key = DPoPKey.generate()
    const iss = await bound(key)
    const proof = key.proof({htm: 'GET', htu: base + URL_PATH + '?q=1', accessToken: iss.accessToken})
    const ok = await request(base, 'GET', URL_PATH + '?q=1', {headers: dpopHeaders(iss.accessToken, proof)})
    assert.equal(ok.status, 200, ok.text)
    assert.equal(ok.json.id, iss.session.id)
    // Unsafe methods need no CSRF token with DPoP, like Bearer.
    const post = await request(base, 'POST', '/api/orders', {headers: dpopHeaders(iss.accessToken, key.proof({htm: 'POST', htu: base + '/api/orders', accessToken: iss.accessToken}))})
    assert.equal(post.status, 200, post.text)

    const again = await request(base, 'GET', URL_PATH + '?q=1', {headers: dpopHeaders(iss.accessToken, proof)})
    assert.equal(again.status, 401, 'a replayed proof')
    assert.equal(again.json.code, 'invalid_dpop_proof')
    assert.equal(reasonOf(again), 'the DPoP proof was already used')
    assert.equal(again.headers['www-authenticate'], process.env.LATCH_EXPECT_DPOP_REPLAY ??
      'DPoP algs="EdDSA Ed25519 ES256 RS256", error="invalid_dpop_proof", error_description="the DPoP proof was already used"', 'latchhttp\'s challenge, byte for byte')

    // Something that is no token at all is invalid_token, whatever the scheme.
    const junk = await request(base, 'GET', URL_PATH, {headers: dpopHeaders('not-a-token', key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: 'not-a-token'}))})
    assert.equal(junk.status, 401)
    assert.equal(junk.json.code, 'invalid_token')
    assert.equal(junk.headers['www-authenticate'], 'Bearer error="invalid_token"')
    // A plain (unbound) token still works as Bearer, and not as DPoP.
    const plain = await c.createSession({subject: subject()})
    assert.equal((await request(base, 'GET', URL_PATH, {headers: {authorization: `Bearer ${plain.accessToken}`}})).status, 200)
    const asDPoP = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(plain.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: plain.accessToken}))})
    assert.equal(asDPoP.status, 401)
    assert.equal(asDPoP.json.code, 'invalid_dpop_proof')
  })

  test(`middleware (${mode}): the attack table is refused with latch's reasons, and no attempt spends the real proof`, async (t) => {
    const base = await started(t, modeOptions)
    const ec = ecKeyPair()
    const key = ec.dpopKey
    const iss = await bound(key)
    for (const [name, build, reason] of attacks) {
      const res = await request(base, 'GET', URL_PATH, {headers: build({iss, key, base, ec})})
      assert.equal(res.status, 401, `${name}: ${res.status} ${res.text}`)
      assert.equal(res.json.code, 'invalid_dpop_proof', name)
      const want = new LatchDPoPError(reason).description
      assert.equal(reasonOf(res), want, `${name}: refused for "${reasonOf(res)}", want "${want}"`)
      assert.doesNotMatch(res.text, TOKEN_RE, name)
    }
    // Token bound to another key: an attacker with a bound session of
    // their own presents the victim's token with a proof by their key.
    const attacker = DPoPKey.generate()
    await bound(attacker)
    const stolen = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(iss.accessToken, attacker.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken}))})
    assert.equal(reasonOf(stolen), new LatchDPoPError('key_mismatch').description)
    // After all that, the owner's fresh proof is still accepted: nothing was changed.
    const ok = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(iss.accessToken, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: iss.accessToken}))})
    assert.equal(ok.status, 200, ok.text)
  })

  test(`middleware (${mode}): proofs from panva's dpop (WebCrypto keys, ES256, Ed25519 and RS256) are accepted`, async (t) => {
    const base = await started(t, modeOptions)
    for (const alg of ['ES256', 'Ed25519', 'RS256']) {
      const kp = await panva.generateKeyPair(alg)
      const htu = base + '/auth/login'
      const login = await request(base, 'POST', '/auth/login', {headers: {...await anonCSRF(base), dpop: await panva.generateProof(kp, htu, 'POST')}})
      assert.equal(login.status, 200, `${alg} login: ${login.text}`)
      assert.equal(login.json.token_type, 'DPoP')
      const tok = login.json.access_token
      const jkt = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url')).cnf.jkt
      assert.equal(jkt, await panva.calculateThumbprint(kp.publicKey), `${alg}: latch's thumbprint is panva's`)
      const me = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(tok, await panva.generateProof(kp, base + URL_PATH, 'GET', undefined, tok))})
      assert.equal(me.status, 200, `${alg}: ${me.text}`)
    }
  })

  test(`middleware (${mode}): the proof's htu is the URL the client addressed; forwarded headers count only from a trusted proxy`, async (t) => {
    const key = DPoPKey.generate()
    const iss = await bound(key)
    const fwd = {'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example'}
    const proofFor = (htu) => key.proof({htm: 'GET', htu, accessToken: iss.accessToken})
    const direct = await started(t, modeOptions)
    // Not trusted: the forwarded headers are ignored, the socket's scheme and Host count.
    let r = await request(direct, 'GET', URL_PATH, {headers: {...fwd, ...dpopHeaders(iss.accessToken, proofFor('https://app.example' + URL_PATH))}})
    assert.equal(reasonOf(r), new LatchDPoPError('htu').description, 'forwarded headers from an untrusted peer')
    r = await request(direct, 'GET', URL_PATH, {headers: {...fwd, ...dpopHeaders(iss.accessToken, proofFor(direct + URL_PATH))}})
    assert.equal(r.status, 200, r.text)
    // Trusted (loopback is the proxy): the forwarded scheme and host count.
    const proxied = await started(t, {...modeOptions, trustProxy: 'loopback'})
    r = await request(proxied, 'GET', URL_PATH, {headers: {...fwd, ...dpopHeaders(iss.accessToken, proofFor('https://app.example' + URL_PATH))}})
    assert.equal(r.status, 200, r.text)
    r = await request(proxied, 'GET', URL_PATH, {headers: {...fwd, ...dpopHeaders(iss.accessToken, proofFor(proxied + URL_PATH))}})
    assert.equal(reasonOf(r), new LatchDPoPError('htu').description, 'behind the proxy the internal URL is not what the client addressed')
    // dpopURL overrides both.
    const custom = await started(t, {...modeOptions, dpopURL: (req) => 'https://public.example' + req.originalUrl})
    r = await request(custom, 'GET', URL_PATH, {headers: dpopHeaders(iss.accessToken, proofFor('https://public.example' + URL_PATH))})
    assert.equal(r.status, 200, r.text)
  })

  test(`step-up (${mode}): requireRecentAuth answers the RFC 9470 challenge as latchhttp.RequireRecentAuth`, async (t) => {
    const base = await started(t, modeOptions)
    const old = await c.createSession({subject: subject(), authTime: new Date(Date.now() - 600_000), acr: 'pwd'})
    const bearer = {authorization: `Bearer ${old.accessToken}`}
    let r = await request(base, 'POST', '/api/sensitive', {headers: bearer})
    assert.equal(r.status, 401)
    assert.equal(r.json.code, 'insufficient_user_authentication')
    assert.equal(r.headers['www-authenticate'], process.env.LATCH_EXPECT_STEPUP_MAXAGE ?? 'Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"')
    r = await request(base, 'POST', '/api/mfa', {headers: bearer})
    assert.equal(r.headers['www-authenticate'], process.env.LATCH_EXPECT_STEPUP_ACR ?? 'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="mfa hwk"')
    r = await request(base, 'POST', '/api/both', {headers: bearer})
    assert.equal(r.headers['www-authenticate'], process.env.LATCH_EXPECT_STEPUP_BOTH ?? 'Bearer error="insufficient_user_authentication", error_description="A more recent authentication of another level is required", max_age="300", acr_values="mfa"')

    const fresh = await c.createSession({subject: subject(), acr: 'mfa'})
    for (const p of ['/api/sensitive', '/api/mfa', '/api/both']) {
      r = await request(base, 'POST', p, {headers: {authorization: `Bearer ${fresh.accessToken}`}})
      assert.equal(r.status, 200, `${p}: ${r.text}`)
    }
    // Without a session: requireSession's answer.
    r = await request(base, 'POST', '/api/sensitive', {headers: {'sec-fetch-site': 'same-origin'}})
    assert.equal(r.status, 403, 'an anonymous unsafe request without a CSRF token stops at CSRF')
    r = await request(base, 'POST', '/api/sensitive', {headers: {authorization: 'Bearer eyJnope'}})
    assert.equal(r.status, 401)
    assert.equal(r.headers['www-authenticate'], 'Bearer error="invalid_token"')
  })
}

test('step-up for cookie sessions: reauthenticate gets the requirement; without it, 401 and no challenge header', async (t) => {
  const base = await started(t, {})
  const old = await c.createSession({subject: subject(), authTime: new Date(Date.now() - 600_000)})
  const form = await request(base, 'GET', '/api/me', {headers: {cookie: `__Host-latch=${old.sessionToken}`}})
  assert.equal(form.status, 200)
  // A cookie request needs its CSRF token: get one from a verify.
  const v = await c.verifySession(old.sessionToken)
  const {mask, unmask} = await import('../src/csrf.js')
  const h = {cookie: `__Host-latch=${old.sessionToken}`, 'sec-fetch-site': 'same-origin', 'x-csrf-token': mask(unmask(v.csrfToken))}
  let r = await request(base, 'POST', '/api/reauth', {headers: h})
  assert.equal(r.status, 200)
  assert.deepEqual(r.json, {reauth: {maxAge: 300}})
  assert.equal(r.headers['cache-control'], 'no-store')
  r = await request(base, 'POST', '/api/sensitive', {headers: h})
  assert.equal(r.status, 401)
  assert.equal(r.json.code, 'insufficient_user_authentication')
  assert.equal(r.headers['www-authenticate'], undefined)
})

test('requireRecentAuth and the DPoP options refuse bad settings', () => {
  const {sessions} = app()
  for (const [need, field] of [[{}, 'requireRecentAuth'], [{maxAge: 0}, 'maxAge'], [{maxAge: 1.5}, 'maxAge'], [{acr: []}, 'acr'], [{acr: 'a b'}, 'acr'], [{acr: 'x"'}, 'acr'],
    [{maxAge: 60, reauthenticate: 'page'}, 'reauthenticate']]) {
    assert.throws(() => sessions.requireRecentAuth(need), (e) => e instanceof LatchConfigError && e.field === field, JSON.stringify(need))
  }
  assert.throws(() => latch({client: c, dpopURL: 'https://x'}), (e) => e.field === 'dpopURL')
  assert.throws(() => latch({client: c, dpopReplayCache: {}}), (e) => e.field === 'dpopReplayCache')
})

test('the SPA refresh route relays the browser\'s proof; a refused proof keeps the refresh cookie', async (t) => {
  const {a, sessions} = app()
  a.post('/auth/refresh', sessions.refresh)
  const srv = await listen(a)
  t.after(() => srv.close())
  const key = DPoPKey.generate()
  const iss = await bound(key)
  const cookie = `__Secure-latch-refresh=${iss.refreshToken}`
  const htu = srv.base + '/auth/refresh'
  const h = {cookie, 'sec-fetch-site': 'same-origin'}
  let r = await request(srv.base, 'POST', '/auth/refresh', {headers: {...h, dpop: DPoPKey.generate().proof({htm: 'POST', htu})}})
  assert.equal(r.status, 401)
  assert.equal(r.json.code, 'invalid_dpop_proof')
  assert.match(r.headers['www-authenticate'], /^DPoP algs=/)
  assert.deepEqual(r.setCookie, [], 'a refused proof does not sign the browser out')
  r = await request(srv.base, 'POST', '/auth/refresh', {headers: h})
  assert.equal(r.status, 401, 'no proof')
  assert.deepEqual(r.setCookie, [])
  r = await request(srv.base, 'POST', '/auth/refresh', {headers: {...h, dpop: key.proof({htm: 'POST', htu})}})
  assert.equal(r.status, 200, r.text)
  assert.equal(r.json.token_type, 'DPoP')
  assert.match(r.setCookie[0], /^__Secure-latch-refresh=ltr_/)
})

test('DPoPKey: proofs carry typ, alg, the public jwk only, a fresh jti, htu without query or fragment, and ath', () => {
  const key = DPoPKey.generate()
  const p1 = key.proof({htm: 'GET', htu: 'https://a.example/x?y=1#z', accessToken: 'tok'})
  const p2 = key.proof({htm: 'GET', htu: 'https://a.example/x'})
  const [h, cl] = p1.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url')))
  assert.equal(h.typ, 'dpop+jwt')
  assert.equal(h.alg, 'ES256')
  assert.deepEqual(Object.keys(h.jwk).sort(), ['crv', 'kty', 'x', 'y'])
  assert.equal(cl.htu, 'https://a.example/x')
  assert.equal(cl.ath, createHash('sha256').update('tok').digest('base64url'))
  assert.notEqual(cl.jti, JSON.parse(Buffer.from(p2.split('.')[1], 'base64url')).jti)
  assert.equal(JSON.stringify(key), JSON.stringify({alg: 'ES256', jkt: key.jkt}), 'serialising a key shows no private material')
  assert.throws(() => new DPoPKey(generateKeyPairSync('ec', {namedCurve: 'P-384'}).privateKey), TypeError)
})


test('server nonces (latch serve --dpop-nonce): typed use_dpop_nonce, DPoPKey retries once, the middleware relays the nonce', async (t) => {
  const l = await latchServer(['--dpop-nonce'])
  t.after(() => l.stop())
  const nc = new LatchClient({url: l.url, apiKey: l.apiKey})
  t.after(() => nc.close())
  const key = DPoPKey.generate()
  const htu = 'https://app.example/auth/login'
  // A relayed proof without the nonce: refused, typed, with the nonce to use.
  const e = await nc.createSession({subject: subject(), dpop: {proof: key.proof({htm: 'POST', htu}), htm: 'POST', htu}}).catch((x) => x)
  assert.ok(e instanceof LatchDPoPNonceError && e instanceof LatchDPoPError, String(e))
  assert.equal(e.code, 'use_dpop_nonce')
  assert.match(e.nonce, /^[A-Za-z0-9_-]{1,64}$/)
  assert.match(e.challenge, /error="use_dpop_nonce"/)
  const iss = await nc.createSession({subject: subject(), dpop: {proof: key.proof({htm: 'POST', htu, nonce: e.nonce}), htm: 'POST', htu}})
  assert.equal(iss.tokenType, 'DPoP')
  assert.match(iss.dpopNonce, /^[A-Za-z0-9_-]+$/, 'the answer to a proof carries the current nonce')

  // The client's own key: no nonce yet, so latch refuses once and the client retries.
  assert.equal(key.nonce, undefined)
  const r1 = await nc.refresh(iss.refreshToken, {dpop: key})
  assert.ok(r1.refreshToken)
  assert.equal(key.nonce, r1.dpopNonce, 'the nonce is kept for the next proof')
  const r2 = await nc.refresh(r1.refreshToken, {dpop: key})
  assert.ok(r2.refreshToken)
  // A proof the caller made without a nonce is not retried: the caller gets the error.
  const noNonce = await nc.refresh(r2.refreshToken, {dpop: key.proof({htm: 'POST', htu: l.url + '/v1/refresh', nonce: ''})}).catch((x) => x)
  assert.ok(noNonce instanceof LatchDPoPNonceError, String(noNonce))

  // The middleware, online: the client's proof without the nonce is refused
  // with latch's challenge and DPoP-Nonce; with it, accepted, and the
  // answer again carries the nonce.
  const base = await started(t, {accessTokens: 'online', client: nc})
  const tok = r2.accessToken
  let res = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(tok, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: tok, nonce: ''}))})
  assert.equal(res.status, 401)
  assert.equal(res.json.code, 'use_dpop_nonce')
  assert.match(res.headers['www-authenticate'], /^DPoP algs="[^"]+", error="use_dpop_nonce", error_description="/)
  const n = res.headers['dpop-nonce']
  assert.match(n, /^[A-Za-z0-9_-]+$/)
  res = await request(base, 'GET', URL_PATH, {headers: dpopHeaders(tok, key.proof({htm: 'GET', htu: base + URL_PATH, accessToken: tok, nonce: n}))})
  assert.equal(res.status, 200, res.text)
  assert.match(res.headers['dpop-nonce'], /^[A-Za-z0-9_-]+$/, 'a success passes the nonce on too')
})

test('LocalReplayCache: a key once until its deadline; expired entries swept as it grows; full of live entries it refuses', () => {
  const now = Date.now()
  const c = new LocalReplayCache({maxEntries: 5000})
  assert.equal(c.seen('live', now + 60_000), true)
  assert.equal(c.seen('live', now + 60_000), false, 'a replay')
  for (let i = 0; i < 20_000; i++) assert.equal(c.seen('old' + i, now - 1), true)
  assert.ok(c.size < 2100, `expired entries are swept (${c.size} left of 20001)`)
  assert.equal(c.seen('live', now + 60_000), false, 'a live entry survives the sweeps')
  const full = new LocalReplayCache({maxEntries: 3})
  for (const k of ['a', 'b', 'c']) assert.equal(full.seen(k, now + 60_000), true)
  assert.equal(full.seen('d', now + 60_000), false, 'fails closed rather than forgetting a live proof')
})
