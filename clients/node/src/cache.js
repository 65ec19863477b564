// Cached validation by docs/protocol.md §4: a session-token validation is
// answered from memory only while the event stream (GET /v1/events) is
// proven live, so a hot session costs no round trip and a revocation
// still takes effect within the staleness bound.
//
// The rules, all of them:
//   1. Entries are keyed by SHA-256 of the token, never the token.
//   2. An entry lives at most the verify answer's max-age, and never past
//      the session's idle or absolute deadline (checked on every use).
//   3. The stream is live while the newest heartbeat's proof lies within
//      staleAfter (default 250 ms): a heartbeat ": hb N" says the replica
//      proved its own link to the store N ms before sending it, so the
//      bound counts from that proof and holds end to end; events alone
//      prove nothing. While it is not live, every validation goes
//      to latch and the cache is emptied the moment that is noticed. An
//      entry is stored only if the stream was live, on the same connection,
//      both when the verify was sent and when its answer arrived, and no
//      invalidation arrived in between.
//   4. Invalidation by event type; reset, a reconnect or a stale stream
//      drops everything.
//   5. Failures are not cached: a 401 is answered as it came; a 503 or a
//      timeout fails closed.
//   6. Unsafe requests are checked against the cached CSRF key.

import {createHash} from 'node:crypto'
import {performance} from 'node:perf_hooks'
import {unmask} from './csrf.js'
import {LatchConfigError} from './errors.js'

const DEFAULT_STALE = 250
const DEFAULT_MAX = 100_000

export class CachedValidator {
  #client
  #staleAfter
  #max
  #entries = new Map()   // sha256(token) -> entry
  #bySid = new Map()     // session ID -> Set of keys
  #bySubject = new Map() // subject -> Set of session IDs
  #conn = 0              // increments on every (re)connection
  #connected = false
  #lastSeen = -Infinity  // performance.now() of the replica's newest store proof, by its heartbeats
  #epoch = 0             // increments on every invalidation
  #res = null
  #closed = false
  #retry = 1000
  #connectedAt = Infinity // wall-clock ms when the current stream opened
  #revokedSid = new Map()  // session ID -> wall ms of its revocation (any token refused)
  #renewedSid = new Map()  // session ID -> wall ms of its renewal (tokens from before refused)
  #revokedSub = new Map()  // subject -> [{at, except}] (tokens from before refused)
  #keep = 60 * 60 * 1000   // how long revocations are remembered for offline verification
  #timer
  #pruner
  #reconnect = null
  /** Counters for tests and metrics. */
  stats = {hits: 0, misses: 0, stored: 0, dropped: 0, connects: 0}

  constructor(client, {staleAfter = DEFAULT_STALE, maxEntries = DEFAULT_MAX} = {}) {
    if (!Number.isFinite(staleAfter) || staleAfter <= 0 || staleAfter > 5000) {
      throw new LatchConfigError('cache.staleAfter', 'must be a positive number of milliseconds, at most a few heartbeat intervals (default 250)')
    }
    if (!Number.isInteger(maxEntries) || maxEntries <= 0) throw new LatchConfigError('cache.maxEntries', 'must be a positive integer')
    this.#client = client
    this.#staleAfter = staleAfter
    this.#max = maxEntries
    this.#timer = setInterval(() => this.#checkLive(), Math.max(10, staleAfter / 5))
    this.#timer.unref()
    this.#pruner = setInterval(() => this.#prune(), 60_000)
    this.#pruner.unref()
    this.#connect()
  }

  /** Whether the stream is live now (cache answers allowed). */
  get live() {
    return this.#connected && performance.now() - this.#lastSeen <= this.#staleAfter
  }

