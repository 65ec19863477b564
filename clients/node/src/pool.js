// A small HTTP/1.1 keep-alive connection pool for calls to latch: one
// request per connection at a time, Content-Length or chunked answers.
// It exists because node:http's client costs more CPU per call than the
// whole cached request path; latch's answers are small and simple.

import net from 'node:net'
import tls from 'node:tls'

const CRLF2 = Buffer.from('\r\n\r\n')

export class Pool {
  #host; #port; #secure; #tls; #max; #hostHeader
  #idle = []
  #count = 0
  #waiting = []
  #closed = false

  constructor(url, {maxSockets = 64, tls: tlsOptions = {}} = {}) {
    const u = new URL(url)
    this.#secure = u.protocol === 'https:'
    this.#host = u.hostname.replace(/^\[|\]$/g, '')
    this.#port = Number(u.port) || (this.#secure ? 443 : 80)
    this.#hostHeader = u.host
    this.#tls = tlsOptions
    this.#max = maxSockets
  }

  /** Sends one request; resolves {status, headers, body (Buffer)}; rejects with the network error. */
  request(method, path, headers, body, timeout) {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#hostHeader}\r\n`
    for (const k in headers) head += `${k}: ${headers[k]}\r\n`
    if (body !== undefined) head += `content-length: ${Buffer.byteLength(body)}\r\n`
    head += '\r\n'
    const payload = body === undefined ? head : head + body
    return new Promise((resolve, reject) => {
      const job = {payload, resolve, reject, timeout, timer: null}
      const c = this.#idle.pop()
      if (c) return this.#run(c, job)
      if (this.#count < this.#max) return this.#run(this.#dial(), job)
      this.#waiting.push(job)
    })
  }

  close() {
    this.#closed = true
    for (const c of this.#idle) c.sock.destroy()
    this.#idle = []
  }

  #dial() {
    this.#count++
    const opts = {host: this.#host, port: this.#port}
    const sock = this.#secure ? tls.connect({...opts, servername: net.isIP(this.#host) ? undefined : this.#host, ...this.#tls}) : net.connect(opts)
    sock.setNoDelay(true)
    sock.setKeepAlive(true, 30_000)
    const c = {sock, job: null, buf: null, dead: false, used: false}
    sock.on('data', (d) => this.#onData(c, d))
    const fail = (err) => {
      if (c.dead) return
      c.dead = true
      this.#count--
      const i = this.#idle.indexOf(c)
      if (i >= 0) this.#idle.splice(i, 1)
      const job = c.job
      c.job = null
      sock.destroy()
      if (job) {
        clearTimeout(job.timer)
        // A kept-alive connection the server closed while we wrote to it:
        // nothing was answered, so send once more on a fresh one.
        if (c.used && !c.buf && !job.retried && err?.code !== 'ETIMEDOUT') {
          job.retried = true
          this.#waiting.unshift(job)
        } else {
          job.reject(err ?? new Error('connection closed'))
        }
      }
      this.#next()
    }
    sock.on('error', fail)
    sock.on('close', () => fail(null))
    return c
  }

  #run(c, job) {
    c.job = job
    c.buf = null
    c.sock.ref()
    if (job.timeout) {
      job.timer = setTimeout(() => {
        const e = new Error('timeout')
        e.code = 'ETIMEDOUT'
        c.sock.destroy(e)
      }, job.timeout)
    }
    c.sock.write(job.payload)
  }

  #next() {
    if (this.#waiting.length === 0) return
    const c = this.#idle.pop() ?? (this.#count < this.#max ? this.#dial() : null)
    if (c) this.#run(c, this.#waiting.shift())
  }

  #onData(c, d) {
    if (!c.job) { c.sock.destroy(); return } // bytes nobody asked for
    c.buf = c.buf ? Buffer.concat([c.buf, d]) : d
    const res = parse(c.buf)
    if (res === null) return
    if (res instanceof Error) { c.sock.destroy(res); return }
    const job = c.job
    c.job = null
    c.buf = null
    c.used = true
    clearTimeout(job.timer)
    if (res.close || this.#closed) {
      c.dead = true
      this.#count--
      c.sock.destroy()
    } else if (this.#waiting.length > 0) {
      this.#run(c, this.#waiting.shift())
    } else {
      // An idle connection must not keep the process alive (as node:http's agent).
      c.sock.unref()
      this.#idle.push(c)
    }
    job.resolve(res)
  }
}

/** Parses a complete response from buf, or returns null if more bytes are needed. */
function parse(buf) {
  const end = buf.indexOf(CRLF2)
  if (end < 0) return buf.length > 64 * 1024 ? new Error('response head too large') : null
  const lines = buf.toString('latin1', 0, end).split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])
  if (!m) return new Error('malformed status line')
  const headers = {}
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':')
    if (c <= 0) continue
    const k = lines[i].slice(0, c).trim().toLowerCase()
    const v = lines[i].slice(c + 1).trim()
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`
  }
  const status = Number(m[1])
  const start = end + 4
  let body
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    body = Buffer.alloc(0)
    if (buf.length > start) return new Error('body on a bodiless response')
  } else if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const chunks = []
    let p = start
    for (;;) {
      const nl = buf.indexOf('\r\n', p, 'latin1')
      if (nl < 0) return null
      const size = parseInt(buf.toString('latin1', p, nl).split(';')[0], 16)
      if (!Number.isFinite(size) || size < 0) return new Error('malformed chunk')
      if (size === 0) {
        const fin = buf.indexOf(CRLF2, nl - 2)
        if (fin < 0) return null
        break
      }
      if (buf.length < nl + 2 + size + 2) return null
      chunks.push(buf.subarray(nl + 2, nl + 2 + size))
      p = nl + 2 + size + 2
    }
    body = Buffer.concat(chunks)
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length'])
    if (!Number.isInteger(n) || n < 0) return new Error('malformed content-length')
    if (buf.length < start + n) return null
    if (buf.length > start + n) return new Error('bytes after the response')
    body = buf.subarray(start, start + n)
  } else {
    return new Error('response without a length')
  }
  return {status, headers, body, close: /\bclose\b/i.test(headers.connection ?? '')}
}
