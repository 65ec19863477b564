// Test helpers: the latch serve the Go wrapper started (LATCH_URL,
// LATCH_API_KEY), extra servers from LATCH_BIN, an Express app on a free
// port, and a raw HTTP request helper that plays a browser.

import {spawn} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import http from 'node:http'
import net from 'node:net'
import {randomBytes} from 'node:crypto'
import {LatchClient} from '../src/index.js'

export const LATCH_URL = process.env.LATCH_URL
export const API_KEY = process.env.LATCH_API_KEY
if (!LATCH_URL || !API_KEY) {
  throw new Error('run these tests through the Go wrapper (go test ./clients/node), which starts latch serve and sets LATCH_URL and LATCH_API_KEY')
}

export function client(opts = {}) {
  return new LatchClient({url: LATCH_URL, apiKey: API_KEY, ...opts})
}

/** A unique subject per test, so tests do not see each other's sessions. */
export function subject(prefix = 'user') {
  return `${prefix}-${randomBytes(6).toString('hex')}`
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
    s.on('error', reject)
  })
}

/**
 * Starts another latch serve from LATCH_BIN (for tests that stop it).
 * Answers {url, apiKey, stop(), start(), output()}; the same address and
 * data directory survive a stop and start.
 */
export async function latchServer(args = [], {store, env = {}} = {}) {
  const bin = process.env.LATCH_BIN
  if (!bin) throw new Error('LATCH_BIN is not set (run through the Go wrapper)')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'latch-node-'))
  const apiKey = randomBytes(32).toString('base64url')
  let proc = null
  let out = ''
  const url = `http://127.0.0.1:${port}`
  const s = {
    url, apiKey,
    output: () => out,
    async start() {
      proc = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--store', store ?? join(dir, 'latch.db'), ...args], {
        cwd: dir, env: {...process.env, LATCH_API_KEY: apiKey, ...env}, stdio: ['ignore', 'pipe', 'pipe'],
      })
      proc.stdout.on('data', (c) => { out += c })
      proc.stderr.on('data', (c) => { out += c })
      for (let i = 0; i < 600; i++) {
        if (proc.exitCode !== null) break
        try {
          const r = await fetch(url + '/readyz')
          if (r.status === 200) return
        } catch {}
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error('latch serve did not become ready:\n' + out)
    },
    async stop() {
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
      const p = proc
      await new Promise((resolve) => { p.once('exit', resolve); p.kill('SIGTERM') })
    },
  }
  await s.start()
  return s
}

/** Listens an Express app on a free loopback port; answers its base URL and close(). */
export async function listen(app) {
  const server = http.createServer(app)
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const base = `http://127.0.0.1:${server.address().port}`
  return {base, server, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r) })}
}

/**
 * One HTTP request with exactly the headers given (a browser's, or an
 * attacker's). Answers {status, headers, setCookie: [], text, json}.
 */
export function request(base, method, path, {headers = {}, body, form} = {}) {
  let payload = body
  const h = {...headers}
  if (form) {
    payload = new URLSearchParams(form).toString()
    h['content-type'] = 'application/x-www-form-urlencoded'
  } else if (body !== undefined && typeof body !== 'string') {
    payload = JSON.stringify(body)
    h['content-type'] = 'application/json'
  }
  if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload)
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, {method, headers: h, agent: false}, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json
        try { json = JSON.parse(text) } catch {}
        resolve({status: res.statusCode, headers: res.headers, setCookie: res.headers['set-cookie'] ?? [], text, json})
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A browser's cookie jar, for one origin (enough for these tests). */
export class Jar {
  cookies = new Map()
  take(res) {
    for (const line of res.setCookie) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq)
      const value = pair.slice(eq + 1)
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))
      if (expired || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    return res
  }
  get(name) { return this.cookies.get(name) }
  header() { return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
}

export const TOKEN_RE = /lt[sr]_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ/

/** Starts a private redis-server on a free port (tests kill it); answers {url, stop()}. */
export async function redisServer() {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'latch-node-redis-'))
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {stdio: 'ignore'})
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (ok) break
    await new Promise((r) => setTimeout(r, 25))
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: () => new Promise((resolve) => { if (proc.exitCode !== null || proc.signalCode !== null) return resolve(); proc.once('exit', resolve); proc.kill('SIGKILL') }),
  }
}

export const KEK = randomBytes(32).toString('base64')

/**
 * A headless Chromium (playwright-core, $LATCH_CHROMIUM) closed when t ends,
 * and a fresh browser context in it.
 */
export async function chromiumContext(t) {
  const {chromium} = await import('playwright-core')
  const browser = await chromium.launch({
    executablePath: process.env.LATCH_CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.after(() => browser.close())
  return browser.newContext()
}
