// CPU per operation of the Express middleware's offline checks, in one
// process: an access token verified offline with jose (what a plain Bearer
// request costs), and the same plus the local DPoP proof check (a DPoP
// request: proof signature, ath, thumbprint, replay cache), for ES256 and
// Ed25519 proofs. Proofs are made before the clock starts, each with its own
// jti, so every one is checked fully. No latch serve needed.
//
//   node clients/node/bench/dpop.mjs [iterations]

import {generateKeyPairSync, sign, verify} from 'node:crypto'
import {generateKeyPair, SignJWT, jwtVerify, exportJWK, importJWK} from 'jose'
import {DPoPKey, LocalReplayCache, verifyProof} from '../src/index.js'

const N = Number(process.argv[2] ?? 2000)
const {privateKey, publicKey} = await generateKeyPair('EdDSA', {crv: 'Ed25519'})
const pub = await importJWK(await exportJWK(publicKey), 'EdDSA')
const url = 'https://app.example/api/orders'

async function token(jkt) {
  return new SignJWT({sid: 'ses_x', ...(jkt ? {cnf: {jkt}} : {})}).setProtectedHeader({alg: 'EdDSA', typ: 'at+jwt'})
    .setIssuer('https://latch.example').setAudience('latch').setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(privateKey)
}
const verifyToken = (t) => jwtVerify(t, pub, {issuer: 'https://latch.example', audience: 'latch', typ: 'at+jwt', algorithms: ['EdDSA']})

async function cpu(label, fn) {
  for (let i = 0; i < 50; i++) await fn(i, true) // warm up
  const t0 = process.cpuUsage()
  for (let i = 0; i < N; i++) await fn(i, false)
  const d = process.cpuUsage(t0)
  const us = (d.user + d.system) / N
  console.log(`${label.padEnd(44)} ${us.toFixed(1).padStart(7)} µs CPU/op`)
  return us
}

const plainTok = await token()
const plain = await cpu('access token (jose, EdDSA)', () => verifyToken(plainTok))
for (const alg of ['ES256', 'EdDSA']) {
  const key = DPoPKey.generate({alg})
  const tok = await token(key.jkt)
  const proofs = Array.from({length: N + 50}, () => key.proof({htm: 'GET', htu: url, accessToken: tok}))
  const replay = new LocalReplayCache()
  let k = 0
  // What the proof check adds, against one bare signature check of its algorithm.
  const kp = alg === 'ES256' ? generateKeyPairSync('ec', {namedCurve: 'P-256'}) : generateKeyPairSync('ed25519')
  const data = Buffer.from(proofs[0].split('.').slice(0, 2).join('.'))
  const opts = alg === 'ES256' ? {key: kp.publicKey, dsaEncoding: 'ieee-p1363'} : kp.publicKey
  const sig = sign(alg === 'ES256' ? 'sha256' : null, data, alg === 'ES256' ? {key: kp.privateKey, dsaEncoding: 'ieee-p1363'} : kp.privateKey)
  const raw = await cpu(`  one bare ${alg} signature check`, () => verify(alg === 'ES256' ? 'sha256' : null, data, opts, sig))
  const bound = await cpu(`access token + ${alg} proof (verifyProof)`, async () => {
    const {payload} = await verifyToken(tok)
    await verifyProof(proofs[k++], {method: 'GET', url, accessToken: tok, jkt: payload.cnf.jkt, replay})
  })
  console.log(`${''.padEnd(44)} ${(bound / plain).toFixed(2).padStart(7)} × plain, +${(bound - plain).toFixed(1)} µs = ${((bound - plain) / raw).toFixed(2)} bare signature checks`)
}