  /** Entries held. */
  get size() { return this.#entries.size }

  /** Whether token's validation is cached now (for tests and diagnostics). */
  has(token) { return this.#entries.has(hash(token)) }

  async validate(token, info = {}) {
    const key = hash(token)
    const now = Date.now()
    if (this.#checkLive()) {
      const e = this.#entries.get(key)
      if (e && now < e.until) {
        this.stats.hits++
        return e.value
      }
      if (e) this.#drop(key)
    }
    this.stats.misses++
    const conn = this.#conn
    const epoch = this.#epoch
    const liveAtSend = this.live
    const v = await this.#client.verifySession(token, info)
    const value = {session: v.session, csrfKey: v.csrfToken ? unmask(v.csrfToken) : null}
    if (liveAtSend && v.maxAge > 0 && this.live && this.#conn === conn && this.#epoch === epoch) {
      const until = Math.min(Date.now() + v.maxAge * 1000, +v.session.idleExpiresAt, +v.session.expiresAt)
      if (until > Date.now()) this.#store(key, value, until)
    }
    return value
  }

  /**
   * For offline access-token verification (protocol §4, last paragraph):
   * 'ok' when the stream vouches that the token's session was neither
   * revoked, nor renewed or subject-revoked at or after its iat; 'revoked'
   * when it was; 'ask' when the stream cannot tell (not live, opened after
   * the token was issued, a revocation in the token's iat second, or a
   * token living longer than revocations are remembered): verify online.
   */
  accessTokenStatus({sid, sub, iat, exp}) {
    if (!this.live || typeof sid !== 'string' || !Number.isFinite(iat)) return 'ask'
    const iatMs = iat * 1000
    if (iatMs < this.#connectedAt || (exp - iat) * 1000 > this.#keep) return 'ask'
    if (this.#revokedSid.has(sid)) return 'revoked'
    const after = (at) => {
      const s = Math.floor(at / 1000)
      return s > iat ? 'revoked' : s === iat ? 'ask' : 'ok'
    }
    let verdict = 'ok'
    const r = this.#renewedSid.get(sid)
    if (r !== undefined) verdict = after(r)
    for (const {at, except} of this.#revokedSub.get(sub) ?? []) {
      if (except === sid || verdict === 'revoked') continue
      const v = after(at)
      if (v !== 'ok') verdict = v
    }
    return verdict
  }

  #remember(map, key, at) {
    map.set(key, at)
  }

  #prune() {
    const old = Date.now() - this.#keep
    for (const [k, at] of this.#revokedSid) if (at < old) this.#revokedSid.delete(k)
    for (const [k, at] of this.#renewedSid) if (at < old) this.#renewedSid.delete(k)
    for (const [k, list] of this.#revokedSub) {
      const kept = list.filter((e) => e.at >= old)
      if (kept.length) this.#revokedSub.set(k, kept)
      else this.#revokedSub.delete(k)
    }
  }

  /** Drops a token's entry (the middleware's own logout, renew, login). */
  forget(token) {
    if (token) this.#drop(hash(token))
  }

  close() {
    this.#closed = true
    clearInterval(this.#timer)
    clearInterval(this.#pruner)
    clearTimeout(this.#reconnect)
    this.#res?.destroy()
    this.#clear()
  }

  // ---- the store ---------------------------------------------------------------

  #store(key, value, until) {
    if (this.#entries.has(key)) this.#drop(key)
    while (this.#entries.size >= this.#max) this.#drop(this.#entries.keys().next().value)
    const {id, subject} = value.session
    this.#entries.set(key, {value, until, sid: id, subject})
    let keys = this.#bySid.get(id)
    if (!keys) this.#bySid.set(id, keys = new Set())
    keys.add(key)
    let sids = this.#bySubject.get(subject)
    if (!sids) this.#bySubject.set(subject, sids = new Set())
    sids.add(id)
    this.stats.stored++
  }

  #drop(key) {
    const e = this.#entries.get(key)
    if (!e) return
    this.#entries.delete(key)
    const keys = this.#bySid.get(e.sid)
    keys?.delete(key)
    if (keys?.size === 0) {
      this.#bySid.delete(e.sid)
      const sids = this.#bySubject.get(e.subject)
      sids?.delete(e.sid)
      if (sids?.size === 0) this.#bySubject.delete(e.subject)
    }
  }

  #dropSession(sid) {
    for (const key of this.#bySid.get(sid) ?? []) this.#drop(key)
  }

  #clear() {
    if (this.#entries.size > 0) this.stats.dropped += this.#entries.size
    this.#entries.clear()
    this.#bySid.clear()
    this.#bySubject.clear()
  }

  /** Reports liveness, emptying the cache the moment the stream is not live. */
  #checkLive() {
    if (this.live) return true
    this.#epoch++
    this.#clear()
    return false
  }

  // ---- the event stream ------------------------------------------------------

  async #connect() {
    if (this.#closed) return
    let res
    try {
      res = await this.#client.openStream('/v1/events', {headers: {accept: 'text/event-stream'}})
    } catch {
      return this.#scheduleReconnect()
    }
    if (this.#closed) return res.destroy()
    if (res.statusCode !== 200 || !/^text\/event-stream/.test(res.headers['content-type'] ?? '')) {
      // No event log (503) or an older latch: validate online only, and
      // look again later.
      res.resume()
      this.#retry = 10_000
      return this.#scheduleReconnect()
    }
    this.#res = res
    // The stream must not keep a process alive on its own.
    res.socket?.unref()
    this.#conn++
    this.#epoch++
    this.#clear()
    this.#lastSeen = -Infinity // live from the first heartbeat on
    this.#connected = true
    // Events before this moment were not seen: access tokens issued before
    // it are verified online (accessTokenStatus answers 'ask').
    this.#connectedAt = Date.now()
    this.#revokedSid.clear()
    this.#renewedSid.clear()
    this.#revokedSub.clear()
    this.stats.connects++
    res.setEncoding('utf8')
    let buf = ''
    let ev = {event: 'message', data: ''}
    res.on('data', (chunk) => {
      buf += chunk
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (line.endsWith('\r')) line = line.slice(0, -1)
        if (line === '') {
          if (ev.data !== '' || ev.event !== 'message') this.#onEvent(ev.event, ev.data)
          ev = {event: 'message', data: ''}
          continue
        }
        if (line[0] === ':') {
          const age = heartbeatAge(line)
          if (age !== undefined) this.#lastSeen = Math.max(this.#lastSeen, performance.now() - age)
          continue
        }
        const c = line.indexOf(':')
        const field = c < 0 ? line : line.slice(0, c)
        let value = c < 0 ? '' : line.slice(c + 1)
        if (value[0] === ' ') value = value.slice(1)
        if (field === 'event') ev.event = value
        else if (field === 'data') ev.data = ev.data === '' ? value : ev.data + '\n' + value
        else if (field === 'retry' && /^\d+$/.test(value)) this.#retry = Number(value)
      }
    })
    const end = () => {
      if (this.#res !== res) return
      this.#res = null
      this.#connected = false
      this.#connectedAt = Infinity
      this.#epoch++
      this.#clear()
      this.#scheduleReconnect()
    }
    res.on('end', end)
    res.on('error', end)
    res.on('close', end)
  }

  #scheduleReconnect() {
    if (this.#closed) return
    clearTimeout(this.#reconnect)
    this.#reconnect = setTimeout(() => this.#connect(), Math.min(this.#retry, 10_000))
    this.#reconnect.unref()
  }

  #onEvent(type, data) {
    let d = {}
    try { d = data ? JSON.parse(data) : {} } catch { d = {} }
    // An event without a usable time counts as now (refuses more, never less).
    const at = Math.max(Date.parse(d.at) || 0, Date.now())
    switch (type) {
      case 'session.revoked':
      case 'session.renewed':
      case 'session.refresh_reuse':
        this.#epoch++
        if (typeof d.session_id === 'string') {
          this.#dropSession(d.session_id)
          this.#remember(type === 'session.renewed' ? this.#renewedSid : this.#revokedSid, d.session_id, at)
        } else {
          this.#clear()
          this.#connectedAt = Date.now() // cannot tell which tokens: ask latch for all older ones
        }
        break
      case 'subject.revoked': {
        this.#epoch++
        if (typeof d.subject !== 'string') { this.#clear(); this.#connectedAt = Date.now(); break }
        const list = this.#revokedSub.get(d.subject) ?? []
        list.push({at, except: typeof d.except === 'string' ? d.except : undefined})
        this.#revokedSub.set(d.subject, list)
        for (const sid of [...(this.#bySubject.get(d.subject) ?? [])]) {
          if (sid !== d.except) this.#dropSession(sid)
        }
        break
      }
      case 'reset':
        this.#epoch++
        this.#clear()
        this.#connectedAt = Date.now()
        break
      default:
        // keys.changed and audit events do not touch session entries.
    }
  }
}

function hash(token) {
  return createHash('sha256').update(token).digest('base64url')
}

/**
 * The age in ms of a heartbeat comment ": hb N" (protocol §3), or undefined
 * for any other comment: those prove nothing.
 * @param {string} line
 */
export function heartbeatAge(line) {
  const m = /^: hb (\d{1,9})$/.exec(line)
  return m ? Number(m[1]) : undefined
}
