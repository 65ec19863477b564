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
