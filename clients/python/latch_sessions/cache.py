"""Cached validation by docs/protocol.md §4: answer session-token validations
from memory while latch's event stream proves that every revocation would
have reached us.

The rules, all of them (or the cache does not serve):

1. Entries are keyed by SHA-256 of the token, never the token, and hold the
   session view, its CSRF token (the key ``k``) and the time stored.
2. An entry lives at most the ``max-age`` of verify's ``Cache-Control:
   private, max-age=N`` (latch's touch interval, so activity is still
   recorded as often as latch records it) and never past the session's
   idle or absolute deadline, checked on every use.
3. One ``GET /v1/events`` stream is kept open. It is *live* while something
   (an event or a heartbeat) arrived within ``staleness`` (default 250 ms).
   While it is not, every validation goes to latch and the cache is emptied
   the moment that is noticed. An answer is stored only if the stream was live,
   on the same connection, when the request was sent and when its answer
   arrived — and no invalidation arrived in between.
4. ``session.revoked``, ``session.renewed``, ``session.refresh_reuse`` drop
   the session; ``subject.revoked`` drops the subject's sessions but
   ``except``; ``reset``, a reconnect or a stale stream drop everything.
5. Failures are never cached or answered from the cache: a 401 is raised as
   it came, a 503 or timeout fails closed.
6. CSRF is checked against the cached key like any other (the adapters do).

:class:`Cache` runs the stream in a daemon thread for sync apps;
:class:`AsyncCache` in an asyncio task. Most users never touch either: the
adapters start one (``LATCH_CACHE``/``cache=True``).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ._client import AsyncClient, Client
from ._errors import ProtocolError
from ._http import _Disconnected, parse_chunk, parse_head, read_async
from ._types import Session, Verified, parse_time

__all__ = ["Cache", "AsyncCache", "DEFAULT_STALENESS"]

log = logging.getLogger("latch_sessions")

#: How long the stream may be silent before the cache stops serving (seconds).
DEFAULT_STALENESS = 0.25
_PATH = "/v1/events"  # without ?types latch sends exactly the six types a cache needs


@dataclass(slots=True)
class _Entry:
    answer: Verified  # what a hit returns (immutable)
    until: float      # monotonic: the earlier of max-age and the session's idle or absolute deadline


class _State:
    """The cache and the stream's liveness, shared by the sync and async readers.

    Every method takes the lock; readers and request threads share it."""

    def __init__(self, staleness: float, max_entries: int, access_ttl: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.staleness = staleness
        self.max_entries = max_entries
        self.access_ttl = access_ttl
        self.now = monotonic
        self.lock = threading.Lock()
        self.entries: dict[bytes, _Entry] = {}
        self.by_sid: dict[str, set[bytes]] = {}
        self.by_subject: dict[str, set[bytes]] = {}
        self.gen = 0          # the stream connection's number
        self.open = False     # a stream is connected
        self.last = 0.0       # when its last line arrived
        self.seq = 0          # invalidations seen: an answer in flight across one is not stored
        self.last_id: str | None = None
        # For offline access-token verifiers, kept for the access-token lifetime:
        # revoked sid -> at, renewed sid -> at, revoked subject -> (at, except sid).
        self.sid_dead: dict[str, tuple[datetime, float]] = {}
        self.sid_renewed: dict[str, tuple[datetime, float]] = {}
        self.subject_dead: dict[str, tuple[datetime, str | None, float]] = {}
        self.keys_changed: Callable[[str, str], None] | None = None
        self.hits = self.misses = 0

    def forked(self) -> None:
        """Forget a parent process's stream (its reader thread did not come along)."""
        self.lock = threading.Lock()  # the parent may have held it at fork
        self.open = False
        self.gen += 1
        self._clear()

    # -- liveness -----------------------------------------------------------

    def _live(self) -> bool:
        return self.open and self.now() - self.last <= self.staleness

    def live(self) -> bool:
        with self.lock:
            return self._live()

    def _clear(self) -> None:
        self.entries.clear()
        self.by_sid.clear()
        self.by_subject.clear()
        self.seq += 1

    def connected(self) -> int:
        with self.lock:
            self.gen += 1
            self.open = True
            self.last = float("-inf")  # live from the first heartbeat on
            self._clear()  # a new connection: whatever it missed, drop everything
            return self.gen

    def disconnected(self, gen: int) -> None:
        with self.lock:
            if self.gen == gen:
                self.open = False
                self._clear()

    def heard(self, gen: int, age: float = 0.0) -> None:
        """A heartbeat: the replica proved its link to the store ``age`` seconds before sending it.

        The bound counts from that proof, not from the heartbeat's arrival, so
        a replica's own staleness does not add to ours."""
        with self.lock:
            if self.gen == gen:
                self.last = max(self.last, self.now() - age)

    # -- lookups ------------------------------------------------------------

    def hit(self, key: bytes) -> Verified | None:
        """A live entry's answer, or None (the hot path: one clock read, one dict lookup)."""
        with self.lock:
            now = self.now()
            if not (self.open and now - self.last <= self.staleness):
                if self.entries:
                    self._clear()
                return None
            e = self.entries.get(key)
            if e is None:
                return None
            if now < e.until:
                self.hits += 1
                return e.answer
            self._drop(key)
            return None

    def lookup(self, key: bytes) -> tuple[Verified | None, tuple[int, int, bool]]:
        """A live entry, or None and a ticket for store()."""
        v = self.hit(key)
        if v is not None:
            return v, (0, 0, False)
        with self.lock:
            self.misses += 1
            return None, (self.gen, self.seq, self._live())

    def store(self, key: bytes, v: Verified, ticket: tuple[int, int, bool], sent: float) -> None:
        gen, seq, was_live = ticket
        if not was_live or not v.max_age:
            return
        with self.lock:
            if not self._live() or self.gen != gen or self.seq != seq:
                return
            if len(self.entries) >= self.max_entries:
                self._drop(next(iter(self.entries)))
            # The session's deadline, moved onto the monotonic clock once, here, not on every hit.
            deadline = self.now() + (v.session.deadline().timestamp() - time.time())
            self.entries[key] = _Entry(Verified(v.session, v.csrf_token, None), min(sent + v.max_age, deadline))
            self.by_sid.setdefault(v.session.id, set()).add(key)
            self.by_subject.setdefault(v.session.subject, set()).add(key)

    def _drop(self, key: bytes) -> None:
        e = self.entries.pop(key, None)
        if e is None:
            return
        for index, name in ((self.by_sid, e.answer.session.id), (self.by_subject, e.answer.session.subject)):
            keys = index.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[name]

    # -- events ---------------------------------------------------------------

    def event(self, gen: int, etype: str, data: str, eid: str | None) -> None:
        try:
            d = json.loads(data) if data else {}
        except ValueError:
            d = {}
        if not isinstance(d, dict):
            d = {}
        sid, subject = d.get("session_id"), d.get("subject")
        try:
            at = parse_time(d["at"]) if isinstance(d.get("at"), str) else datetime.now(timezone.utc)
        except ProtocolError:
            at = datetime.now(timezone.utc)
        keep = self.now() + self.access_ttl
        notify = None
        with self.lock:
            if self.gen != gen:
                return
            self.last = self.now()
            if eid:
                self.last_id = eid
            self.seq += 1
            if etype in ("session.revoked", "session.renewed", "session.refresh_reuse") and isinstance(sid, str):
                for k in list(self.by_sid.get(sid, ())):
                    self._drop(k)
                if etype == "session.renewed":
                    self.sid_renewed[sid] = (at, keep)
                else:
                    self.sid_dead[sid] = (at, keep)  # a revoked session never comes back: every token of it is dead
            elif etype == "subject.revoked" and isinstance(subject, str):
                exc = d.get("except") if isinstance(d.get("except"), str) else None
                for k in list(self.by_subject.get(subject, ())):
                    e = self.entries.get(k)
                    if e is not None and e.answer.session.id != exc:
                        self._drop(k)
                self.subject_dead[subject] = (at, exc, keep)
            elif etype == "reset":
                self._clear()
            elif etype == "keys.changed":
                notify = (str(d.get("kid") or ""), str(d.get("reason") or ""))
            self._expire_dead()
        if notify is not None and self.keys_changed is not None:
            self.keys_changed(*notify)

    def _expire_dead(self) -> None:
        now = self.now()
        if len(self.sid_dead) > 1024:
            self.sid_dead = {k: v for k, v in self.sid_dead.items() if v[1] > now}
        if len(self.sid_renewed) > 1024:
            self.sid_renewed = {k: v for k, v in self.sid_renewed.items() if v[1] > now}
        if len(self.subject_dead) > 1024:
            self.subject_dead = {k: v for k, v in self.subject_dead.items() if v[2] > now}

    def access_verdict(self, sid: str | None, subject: str | None, iat: Any) -> str:
        """For offline verifiers: "revoked" if the token's session was revoked, or was renewed or
        subject-revoked at or after iat; "ask" when that cannot be told (iat has whole
        seconds: an event in the same second); else "ok"."""
        if not isinstance(iat, (int, float)):
            return "ask"
        with self.lock:
            if sid and sid in self.sid_dead:
                return "revoked"
            times = []
            if sid and sid in self.sid_renewed:
                times.append(self.sid_renewed[sid][0])
            if subject and subject in self.subject_dead:
                t, exc, _ = self.subject_dead[subject]
                if sid != exc:
                    times.append(t)
        verdict = "ok"
        for t in times:
            ts = t.timestamp()
            if int(ts) > iat:
                return "revoked"
            if int(ts) == int(iat):
                verdict = "ask"
        return verdict


