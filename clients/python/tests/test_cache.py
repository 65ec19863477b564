"""Cached validation (docs/protocol.md §4): the rules on a fake clock, then
against a real latch serve's event stream — a revocation is seen, a stopped
latch or a silent stream stops the cache, failures are never cached — and
offline access-token verification with PyJWT."""

from __future__ import annotations

import asyncio
import json
import time
import unittest
import urllib.request
from datetime import datetime, timedelta, timezone

import latch_sessions as ls
from latch_sessions import cache as lc
from latch_sessions._types import Session, Verified

from . import harness, support


def _session(sid="ses_a", subject="alice", idle=timedelta(minutes=30)) -> Session:
    now = datetime.now(timezone.utc)
    return Session(sid, subject, now, now, now, now + idle, now + timedelta(hours=1))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class StateRulesTest(unittest.TestCase):
    """Each rule of §4 on the shared state, with a fake monotonic clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.s = lc._State(0.25, 100, 600, monotonic=self.clock)
        self.gen = self.s.connected()
        self.s.heard(self.gen)
        self.v = Verified(_session(), "csrf", 60)

    def store(self, key=b"k", v=None) -> None:
        hit, ticket = self.s.lookup(key)
        self.assertIsNone(hit)
        self.s.store(key, v or self.v, ticket, self.clock.t)

    def test_hit_while_live_within_max_age(self) -> None:
        self.store()
        self.clock.t += 0.1
        hit, _ = self.s.lookup(b"k")
        self.assertEqual(hit.session.id, "ses_a")
        self.assertEqual(hit.csrf_token, "csrf")
        self.s.heard(self.gen)
        self.clock.t += 59.95
        self.s.heard(self.gen)
        self.assertIsNone(self.s.lookup(b"k")[0], "past max-age")

    def test_stale_stream_clears(self) -> None:
        self.store()
        self.clock.t += 0.3  # no heartbeat within 250 ms
        self.assertIsNone(self.s.lookup(b"k")[0])
        self.s.heard(self.gen)
        self.assertIsNone(self.s.lookup(b"k")[0], "cleared the moment it was noticed, not just skipped")

    def test_not_stored_unless_live_at_send_and_arrival_on_one_connection(self) -> None:
        # Not live when sent.
        self.clock.t += 1
        hit, ticket = self.s.lookup(b"k")
        self.s.heard(self.gen)
        self.s.store(b"k", self.v, ticket, self.clock.t)
        self.assertIsNone(self.s.lookup(b"k")[0])
        # Live when sent, not when it arrived.
        hit, ticket = self.s.lookup(b"k")
        self.clock.t += 1
        self.s.store(b"k", self.v, ticket, self.clock.t)
        self.s.heard(self.gen)
        self.assertIsNone(self.s.lookup(b"k")[0])
        # Another connection in between.
        hit, ticket = self.s.lookup(b"k")
        self.gen = self.s.connected()
        self.s.store(b"k", self.v, ticket, self.clock.t)
        self.assertIsNone(self.s.lookup(b"k")[0])
        # An invalidation in flight.
        hit, ticket = self.s.lookup(b"k")
        self.s.event(self.gen, "session.revoked", json.dumps({"session_id": "ses_other", "subject": "x"}), "1")
        self.s.store(b"k", self.v, ticket, self.clock.t)
        self.assertIsNone(self.s.lookup(b"k")[0])
        # No max-age: not cacheable.
        hit, ticket = self.s.lookup(b"k")
        self.s.store(b"k", Verified(_session(), "c", None), ticket, self.clock.t)
        self.assertIsNone(self.s.lookup(b"k")[0])

    def test_session_deadline_checked_locally(self) -> None:
        self.store(v=Verified(_session(idle=timedelta(seconds=-1)), "c", 60))
        self.assertIsNone(self.s.lookup(b"k")[0])

    def test_invalidations(self) -> None:
        for etype in ("session.revoked", "session.renewed", "session.refresh_reuse"):
            with self.subTest(etype):
                self.store()
                self.s.event(self.gen, etype, json.dumps({"session_id": "ses_a", "subject": "alice"}), "2")
                self.assertIsNone(self.s.lookup(b"k")[0])
        self.store(b"a", Verified(_session("ses_a"), "c", 60))
        self.store(b"b", Verified(_session("ses_b"), "c", 60))
        self.store(b"c", Verified(_session("ses_c", "bob"), "c", 60))
        self.s.event(self.gen, "subject.revoked", json.dumps({"subject": "alice", "except": "ses_b"}), "3")
        self.assertIsNone(self.s.lookup(b"a")[0])
        self.assertIsNotNone(self.s.lookup(b"b")[0])
        self.assertIsNotNone(self.s.lookup(b"c")[0])
        self.s.event(self.gen, "reset", json.dumps({"reason": "failover"}), "4")
        self.assertIsNone(self.s.lookup(b"b")[0])
        self.assertIsNone(self.s.lookup(b"c")[0])
        self.assertEqual(self.s.last_id, "4")

    def test_events_of_an_old_connection_are_ignored(self) -> None:
        old = self.gen
        self.gen = self.s.connected()
        self.s.heard(self.gen)
        self.store()
        self.s.event(old, "reset", "{}", "9")
        self.assertIsNotNone(self.s.lookup(b"k")[0])

    def test_access_verdicts(self) -> None:
        at = datetime(2026, 12, 1, 13, 0, 0, 500000, tzinfo=timezone.utc)
        iso = at.isoformat().replace("+00:00", "Z")
        self.s.event(self.gen, "session.renewed", json.dumps({"session_id": "ses_r", "subject": "u", "at": iso}), "5")
        self.assertEqual(self.s.access_verdict("ses_r", "u", at.timestamp() - 5), "revoked")
        self.assertEqual(self.s.access_verdict("ses_r", "u", int(at.timestamp())), "ask")  # the same second
        self.assertEqual(self.s.access_verdict("ses_r", "u", at.timestamp() + 5), "ok")
        self.s.event(self.gen, "subject.revoked", json.dumps({"subject": "v", "except": "ses_keep", "at": iso}), "6")
        self.assertEqual(self.s.access_verdict("ses_x", "v", at.timestamp() - 5), "revoked")
        self.assertEqual(self.s.access_verdict("ses_keep", "v", at.timestamp() - 5), "ok")
        self.assertEqual(self.s.access_verdict("ses_y", "w", None), "ask")

    def test_live_only_from_a_heartbeat_and_counted_from_the_replicas_proof(self) -> None:
        s = lc._State(0.25, 100, 600, monotonic=self.clock)
        g = s.connected()
        self.assertFalse(s.live(), "live before any heartbeat")
        s.heard(g, 0.3)  # the replica proved its store link 300 ms ago: older than our bound
        self.assertFalse(s.live())
        s.heard(g, 0.2)
        self.assertTrue(s.live())
        self.clock.t += 0.06  # 260 ms after the proof, 60 ms after the heartbeat
        self.assertFalse(s.live(), "the bound counts from the proof, not from the heartbeat")
        s.heard(g, 0.0)
        s.heard(g, 0.2)  # an older proof arriving later never moves the newest back
        self.clock.t += 0.2
        self.assertTrue(s.live())

    def test_sse_parser(self) -> None:
        p = lc._SSE()
        lines = [b"retry: 1000\n", b"\n", b": hb\n", b"\n", b"id: 7-0\n", b"event: session.revoked\n",
                 b'data: {"session_id":"ses_a"}\n', b"\n"]
        out = [e for e in (p.line(x) for x in lines) if e]
        self.assertEqual(out, [("session.revoked", '{"session_id":"ses_a"}', "7-0")])
        self.assertEqual(p.line(b": hb 40\n"), 0.04)
        for proves_nothing in (b": hb\n", b": hb -1\n", b": hb 1e3\n", b": other\n", b": hb 9999999999\n"):
            self.assertIsNone(p.line(proves_nothing), proves_nothing)
        self.assertEqual(p.retry, 1000)

    def test_bounded_size(self) -> None:
        s = lc._State(0.25, 2, 600, monotonic=self.clock)
        g = s.connected()
        s.heard(g)
        for k in (b"1", b"2", b"3"):
            _, t = s.lookup(k)
            s.store(k, self.v, t, self.clock.t)
        self.assertEqual(len(s.entries), 2)
        self.assertIsNone(s.lookup(b"1")[0])


def _events_available(srv: support.Server) -> bool:
    req = urllib.request.Request(srv.url + "/v1/events", headers={"Authorization": "Bearer " + srv.api_key})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait(cond, limit=5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


class _LiveServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.need_latch()
        cls.srv = support.Server("--touch-interval", "30s")
        if not _events_available(cls.srv):
            cls.srv.close()
            raise unittest.SkipTest("this latch serve has no GET /v1/events yet (issue 10)")
        cls.api = ls.Client(cls.srv.url, cls.srv.api_key)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.api.close()
        cls.srv.close()

    def setUp(self) -> None:
        self.logs = support.LogCapture().__enter__()
        self.addCleanup(lambda: (self.logs.__exit__(), support.assert_no_token(self, "\n".join(self.logs.lines))))

    def create(self, subject="alice") -> ls.Issued:
        iss = self.api.create_session(subject)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        return iss


class CacheTest(_LiveServer):
    def setUp(self) -> None:
        super().setUp()
        self.client = ls.Client(self.srv.url, self.srv.api_key)
        self.cache = lc.Cache(self.client).start()
        self.addCleanup(self.client.close)
        self.addCleanup(self.cache.close)
        self.assertTrue(wait(self.cache.live), "the event stream never became live")

    def test_hits_then_sees_a_revocation(self) -> None:
        iss = self.create()
        v1 = self.cache.verify_session(iss.session_token)
        self.assertEqual(self.cache.state.misses, 1)
        v2 = self.cache.verify_session(iss.session_token)
        self.assertEqual(self.cache.state.hits, 1)
        self.assertEqual(v2.session.id, v1.session.id)
        self.assertEqual(v2.csrf_token, v1.csrf_token)
        self.assertNotIn(iss.session_token.encode(), b"".join(self.cache.state.entries.keys()))
        self.api.revoke_session(iss.session.id)  # through another client: only the stream tells the cache

        def refused() -> bool:
            try:
                self.cache.verify_session(iss.session_token)
            except ls.Revoked:
                return True
            return False
        self.assertTrue(wait(refused, 2.0), "the cache kept accepting a revoked session")
        with self.assertRaises(ls.Revoked):  # and keeps refusing: a failure is never cached as a success
            self.cache.verify_session(iss.session_token)

    def test_renew_and_subject_revocation(self) -> None:
        a, b = self.create("erin"), self.create("erin")
        for t in (a.session_token, b.session_token):
            self.cache.verify_session(t)
        r = self.api.renew_session(a.session.id)
        support.remember(r.session_token)
        self.assertTrue(wait(lambda: _fails(self.cache, a.session_token), 2.0))
        self.cache.verify_session(r.session_token)
        self.api.revoke_subject("erin", except_session=a.session.id)
        self.assertTrue(wait(lambda: _fails(self.cache, b.session_token), 2.0))
        self.assertEqual(self.cache.verify_session(r.session_token).session.id, a.session.id)

    def test_failures_are_not_cached(self) -> None:
        for _ in range(2):
            with self.assertRaises(ls.InvalidToken):
                self.cache.verify_session("lts_garbage")
        self.assertEqual(self.cache.state.hits, 0)

    def test_stopped_latch_fails_closed(self) -> None:
        srv = support.Server()
        self.addCleanup(srv.close)
        c = ls.Client(srv.url, srv.api_key, timeout=1)
        self.addCleanup(c.close)
        cache = lc.Cache(c).start()
        self.addCleanup(cache.close)
        self.assertTrue(wait(cache.live))
        iss = c.create_session("alice")
        support.remember(iss.session_token)
        cache.verify_session(iss.session_token)
        cache.verify_session(iss.session_token)
        self.assertEqual(cache.state.hits, 1)
        srv.stop()
        self.assertTrue(wait(lambda: not cache.live(), 2.0))
        with self.assertRaises(ls.UnavailableError):
            cache.verify_session(iss.session_token)
        self.assertEqual(cache.state.entries, {})


def _fails(cache, tok) -> bool:
    try:
        cache.verify_session(tok)
    except ls.InvalidCredential:
        return True
    return False


class AsyncCacheTest(_LiveServer):
    def test_hits_then_sees_a_revocation(self) -> None:
        async def run() -> None:
            async with ls.AsyncClient(self.srv.url, self.srv.api_key) as c:
                cache = lc.AsyncCache(c)
                iss = self.create()
                await cache.verify_session(iss.session_token)  # starts the stream; online
                for _ in range(500):
                    if cache.live():
                        break
                    await asyncio.sleep(0.01)
                self.assertTrue(cache.live())
                await cache.verify_session(iss.session_token)
                await cache.verify_session(iss.session_token)
                self.assertGreaterEqual(cache.state.hits, 1)
                self.api.revoke_session(iss.session.id)
                for _ in range(200):
                    try:
                        await cache.verify_session(iss.session_token)
                    except ls.Revoked:
                        break
                    await asyncio.sleep(0.01)
                else:
                    self.fail("the async cache kept accepting a revoked session")
                await cache.aclose()
        asyncio.run(run())


class FlaskCachedTest(_LiveServer):
    def test_cached_app_sees_a_revocation(self) -> None:
        support.need("flask", "python3-flask")
        from .test_flask import make_app
        c = ls.Client(self.srv.url, self.srv.api_key)
        self.addCleanup(c.close)
        app = make_app(c)
        app.config["LATCH_CACHE"] = True
        import flask
        from latch_sessions.flask import Latch
        app2 = flask.Flask("cached")
        app2.view_functions.update(app.view_functions)
        app2.url_map = app.url_map
        app2.config["LATCH_BEARER"] = "online"
        Latch(app2, client=c)
        core = app2.extensions["latch"]
        self.addCleanup(core.cache.close)
        b = harness.Browser(harness.wsgi_caller(app2))
        self.assertEqual(b.login("alice").status, 200)
        self.assertEqual(b.get("/me").status, 200)  # starts the stream
        self.assertTrue(wait(core.cache.live))
        b.get("/me")
        self.assertEqual(b.get("/me").status, 200)
        self.assertGreaterEqual(core.cache.state.hits, 1)
        tok = b.form_token()
        self.assertEqual(b.post("/action", form={"csrf_token": tok}).status, 200)  # CSRF against the cached key
        self.assertEqual(b.post("/action", form={"csrf_token": harness.csrf.mask(bytes(32))}).status, 403)
        sid = json.loads(b.get("/me").body)["session_id"]
        self.api.revoke_session(sid)
        self.assertTrue(wait(lambda: b.get("/me").status == 401, 2.0))


class StarletteCachedTest(_LiveServer):
    def test_cached_app_sees_a_revocation(self) -> None:
        support.need("starlette", "python3-starlette")
        import threading
        from .test_asgi import starlette_app
        loop = asyncio.new_event_loop()
        t = threading.Thread(target=loop.run_forever, daemon=True)
        t.start()
        self.addCleanup(lambda: (loop.call_soon_threadsafe(loop.stop), t.join(5), loop.close()))
        c = ls.AsyncClient(self.srv.url, self.srv.api_key)
        app = starlette_app(c)
        from latch_sessions.asgi import LatchMiddleware
        from starlette.applications import Starlette
        cached = Starlette(routes=app.routes)
        cached.add_middleware(LatchMiddleware, client=c, bearer="online")  # cache on: the default
        b = harness.Browser(harness.asgi_caller(cached, loop))
        self.assertEqual(b.login("alice").status, 200)
        self.assertEqual(b.get("/me").status, 200)  # starts the stream's task
        mw = cached.middleware_stack
        while not isinstance(mw, LatchMiddleware):
            mw = mw.app
        cache = mw.core.cache
        self.assertIsInstance(cache, lc.AsyncCache)
        self.assertTrue(wait(cache.live), "the event stream never became live")
        b.get("/me")
        self.assertEqual(b.get("/me").status, 200)
        self.assertGreaterEqual(cache.state.hits, 1)
        self.assertEqual(b.post("/action", form={"csrf_token": b.form_token()}).status, 200)
        sid = json.loads(b.get("/me").body)["session_id"]
        self.api.revoke_session(sid)
        self.assertTrue(wait(lambda: b.get("/me").status == 401, 2.0))
        asyncio.run_coroutine_threadsafe(cache.aclose(), loop).result(5)
        asyncio.run_coroutine_threadsafe(c.aclose(), loop).result(5)


class DjangoCachedTest(_LiveServer):
    def test_cached_app_sees_a_revocation(self) -> None:
        support.need("django", "python3-django")
        from . import test_django
        test_django.setUpModule()
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        old = settings.LATCH
        settings.LATCH = {"URL": self.srv.url, "API_KEY": self.srv.api_key}  # cache on: the default
        try:
            handler = WSGIHandler()
        finally:
            settings.LATCH = old
        b = harness.Browser(harness.wsgi_caller(handler))
        self.assertEqual(b.login("alice").status, 200)
        self.assertEqual(b.get("/me").status, 200)

        def stats() -> dict:
            return json.loads(b.get("/cache").body)
        self.assertTrue(wait(lambda: stats()["live"]))
        b.get("/me")
        self.assertEqual(b.get("/me").status, 200)
        self.assertGreaterEqual(stats()["hits"], 1)
        sid = json.loads(b.get("/me").body)["session_id"]
        self.api.revoke_session(sid)
        self.assertTrue(wait(lambda: b.get("/me").status == 401, 2.0))
        stats_close = b.get("/cache?close=1")
        self.assertEqual(stats_close.status, 200)


class OfflineTest(_LiveServer):
    def setUp(self) -> None:
        super().setUp()
        support.need("jwt", "python3-jwt")
        from latch_sessions.jwt import OfflineVerifier
        self.client = ls.Client(self.srv.url, self.srv.api_key)
        self.addCleanup(self.client.close)
        self.cache = lc.Cache(self.client).start()
        self.addCleanup(self.cache.close)
        self.v = OfflineVerifier(self.client, cache=self.cache)
        self.assertTrue(wait(self.cache.live))

    def test_verifies_and_refuses(self) -> None:
        import jwt
        iss = self.create("frank")
        claims, ask = self.v.check(iss.access_token)
        self.assertEqual((claims["sub"], claims["sid"]), ("frank", iss.session.id))
        self.assertIn(ask, (False, True))
        # Tampering: payload, typ, alg none, another audience or issuer.
        h, p, s = iss.access_token.split(".")
        bad = [h + "." + p[:-2] + ("AA" if p[-2:] != "AA" else "BB") + "." + s,
               jwt.encode({"sub": "x"}, None, algorithm="none"),
               "x" * 9000]
        for t in bad:
            with self.assertRaises(ls.InvalidCredential):
                self.v.verify(t)
        from latch_sessions.jwt import OfflineVerifier
        for kw in ({"audience": "other"}, {"issuer": "https://evil.example"}):
            with self.assertRaises(ls.InvalidToken):
                OfflineVerifier(self.client, **kw).verify(iss.access_token)
        # Revoked: refused from the stream before exp, without asking latch.
        self.api.revoke_session(iss.session.id)

        def refused() -> bool:
            try:
                self.v.check(iss.access_token)
            except ls.InvalidToken:
                return True
            return False
        self.assertTrue(wait(refused, 2.0))

    def test_algorithm_confusion_and_typ(self) -> None:
        import base64
        import jwt
        iss = self.create("judy")
        header = json.loads(base64.urlsafe_b64decode(iss.access_token.split(".")[0] + "=="))
        claims = self.v.verify(iss.access_token)
        jwk = next(k for k in self.api.jwks()["keys"] if k["kid"] == header["kid"])
        public = json.dumps(jwk).encode()
        # HS256 "signed" with the public key, under a valid kid: refused (the algorithm is the key's).
        forged = jwt.encode(claims, public, algorithm="HS256", headers={"kid": header["kid"], "typ": "at+jwt"})
        with self.assertRaises(ls.InvalidToken):
            self.v.verify(forged)
        # The right signature is not enough without typ at+jwt (an ID token, say): re-encode the
        # header only, which breaks the signature too; either way it must be refused.
        for typ in ("JWT", None):
            h = dict(header, typ=typ) if typ else {k: v for k, v in header.items() if k != "typ"}
            hb = base64.urlsafe_b64encode(json.dumps(h).encode()).rstrip(b"=").decode()
            with self.assertRaises(ls.InvalidToken):
                self.v.verify(hb + "." + iss.access_token.split(".", 1)[1])
        with self.assertRaises(ls.InvalidToken):  # an unknown kid, after one refetch
            self.v.verify(jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "nope", "typ": "at+jwt"}))

    def test_es256_and_rs256(self) -> None:
        from latch_sessions.jwt import OfflineVerifier
        for alg in ("ES256", "RS256"):
            with self.subTest(alg):
                srv = support.Server("--signing-alg", alg)
                self.addCleanup(srv.close)
                with ls.Client(srv.url, srv.api_key) as c:
                    iss = c.create_session("kim")
                    support.remember(iss.session_token, iss.access_token, iss.refresh_token)
                    self.assertEqual(json.loads(__import__("base64").urlsafe_b64decode(
                        iss.access_token.split(".")[0] + "=="))["alg"], alg)
                    self.assertEqual(OfflineVerifier(c).verify(iss.access_token)["sub"], "kim")

    def test_new_key_after_rotation(self) -> None:
        self.create("gina")
        self.api.rotate_keys()
        iss = self.create("gina")
        self.assertEqual(self.v.verify(iss.access_token)["sub"], "gina")

    def test_stream_down_asks_online(self) -> None:
        iss = self.create("hank")
        self.cache.close()
        self.assertTrue(wait(lambda: not self.cache.live(), 2.0))
        claims, ask = self.v.check(iss.access_token)
        self.assertTrue(ask)



class _GatedJWKS:
    """An HTTP proxy to latch that holds each JWKS answer until release is set (at most 20 s):
    a slow JWKS endpoint the test controls."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading
        self.release = threading.Event()
        self.holding = threading.Event()
        self.jwks_fetches = 0
        self.released_by_event: bool | None = None
        gate = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                with urllib.request.urlopen(upstream + self.path, timeout=10) as r:
                    body, ctype = r.read(), r.headers.get("Content-Type", "application/json")
                if self.path.startswith("/.well-known/jwks.json"):
                    gate.jwks_fetches += 1
                    gate.holding.set()
                    gate.released_by_event = gate.release.wait(20)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class AsyncOfflineTest(_LiveServer):
    def test_jwks_fetch_does_not_block_the_event_loop(self) -> None:
        support.need("jwt", "python3-jwt")
        from latch_sessions.jwt import AsyncOfflineVerifier
        tokens = [self.create("lena").access_token for _ in range(5)]
        gate = _GatedJWKS(self.srv.url)
        self.addCleanup(gate.close)

        async def main() -> list:
            client = ls.AsyncClient(gate.url, self.srv.api_key, timeout=30)
            v = AsyncOfflineVerifier(client)

            async def other_request() -> None:
                # Runs only if the loop is free while the verifications wait for the JWKS: it is
                # what lets the JWKS through, so a blocked loop would leave them waiting 20 s.
                while not gate.holding.is_set():
                    await asyncio.sleep(0.005)
                gate.release.set()
            other = asyncio.ensure_future(other_request())
            claims = await asyncio.gather(*(v.verify(t) for t in tokens))
            await other
            await v.aclose()
            await client.aclose()
            return claims
        claims = asyncio.run(main())
        self.assertEqual([c["sub"] for c in claims], ["lena"] * 5)
        self.assertIs(gate.released_by_event, True)  # released by the concurrent task, not by the 20 s limit
        self.assertEqual(gate.jwks_fetches, 1)  # five verifications, one fetch

    def test_asgi_offline_bearer(self) -> None:
        support.need("jwt", "python3-jwt")
        support.need("starlette", "python3-starlette")
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from latch_sessions.asgi import LatchMiddleware, login_required

        @login_required
        async def me(request):
            return PlainTextResponse(request.state.latch.subject)
        iss = self.create("lena")
        gate = _GatedJWKS(self.srv.url)
        self.addCleanup(gate.close)
        gate.release.set()
        app = Starlette(routes=[Route("/me", me)])
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        client = ls.AsyncClient(gate.url, self.srv.api_key)
        app.add_middleware(LatchMiddleware, client=client, bearer="offline", cache=False)
        call = harness.asgi_caller(app, loop)
        for _ in range(3):
            r = call("GET", "/me", {"Host": harness.HOST, "Authorization": "Bearer " + iss.access_token}, None)
            self.assertEqual((r.status, r.text), (200, "lena"))
        self.assertEqual(gate.jwks_fetches, 1)
        r = call("GET", "/me", {"Host": harness.HOST, "Authorization": "Bearer " + iss.access_token[:-4] + "AAAA"}, None)
        self.assertEqual(r.status, 401)
        loop.run_until_complete(client.aclose())


if __name__ == "__main__":
    unittest.main()
