// The seed documents' Express login app — express-session, connect-redis,
// csurf, a hand-set cookie and regenerate() on login — rewritten on latch:
// no cookie options, no session store, no CSRF package.
//
//   LATCH_API_KEY=… DEMO_PASSWORD=… node examples/express-login/server.js
//   then open http://localhost:3000/ (localhost is a secure context: the
//   Secure __Host-latch cookie works over plain HTTP there)

import express from 'express'
import {fileURLToPath} from 'node:url'
import {scryptSync, randomBytes, timingSafeEqual} from 'node:crypto'
import {latch, LatchClient} from '@latch-sessions/node/express'

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title, body) {
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
.warn{background:#fff4d6;border:1px solid #e0b84a;padding:.5rem 1rem;border-radius:6px}[hidden]{display:none}
form.inline{display:inline}button,input{font:inherit;padding:.3rem .6rem}</style>
<h1>${esc(title)}</h1>${body}</html>`
}

export function createApp({client = new LatchClient(), password} = {}) {
  if (!password || password.length < 8) throw new Error('DEMO_PASSWORD must be at least 8 characters')
  const users = new Map(['alice', 'bob'].map((u) => {
    const salt = randomBytes(16)
    return [u, {salt, hash: scryptSync(password, salt, 32)}]
  }))
  const check = (user, pw) => {
    const u = users.get(user)
    const got = scryptSync(String(pw ?? ''), u?.salt ?? randomBytes(16), 32)
    return u !== undefined && timingSafeEqual(got, u.hash)
  }

  const sessions = latch({client})
  const app = express()
  app.disable('x-powered-by')
  app.use(sessions) // was: app.use(session({store: new RedisStore(…), secret, cookie: {…}})) and app.use(csurf())

  app.get('/login', (req, res) => {
    if (req.latch.session) return res.redirect(303, '/')
    const again = req.query.timeout === '1' ? '<p class="warn">Your session timed out. Sign in again.</p>' : ''
    res.send(page('Sign in', `${again}
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="${esc(req.latch.csrfToken())}">
  <p><label>User <input name="user" autocomplete="username" required></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
  <p><button>Sign in</button></p>
</form>`))
  })

  // The middleware already checked the anonymous CSRF token and parsed the form.
  app.post('/login', async (req, res, next) => {
    try {
      if (!check(req.body.user, req.body.password)) return res.status(401).send(page('Sign in', '<p>Wrong user or password. <a href="/login">Try again</a>.</p>'))
      await req.latch.login({subject: req.body.user}) // was: req.session.regenerate(…); req.session.user = …
      res.redirect(303, '/')
    } catch (err) { next(err) }
  })

  app.get('/', (req, res) => {
    const s = req.latch.session
    if (!s) return res.redirect(303, '/login')
    const csrf = esc(req.latch.csrfToken())
    res.send(page(`Hello, ${s.subject}`, `
<p>Signed in since ${esc(s.authTime.toISOString())}.</p>
<p class="warn" id="idle" hidden>You will be signed out in <span id="left"></span> s. <a href="/">Stay signed in</a></p>
<form class="inline" method="post" action="/logout-others"><input type="hidden" name="csrf_token" value="${csrf}"><button>Sign out everywhere else</button></form>
<form class="inline" method="post" action="/logout"><input type="hidden" name="csrf_token" value="${csrf}"><button>Sign out</button></form>
<script>
  // The idle countdown: the server said how long the session has; warn for
  // the last two minutes, then ask to sign in again.
  let left = ${req.latch.idleTimeLeft()}
  const tick = () => {
    left--
    if (left <= 0) { location.href = '/login?timeout=1'; return }
    if (left <= 120) { document.getElementById('idle').hidden = false; document.getElementById('left').textContent = left }
    setTimeout(tick, 1000)
  }
  setTimeout(tick, 1000)
</script>`))
  })

  app.post('/logout', async (req, res, next) => {
    try { await req.latch.logout(); res.redirect(303, '/login') } catch (err) { next(err) }
  })

  app.post('/logout-others', sessions.requireSession, async (req, res, next) => {
    try {
      const n = await req.latch.revokeOthers()
      res.send(page('Signed out elsewhere', `<p>${n} other session(s) signed out. <a href="/">Back</a></p>`))
    } catch (err) { next(err) }
  })

  // latch's errors carry a status (401, 403, 503) and a code; never a token.
  app.use((err, req, res, next) => res.status(err.status ?? 500).send(page('Error', `<p>${esc(err.code ?? 'error')}</p>`)))
  return {app, sessions}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000)
  const {app} = createApp({password: process.env.DEMO_PASSWORD})
  app.listen(port, '127.0.0.1', () => console.log(`login example on http://localhost:${port}/`))
}
