// Compiled with tsc --noEmit by test/types.test.js: the shipped .d.ts
// files describe the package as it is used.
import express from 'express'
import {DPoPKey, LatchClient, LatchDPoPError, LatchError, LatchInsufficientAuthError} from '@latch-sessions/node'
import {latch, sendTokens} from '@latch-sessions/node/express'

const client = new LatchClient({url: 'http://127.0.0.1:8080'})
const sessions = latch({client, accessTokens: 'online'})
const app = express()
app.use(sessions)
app.post('/login', async (req, res) => {
  const iss = await req.latch.login({subject: 'alice'})
  const t: string = req.latch.csrfToken()
  sendTokens(sessions, res, iss, iss.session)
  void t
})
app.get('/me', sessions.requireSession, (req, res) => {
  const s = req.latch.session
  res.json({subject: s?.subject, left: req.latch.idleTimeLeft()})
})
async function f() {
  try {
    await client.verifySession('lts_x')
  } catch (e) {
    if (e instanceof LatchError && e.code === 'expired') return
  }
}
void f

app.post('/transfer', sessions.requireRecentAuth({maxAge: 300, acr: ['mfa']}), (req, res) => res.json({ok: true}))
app.post('/auth/login', async (req, res) => {
  const iss = await client.createSession({subject: 'alice', acr: 'pwd', amr: ['pwd'], dpop: req.latch.dpopProof()})
  res.json({token_type: iss.tokenType})
})
async function g(rt: string) {
  const key = DPoPKey.generate({alg: 'EdDSA'})
  try {
    const t = await client.refresh(rt, {dpop: key})
    const p: string = key.proof({htm: 'GET', htu: 'https://api.example/x', accessToken: t.accessToken})
    await client.verifyAccessToken(t.accessToken, {maxAge: 60, dpop: {proof: p, htm: 'GET', htu: 'https://api.example/x'}})
  } catch (e) {
    if (e instanceof LatchDPoPError) return e.nonce ?? e.reason
    if (e instanceof LatchInsufficientAuthError) return e.maxAge
  }
}
void g
