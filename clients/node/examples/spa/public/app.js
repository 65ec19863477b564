// The page script: sign in, call the API through latch.fetch, react to
// sign-out and the idle countdown. window.app is for the browser tests.
// The DPoP key (non-extractable, in IndexedDB) binds the session: every
// call and refresh carries a proof by it.
import {LatchBrowser, LatchDPoP} from '/latch.js'

const dpop = await LatchDPoP.open()
const latch = new LatchBrowser({refreshURL: '/auth/refresh', dpop})
const $ = (id) => document.getElementById(id)
const state = {signedOut: null, refreshes: 0, idle: []}

latch.addEventListener('signout', (e) => {
  state.signedOut = e.detail.reason
  $('app').hidden = true
  $('login').hidden = false
  $('signedout').hidden = false
  $('signedout').textContent = e.detail.reason === 'idle' ? 'Your session timed out. Sign in again.' : 'You were signed out. Sign in again.'
})
latch.addEventListener('refresh', () => { state.refreshes++ })
latch.addEventListener('idle', (e) => {
  state.idle.push(e.detail.secondsLeft)
  $('idle').hidden = e.detail.secondsLeft <= 0
  $('left').textContent = e.detail.secondsLeft
})

async function me() {
  const res = await latch.fetch('/api/me')
  const body = res.ok ? await res.json() : null
  if (body) {
    $('who').textContent = body.subject
    $('out').textContent = JSON.stringify(body, null, 2)
  }
  return {status: res.status, body}
}

async function login(user, password) {
  const {csrf_token} = await (await fetch('/auth/csrf')).json()
  const res = await dpop.fetch('/auth/login', {
    method: 'POST', headers: {'content-type': 'application/json', 'x-csrf-token': csrf_token},
    body: JSON.stringify({user, password}),
  })
  if (!res.ok) return false
  latch.setTokens(await res.json())
  state.signedOut = null
  show()
  await me()
  return true
}

async function logout() {
  await latch.fetch('/auth/logout', {method: 'POST'})
  latch.signOut('logout')
}

function show() {
  $('login').hidden = true
  $('signedout').hidden = true
  $('app').hidden = false
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault()
  const f = new FormData(e.target)
  if (!(await login(f.get('user'), f.get('password')))) $('login-error').textContent = 'Wrong user or password.'
})
$('me').addEventListener('click', me)
$('stay').addEventListener('click', me)
$('logout').addEventListener('click', logout)

window.app = {latch, dpop, state, login, logout, me, ready: (async () => {
  if (await latch.start()) { show(); await me() } else { $('login').hidden = false }
})()}