class _SSE:
    """The Server-Sent Events line protocol (WHATWG): fields, then a blank line dispatches."""

    def __init__(self) -> None:
        self.etype, self.data, self.eid, self.retry = "", [], None, None

    def line(self, raw: bytes) -> tuple[str, str, str | None] | float | None:
        """An event (type, data, id) when a blank line dispatches one; for a
        heartbeat (``: hb N``) the age of the replica's last store proof, in
        seconds; else None."""
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not line:
            if not self.data and not self.etype:
                return None
            ev = (self.etype or "message", "\n".join(self.data), self.eid)
            self.etype, self.data = "", []
            return ev
        if line.startswith(":"):
            n = line[len(": hb "):] if line.startswith(": hb ") else ""
            return int(n) / 1000 if n.isdigit() and len(n) <= 9 else None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.etype = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.eid = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None


def _forked(ref: "weakref.ref[Cache]") -> None:
    # A thread does not survive a fork (gunicorn --preload): the child starts its own reader.
    c = ref()
    if c is not None:
        c._started = False


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Cache:
    """Cached validation for a sync :class:`Client` (a daemon thread reads the stream).

    ``verify_session`` has the client's signature and answers from memory when
    the rules above allow, else asks latch. Safe for concurrent use."""

    def __init__(self, client: Client, *, staleness: float = DEFAULT_STALENESS, max_entries: int = 100_000,
                 access_ttl: float = 600.0) -> None:
        if not 0 < staleness <= 5:
            raise ValueError("latch: staleness must be between 0 and 5 seconds")
        self.client = client
        self.state = _State(staleness, max_entries, access_ttl)
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._started = False  # in this process: a forked child must start its own reader
        self._start_lock = threading.Lock()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(ref))

    def start(self) -> "Cache":
        """Start reading the stream (verify_session does it on first use, in each process:
        a thread does not survive a fork, e.g. gunicorn --preload)."""
        with self._start_lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._started = True
                self.state.forked()
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="latch-events", daemon=True)
                self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        c = self._conn
        if c is not None and c.sock is not None:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def live(self) -> bool:
        return self.state.live()

    def peek(self, session_token: str) -> Verified | None:
        """The cached answer for a token, or None: no call to latch (the adapters' hot path)."""
        if not self._started:
            self.start()
        return self.state.hit(_key(session_token))

    def verify_session(self, session_token: str, *, ip: str | None = None, user_agent: str | None = None) -> Verified:
        if not self._started:
            self.start()
        key = _key(session_token)
        hit, ticket = self.state.lookup(key)
        if hit is not None:
            return hit
        sent = self.state.now()
        v = self.client.verify_session(session_token, ip=ip, user_agent=user_agent)
        self.state.store(key, v, ticket, sent)
        return v

    def _run(self) -> None:
        ep = self.client._ep
        backoff = 0.1
        warned = False
        while not self._stop.is_set():
            gen = None
            try:
                cls = http.client.HTTPSConnection if ep.https else http.client.HTTPConnection
                kw = {"context": ep.ssl} if ep.https else {}
                # Reads time out well after the staleness bound: a silent stream is
                # already untrusted then; this only ends a dead connection.
                c = cls(ep.host, ep.port, timeout=max(1.0, 4 * self.state.staleness), **kw)
                self._conn = c
                h = {"Authorization": self.client._auth, "Accept": "text/event-stream"}
                if self.state.last_id:
                    h["Last-Event-ID"] = self.state.last_id
                c.request("GET", ep.prefix + _PATH, headers=h)
                r = c.getresponse()
                if r.status != 200:
                    r.read()
                    c.close()
                    if not warned:
                        log.warning("latch: GET /v1/events answered %d; validating online", r.status)
                        warned = True
                    self._stop.wait(5 if r.status in (404, 405) else 1)
                    continue
                warned = False
                gen = self.state.connected()
                sse = _SSE()
                backoff = 0.1
                while not self._stop.is_set():
                    line = r.readline(65536)
                    if not line:
                        break
                    ev = sse.line(line)
                    if isinstance(ev, float):
                        self.state.heard(gen, ev)
                    elif ev is not None:
                        self.state.event(gen, *ev)
                if sse.retry:
                    backoff = min(sse.retry / 1000, 5)
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                if gen is not None:
                    self.state.disconnected(gen)
                if self._conn is not None:
                    self._conn.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)


