// A single-page app on latch's refresh flow: the access token lives in the
// page's memory (clients/browser), the refresh token in an HttpOnly cookie
// scoped to /auth/refresh, and API routes take the access token. The page
// holds a non-extractable DPoP key and sends a proof with its login, so the
// session is bound to that key (RFC 9449): its tokens are refused without a
// proof by it (Authorization: DPoP). A client without a key gets an
// ordinary Bearer session.
//
//   LATCH_API_KEY=… DEMO_PASSWORD=… node examples/spa/server.js
//   then open http://localhost:3001/ (localhost is a secure context, so the
//   Secure cookies work over plain HTTP there)

import express from 'express'
import {fileURLToPath} from 'node:url'
import {dirname, join} from 'node:path'
import {scryptSync, randomBytes, timingSafeEqual} from 'node:crypto'
import {latch, sendTokens, clearTokens, defaultError, LatchClient, LatchError} from '@latch-sessions/node/express'

const here = dirname(fileURLToPath(import.meta.url))
const browserModule = join(here, '..', '..', '..', 'browser', 'latch.js')

/** Password hashes (scrypt) for the demo users; a real app has a user table. */
function users(password) {
  const out = new Map()
  for (const name of ['alice', 'bob']) {
    const salt = randomBytes(16)
    out.set(name, {salt, hash: scryptSync(password, salt, 32)})
  }
  return out
}

function checkPassword(db, user, password) {
  const u = db.get(user)
  const salt = u?.salt ?? randomBytes(16) // same work for unknown users
  const got = scryptSync(String(password ?? ''), salt, 32)
  return u !== undefined && timingSafeEqual(got, u.hash)
}

/**
 * Builds the app. `hooks.onRefresh` is called for every refresh request
 * and `hooks.onLogin` with every login's issued tokens (for the tests).
 */
export function createApp({client = new LatchClient(), password, hooks = {}} = {}) {
  if (!password || password.length < 8) throw new Error('DEMO_PASSWORD must be at least 8 characters')
  const db = users(password)
  const sessions = latch({client, accessTokens: 'online'})
  const app = express()
  app.disable('x-powered-by')
  app.use(sessions)

  app.get('/', (req, res) => res.sendFile(join(here, 'public', 'index.html')))
  app.get('/app.js', (req, res) => res.sendFile(join(here, 'public', 'app.js')))
  app.get('/latch.js', (req, res) => res.type('text/javascript').sendFile(browserModule))

  // The login form's anonymous CSRF token (sets its HttpOnly cookie).
  app.get('/auth/csrf', (req, res) => res.json({csrf_token: req.latch.csrfToken()}))

  app.post('/auth/login', express.json(), async (req, res, next) => {
    try {
      const {user, password} = req.body ?? {}
      if (!checkPassword(db, user, password)) return res.status(401).json({code: 'bad_credentials'})
      // dpopProof(): the proof of the request's DPoP header, if any, with
      // its method and URL; latch binds the session to its key.
      const iss = await client.createSession({subject: user, ip: req.ip, userAgent: req.get('user-agent'), acr: 'pwd', amr: ['pwd'], dpop: req.latch.dpopProof()})
      hooks.onLogin?.(iss)
      sendTokens(sessions, res, iss, iss.session)
    } catch (err) { next(err) }
  })

  app.post('/auth/refresh', (req, res, next) => { hooks.onRefresh?.(req); next() }, sessions.refresh)

  app.post('/auth/logout', sessions.requireSession, async (req, res, next) => {
    try {
      await client.revokeSession(req.latch.session.id)
      clearTokens(sessions, res)
      res.status(204).end()
    } catch (err) { next(err) }
  })

  app.get('/api/me', sessions.requireSession, (req, res) => {
    res.json({subject: req.latch.session.subject, session_id: req.latch.session.id})
  })

  // latch's refusals as problem documents (a refused DPoP proof with its
  // challenge and nonce, so the page can retry); anything else is a 500.
  app.use((err, req, res, next) => err instanceof LatchError ? defaultError(err, req, res) : res.status(500).json({code: 'internal'}))
  return {app, sessions}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3001)
  const {app} = createApp({password: process.env.DEMO_PASSWORD})
  app.listen(port, '127.0.0.1', () => console.log(`SPA example on http://localhost:${port}/`))
}
