// The Express login example, walked through as a browser would: the login
// form with its anonymous CSRF token, login, the account page, sign-out
// everywhere else, sign-out.

import {test} from 'node:test'
import assert from 'node:assert/strict'
import {createApp} from '../examples/express-login/server.js'
import {Jar, client, listen, request} from './helpers.js'

const PASSWORD = 'correct horse battery staple'
const SAME = {'sec-fetch-site': 'same-origin'}
const field = (html) => /name="csrf_token" value="([^"]+)"/.exec(html)?.[1]

test('the login example: form, login, account page, logout', async (t) => {
  const {app, sessions} = createApp({client: client(), password: PASSWORD})
  const srv = await listen(app)
  t.after(async () => { sessions.close(); await srv.close() })
  const jar = new Jar()
  assert.equal((await request(srv.base, 'GET', '/')).headers.location, '/login')
  const form = jar.take(await request(srv.base, 'GET', '/login'))
  const anon = field(form.text)
  assert.ok(anon)
  const bad = await request(srv.base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user: 'alice', password: 'nope', csrf_token: anon}})
  assert.equal(bad.status, 401)
  const forged = await request(srv.base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user: 'alice', password: PASSWORD}})
  assert.equal(forged.status, 403, 'a login form post without the CSRF token')
  const ok = jar.take(await request(srv.base, 'POST', '/login', {headers: {...SAME, cookie: jar.header()}, form: {user: 'alice', password: PASSWORD, csrf_token: anon}}))
  assert.equal(ok.status, 303)
  const home = await request(srv.base, 'GET', '/', {headers: {cookie: jar.header()}})
  assert.equal(home.status, 200)
  assert.match(home.text, /Hello, alice/)
  assert.match(home.text, /let left = \d+/)
  const csrf = field(home.text)
  const out = jar.take(await request(srv.base, 'POST', '/logout', {headers: {...SAME, cookie: jar.header()}, form: {csrf_token: csrf}}))
  assert.equal(out.status, 303)
  assert.equal(out.headers['clear-site-data'], '"cookies"')
  assert.equal((await request(srv.base, 'GET', '/', {headers: {cookie: jar.header()}})).headers.location, '/login')
})

test('the SPA refresh route: scoped HttpOnly cookie, rotation, cross-site refused, a dead session expires the cookie', async (t) => {
  const {createApp: spa} = await import('../examples/spa/server.js')
  const c = client()
  const {app, sessions} = spa({client: c, password: PASSWORD})
  const srv = await listen(app)
  t.after(async () => { sessions.close(); await srv.close() })
  const jar = new Jar()
  const f = jar.take(await request(srv.base, 'GET', '/auth/csrf'))
  assert.equal((await request(srv.base, 'POST', '/auth/login', {headers: {...SAME, cookie: jar.header()}, body: {user: 'bob', password: PASSWORD}})).status, 403, 'login without the anonymous CSRF token')
  const login = jar.take(await request(srv.base, 'POST', '/auth/login', {headers: {...SAME, cookie: jar.header(), 'x-csrf-token': f.json.csrf_token}, body: {user: 'bob', password: PASSWORD}}))
  assert.equal(login.status, 200)
  assert.match(login.json.access_token, /^eyJ/)
  assert.ok(login.json.idle_expires_at && login.json.expires_at)
  const rc = login.setCookie.find((s) => s.startsWith('__Secure-latch-refresh='))
  assert.match(rc, /^__Secure-latch-refresh=ltr_[A-Za-z0-9_-]+; Path=\/auth\/refresh; HttpOnly; Secure; SameSite=Strict$/)
  assert.equal(login.headers['cache-control'], 'no-store')
  const refresh = (headers = SAME) => request(srv.base, 'POST', '/auth/refresh', {headers: {...headers, cookie: jar.header()}})
  assert.equal((await refresh({'sec-fetch-site': 'cross-site'})).status, 403, 'a cross-site refresh')
  const old = jar.get('__Secure-latch-refresh')
  const r = jar.take(await refresh())
  assert.equal(r.status, 200)
  assert.match(r.json.access_token, /^eyJ/)
  assert.notEqual(jar.get('__Secure-latch-refresh'), old, 'rotated')
  const me = await request(srv.base, 'GET', '/api/me', {headers: {authorization: `Bearer ${r.json.access_token}`}})
  assert.equal(me.json.subject, 'bob')
  await c.revokeSession(me.json.session_id)
  const dead = await refresh()
  assert.equal(dead.status, 401)
  assert.equal(dead.json.code, 'revoked')
  assert.ok(dead.setCookie.some((s) => s.startsWith('__Secure-latch-refresh=; Path=/auth/refresh; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0')))
  jar.take(dead)
  assert.equal((await refresh()).status, 401, 'no refresh cookie')
})