class AsyncCache:
    """Cached validation for an :class:`AsyncClient` (an asyncio task reads the stream).

    The task starts on the first ``verify_session`` in a running loop, so the
    cache can be built before the loop exists (module level, middleware setup)."""

    def __init__(self, client: AsyncClient, *, staleness: float = DEFAULT_STALENESS, max_entries: int = 100_000,
                 access_ttl: float = 600.0) -> None:
        if not 0 < staleness <= 5:
            raise ValueError("latch: staleness must be between 0 and 5 seconds")
        self.client = client
        self.state = _State(staleness, max_entries, access_ttl)
        self._task: asyncio.Task[None] | None = None

    def _ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="latch-events")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    def live(self) -> bool:
        return self.state.live()

    def peek(self, session_token: str) -> Verified | None:
        """The cached answer for a token, or None (call it on the event loop)."""
        self._ensure()
        return self.state.hit(_key(session_token))

    async def verify_session(self, session_token: str, *, ip: str | None = None,
                             user_agent: str | None = None) -> Verified:
        self._ensure()
        key = _key(session_token)
        hit, ticket = self.state.lookup(key)
        if hit is not None:
            return hit
        sent = self.state.now()
        v = await self.client.verify_session(session_token, ip=ip, user_agent=user_agent)
        self.state.store(key, v, ticket, sent)
        return v

    async def _run(self) -> None:
        ep = self.client._ep
        backoff = 0.1
        read_timeout = max(1.0, 4 * self.state.staleness)
        while True:
            gen = None
            writer = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    ep.host, ep.port, ssl=ep.ssl, server_hostname=ep.host if ep.ssl else None), read_timeout)
                head = [f"GET {ep.prefix}{_PATH} HTTP/1.1", f"Host: {ep.netloc}",
                        f"Authorization: {self.client._auth}", "Accept: text/event-stream"]
                if self.state.last_id:
                    head.append(f"Last-Event-ID: {self.state.last_id}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                await writer.drain()
                status, _, headers = await asyncio.wait_for(read_async(parse_head(), reader), read_timeout)
                if status != 200:
                    await asyncio.sleep(5 if status in (404, 405) else 1)
                    continue
                chunked = "chunked" in headers.get("transfer-encoding", "").lower()
                gen = self.state.connected()
                sse = _SSE()
                backoff = 0.1
                buf = b""
                while True:
                    if chunked:
                        data = await asyncio.wait_for(read_async(parse_chunk(), reader), read_timeout)
                    else:
                        data = await asyncio.wait_for(reader.read(65536), read_timeout)
                    if not data:
                        break
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    if len(buf) > 65536:
                        break
                    for line in lines:
                        ev = sse.line(line + b"\n")
                        if isinstance(ev, float):
                            self.state.heard(gen, ev)
                        elif ev is not None:
                            self.state.event(gen, *ev)
                if sse.retry:
                    backoff = min(sse.retry / 1000, 5)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, _Disconnected, ProtocolError, ValueError,
                    asyncio.IncompleteReadError):
                pass
            finally:
                if gen is not None:
                    self.state.disconnected(gen)
                if writer is not None:
                    writer.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


