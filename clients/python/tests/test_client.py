"""The client against a real latch serve: every call, every error code the
API can produce through it, timeouts, fail-closed, and no token anywhere in
exceptions, reprs or log records."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import unittest
from datetime import datetime, timedelta, timezone

import latch_sessions as ls
from latch_sessions import _client
from latch_sessions import csrf

from . import support


def setUpModule() -> None:
    support.need_latch()


class TimestampTest(unittest.TestCase):
    def test_latch_forms(self) -> None:
        cases = {
            "2026-12-01T13:00:00Z": datetime(2026, 12, 1, 13, 0, 0, tzinfo=timezone.utc),
            "2026-12-01T13:00:00.1Z": datetime(2026, 12, 1, 13, 0, 0, 100000, tzinfo=timezone.utc),
            "2026-12-01T13:00:00.123456789Z": datetime(2026, 12, 1, 13, 0, 0, 123456, tzinfo=timezone.utc),
            "2026-12-01T14:30:00.5+01:30": datetime(2026, 12, 1, 13, 0, 0, 500000, tzinfo=timezone.utc),
            "2026-12-01t08:00:00-05:00": datetime(2026, 12, 1, 13, 0, 0, tzinfo=timezone.utc),
            "2016-12-31T23:59:60Z": datetime(2017, 1, 1, 0, 0, 0, tzinfo=timezone.utc),
        }
        for s, want in cases.items():
            with self.subTest(s):
                got = ls.parse_time(s)
                self.assertEqual(got, want)
                self.assertEqual(got.utcoffset(), timedelta(0))

    def test_refuses_non_rfc3339(self) -> None:
        for s in ["", "2026-12-01", "2026-12-01T13:00:00", "2026-12-01 13:00:00Z", "2026-13-01T00:00:00Z",
                  "2026-12-01T13:00:00.1234567890Z", "2026-12-01T13:00:00+0100", "１２０２６-12-01T13:00:00Z"]:
            with self.subTest(s):
                with self.assertRaises(ls.ProtocolError):
                    ls.parse_time(s)

    def test_format_round_trips(self) -> None:
        t = datetime(2026, 12, 1, 13, 0, 0, 123000, tzinfo=timezone.utc)
        self.assertEqual(ls.format_time(t), "2026-12-01T13:00:00.123000Z")
        self.assertEqual(ls.parse_time(ls.format_time(t)), t)
        with self.assertRaises(ValueError):
            ls.format_time(datetime(2026, 12, 1))


class ProblemMappingTest(unittest.TestCase):
    def test_every_code_has_its_class(self) -> None:
        cases = [
            (400, "bad_request", ls.BadRequest), (401, "unauthorized", ls.Unauthorized),
            (401, "invalid_token", ls.InvalidToken), (401, "expired", ls.Expired), (401, "revoked", ls.Revoked),
            (401, "refresh_reuse", ls.RefreshReuse), (401, "invalid_dpop_proof", ls.InvalidDPoPProof),
            (401, "use_dpop_nonce", ls.UseDPoPNonce),
            (401, "insufficient_user_authentication", ls.InsufficientUserAuthentication),
            (403, "csrf", ls.CSRFRejected), (404, "not_found", ls.NotFound), (409, "conflict", ls.Conflict),
            (412, "conflict", ls.Conflict), (413, "too_large", ls.TooLarge),
            (405, "method_not_allowed", ls.MethodNotAllowed), (415, "unsupported_media_type", ls.UnsupportedMediaType),
            (429, "rate_limited", ls.RateLimited), (503, "store_unavailable", ls.StoreUnavailable),
            (500, "internal", ls.InternalError),
        ]
        for status, code, cls in cases:
            with self.subTest(code):
                e = ls.problem_error(status, {"code": code, "title": "t", "detail": "d", "status": status})
                self.assertIs(type(e), cls)
                self.assertEqual((e.status, e.code), (status, code))
                self.assertIsInstance(e, ls.ProblemError)
                self.assertIsInstance(e, ls.LatchError)
        self.assertIsInstance(ls.problem_error(503, {"code": "store_unavailable"}), ls.UnavailableError)
        for c in ("invalid_token", "expired", "revoked", "refresh_reuse"):
            self.assertIsInstance(ls.problem_error(401, {"code": c}), ls.InvalidCredential)

    def test_unknown_or_missing_codes_follow_the_status(self) -> None:
        self.assertIsInstance(ls.problem_error(401, {"code": "something_new"}), ls.InvalidCredential)
        self.assertIsInstance(ls.problem_error(502, None), ls.UnavailableError)
        self.assertIsInstance(ls.problem_error(418, None), ls.InternalError)
        self.assertEqual(ls.problem_error(429, {"code": "rate_limited"}, 7).retry_after, 7)

    def test_messages_redact_tokens(self) -> None:
        e = ls.problem_error(401, {"code": "invalid_token",
                                   "detail": "token lts_AAAAAAAAAAAAAAAAAAAA and eyJhbGciOi.eyJzdWIi.c2ln, Bearer abc"})
        for s in (str(e), e.detail, repr(e)):
            self.assertNotIn("lts_AAAA", s)
            self.assertNotIn("eyJhbGciOi", s)
            self.assertNotIn("abc", s)


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.c = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.c.close)
        self.logs = support.LogCapture().__enter__()
        self.addCleanup(self._no_token_logged)

    def _no_token_logged(self) -> None:
        self.logs.__exit__()
        support.assert_no_token(self, "\n".join(self.logs.lines))

    def create(self, subject: str = "alice", **kw) -> ls.Issued:
        iss = self.c.create_session(subject, **kw)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        return iss

    def test_create_and_verify(self) -> None:
        iss = self.create("alice", data={"cart": 3}, claims={"role": "admin"}, ip="203.0.113.9", user_agent="test/1")
        self.assertTrue(iss.session_token.startswith("lts_"))
        self.assertTrue(iss.refresh_token.startswith("ltr_"))
        self.assertEqual(iss.access_token.count("."), 2)
        self.assertEqual(iss.token_type, "Bearer")
        self.assertGreater(iss.expires_in, 0)
        s = iss.session
        self.assertTrue(s.id.startswith("ses_"))
        self.assertEqual((s.subject, s.ip, s.user_agent), ("alice", "203.0.113.9", "test/1"))
        self.assertEqual(s.data, {"cart": 3})
        self.assertEqual(s.claims, {"role": "admin"})
        self.assertLess(s.created_at, s.idle_expires_at)
        self.assertLessEqual(s.idle_expires_at, s.expires_at)
        self.assertEqual(s.created_at.tzinfo, timezone.utc)
        for text in (repr(iss), str(iss)):
            support.assert_no_token(self, text, [iss.session_token, iss.refresh_token, iss.access_token])

        v = self.c.verify_session(iss.session_token, ip="203.0.113.10", user_agent="test/2")
        self.assertEqual(v.session.id, s.id)
        self.assertEqual(v.session.subject, "alice")
        support.assert_no_token(self, repr(v), [iss.session_token])

        a = self.c.verify_access_token(iss.access_token)
        self.assertEqual(a.session.id, s.id)

    def test_verify_answers_the_csrf_token(self) -> None:
        iss = self.create()
        v = self.c.verify_session(iss.session_token)
        self.assertIsNotNone(v.csrf_token, "verify must answer csrf_token for a session token (docs/protocol.md §2)")
        k = csrf.unmask(v.csrf_token)
        self.assertIsNotNone(k)
        # Another verify masks the same key differently.
        v2 = self.c.verify_session(iss.session_token)
        self.assertNotEqual(v.csrf_token, v2.csrf_token)
        self.assertEqual(csrf.unmask(v2.csrf_token), k)
        # Another session has another key.
        other = self.c.verify_session(self.create().session_token)
        self.assertNotEqual(csrf.unmask(other.csrf_token), k)

    def test_invalid_tokens(self) -> None:
        for tok in ["lts_garbage", "x", "ltr_" + "A" * 64, "lts_" + "A" * 64]:
            with self.subTest(tok):
                with self.assertRaises(ls.InvalidToken) as cm:
                    self.c.verify_session(tok)
                self.assertEqual((cm.exception.status, cm.exception.code), (401, "invalid_token"))
                self.assertNotIn(tok, str(cm.exception))
        iss = self.create()
        # A refresh token is never a session token, and the reverse.
        with self.assertRaises(ls.InvalidToken):
            self.c.verify_session(iss.refresh_token)
        with self.assertRaises(ls.InvalidToken):
            self.c.verify_access_token(iss.session_token)
        with self.assertRaises(ls.InvalidCredential) as cm:
            self.c.refresh(iss.session_token)
        support.assert_no_token(self, str(cm.exception), [iss.session_token])

    def test_get_patch_if_match(self) -> None:
        iss = self.create(data={"a": 1, "b": 2})
        s = self.c.get_session(iss.session.id)
        self.assertEqual(s.data, {"a": 1, "b": 2})
        p = self.c.patch_session(s.id, {"b": None, "c": {"d": True}}, if_match=s.version)
        self.assertEqual(p.data, {"a": 1, "c": {"d": True}})
        self.assertGreater(p.version, s.version)
        with self.assertRaises(ls.Conflict) as cm:
            self.c.patch_session(s.id, {"a": 9}, if_match=s.version)
        self.assertEqual((cm.exception.status, cm.exception.code), (412, "conflict"))
        self.assertEqual(self.c.patch_session(s.id, {"a": 9}, if_match=p.etag).data["a"], 9)
        self.assertEqual(self.c.patch_session(s.id, {"e": 1}).data["e"], 1)

    def test_not_found(self) -> None:
        iss = self.create()
        self.c.revoke_session(iss.session.id)
        with self.assertRaises(ls.NotFound) as cm:
            self.c.get_session(iss.session.id)
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        with self.assertRaises(ls.NotFound):
            self.c.patch_session(iss.session.id, {"a": 1})
        with self.assertRaises(ValueError):
            self.c.get_session("../v1/keys")

    def test_revoke(self) -> None:
        iss = self.create()
        self.c.revoke_session(iss.session.id)
        self.c.revoke_session(iss.session.id)  # already gone: still fine
        with self.assertRaises(ls.Revoked) as cm:
            self.c.verify_session(iss.session_token)
        self.assertEqual(cm.exception.code, "revoked")
        with self.assertRaises(ls.InvalidCredential):
            self.c.verify_access_token(iss.access_token)
        with self.assertRaises(ls.InvalidCredential):
            self.c.refresh(iss.refresh_token)

    def test_renew(self) -> None:
        iss = self.create(claims={"role": "user"})
        r = self.c.renew_session(iss.session.id, claims={"role": "admin"},
                                 auth_time=datetime.now(timezone.utc))
        support.remember(r.session_token, r.refresh_token, r.access_token)
        self.assertEqual(r.session.id, iss.session.id)
        self.assertNotEqual(r.session_token, iss.session_token)
        self.assertEqual(r.session.claims, {"role": "admin"})
        with self.assertRaises(ls.InvalidCredential):
            self.c.verify_session(iss.session_token)
        with self.assertRaises(ls.InvalidCredential):
            self.c.refresh(iss.refresh_token)
        self.assertEqual(self.c.verify_session(r.session_token).session.id, iss.session.id)

    def test_fixation_replace(self) -> None:
        planted = self.create("mallory")
        iss = self.create("alice", replace_session_token=planted.session_token)
        with self.assertRaises(ls.InvalidCredential):
            self.c.verify_session(planted.session_token)
        self.assertEqual(self.c.verify_session(iss.session_token).session.subject, "alice")

    def test_list_and_revoke_subject(self) -> None:
        subject = "user/" + os.urandom(4).hex() + " é"  # needs percent-encoding
        a, b, c = self.create(subject), self.create(subject), self.create(subject)
        ids = {s.id for s in self.c.list_sessions(subject)}
        self.assertEqual(ids, {a.session.id, b.session.id, c.session.id})
        self.assertEqual(self.c.revoke_subject(subject, except_session=b.session.id), 2)
        self.assertEqual([s.id for s in self.c.list_sessions(subject)], [b.session.id])
        with self.assertRaises(ls.Revoked):
            self.c.verify_session(a.session_token)
        self.assertEqual(self.c.revoke_subject(subject), 1)
        self.assertEqual(self.c.list_sessions(subject), [])
        with self.assertRaises(ValueError):
            self.c.list_sessions("")

    def test_refresh_rotates(self) -> None:
        iss = self.create()
        r1 = self.c.refresh(iss.refresh_token)
        support.remember(r1.access_token, r1.refresh_token)
        self.assertNotEqual(r1.refresh_token, iss.refresh_token)
        support.assert_no_token(self, repr(r1), [r1.access_token, r1.refresh_token])
        self.assertEqual(self.c.verify_access_token(r1.access_token).session.id, iss.session.id)
        # Within the grace window the same parent yields the same successor.
        self.assertEqual(self.c.refresh(iss.refresh_token).refresh_token, r1.refresh_token)
        r2 = self.c.refresh(r1.refresh_token)
        support.remember(r2.access_token, r2.refresh_token)
        self.assertNotEqual(r2.refresh_token, r1.refresh_token)

    def test_whoami_and_logout_as_the_user(self) -> None:
        iss = self.create("erin")
        s = self.c.whoami(iss.access_token)
        self.assertEqual((s.id, s.subject), (iss.session.id, "erin"))
        for bad in ("not.a.token", iss.session_token, iss.refresh_token):
            with self.subTest(bad=bad[:4]), self.assertRaises(ls.InvalidCredential) as cm:
                self.c.whoami(bad)
            support.assert_no_token(self, str(cm.exception) + repr(cm.exception), [bad])
        with self.assertRaises(ValueError):
            self.c.whoami("a b")
        self.c.logout(iss.access_token)
        with self.assertRaises(ls.Revoked):
            self.c.verify_session(iss.session_token)
        with self.assertRaises(ls.InvalidCredential):
            self.c.whoami(iss.access_token)
        with self.assertRaises(ls.InvalidCredential):
            self.c.refresh(iss.refresh_token)

    def test_step_up(self) -> None:
        signed_in = datetime.now(timezone.utc) - timedelta(minutes=10)
        iss = self.create("frank", acr="pwd", amr=["pwd"], auth_time=signed_in)
        self.assertEqual((iss.session.acr, iss.session.amr), ("pwd", ("pwd",)))
        self.assertLess(abs((iss.session.auth_time - signed_in).total_seconds()), 1)
        # Recent and strong enough: ok, for both credentials.
        self.assertEqual(self.c.verify_session(iss.session_token, max_age=3600).session.id, iss.session.id)
        self.assertEqual(self.c.verify_access_token(iss.access_token, acr_values=["pwd", "mfa"]).session.id,
                         iss.session.id)
        # Too old, and too weak: the RFC 9470 challenge, parsed.
        before = self.c.get_session(iss.session.id)
        with self.assertRaises(ls.InsufficientUserAuthentication) as cm:
            self.c.verify_session(iss.session_token, max_age=300)
        e = cm.exception
        self.assertEqual((e.status, e.code, e.max_age, e.acr_values), (401, "insufficient_user_authentication", 300, None))
        self.assertTrue(e.www_authenticate.startswith('Bearer error="insufficient_user_authentication"'))
        self.assertIsInstance(e, ls.InvalidCredential)
        with self.assertRaises(ls.InsufficientUserAuthentication) as cm:
            self.c.verify_access_token(iss.access_token, max_age=60, acr_values="mfa")
        self.assertEqual((cm.exception.max_age, cm.exception.acr_values), (60, ("mfa",)))
        # A refusal changes nothing.
        self.assertEqual(self.c.get_session(iss.session.id).version, before.version)
        # The user signs in again with a second factor: renew records it, and the demand is met.
        r = self.c.renew_session(iss.session.id, acr="mfa", amr=["pwd", "otp"])
        support.remember(r.session_token, r.refresh_token, r.access_token)
        self.assertEqual((r.session.acr, r.session.amr), ("mfa", ("pwd", "otp")))
        self.assertGreater(r.session.auth_time, signed_in + timedelta(minutes=9))
        v = self.c.verify_access_token(r.access_token, max_age=60, acr_values=["mfa"])
        self.assertEqual(v.session.acr, "mfa")
        # Bad demands are refused by latch or before it.
        with self.assertRaises(ValueError):
            self.c.verify_session(r.session_token, max_age=0)
        with self.assertRaises(ValueError):
            self.c.verify_session(r.session_token, acr_values=[])
        with self.assertRaises(ls.BadRequest):
            self.c.verify_session(r.session_token, acr_values=['a"b'])
        with self.assertRaises(ls.BadRequest):
            self.create("frank", auth_time=datetime.now(timezone.utc) + timedelta(hours=1))

    def test_problem_state_survives_pickling(self) -> None:
        import pickle
        e = ls.problem_error(401, {"code": "use_dpop_nonce"}, None,
                             {"www-authenticate": 'DPoP error="use_dpop_nonce"', "dpop-nonce": "n1"})
        self.assertIsInstance(e, ls.InvalidDPoPProof)
        e2 = pickle.loads(pickle.dumps(e))
        self.assertEqual((type(e2), e2.nonce, e2.www_authenticate), (ls.UseDPoPNonce, "n1", 'DPoP error="use_dpop_nonce"'))

    def test_keys(self) -> None:
        before = self.c.list_keys()
        self.assertTrue(before)
        rot = self.c.rotate_keys()
        after = self.c.list_keys()
        self.assertIn(rot.kid, {k.kid for k in after})
        for k in after:
            self.assertIn(k.state, ("pending", "active", "retired", "revoked"))
            self.assertEqual(k.created_at.tzinfo, timezone.utc)
        jwks = self.c.jwks()
        self.assertIn(rot.kid, {k["kid"] for k in jwks["keys"]})
        for k in jwks["keys"]:
            self.assertNotIn("d", k)  # public keys only

    def test_bad_request_and_too_large(self) -> None:
        with self.assertRaises(ls.BadRequest) as cm:
            self.c.create_session("")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "bad_request"))
        with self.assertRaises(ls.BadRequest):
            self.c.create_session("alice", claims={"sub": "bob"})  # a reserved claim
        with self.assertRaises(ls.TooLarge) as cm:
            self.c.create_session("alice", data={"blob": "x" * (70 << 10)})
        self.assertEqual((cm.exception.status, cm.exception.code), (413, "too_large"))

    def test_wrong_api_key(self) -> None:
        with ls.Client(support.URL, "not-the-key-" + "x" * 32) as bad:
            with self.assertRaises(ls.Unauthorized) as cm:
                bad.create_session("alice")
            self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
            self.assertNotIn("not-the-key", str(cm.exception))
            self.assertNotIn("not-the-key", repr(bad))
            # refresh is a public call: a wrong key does not stop it, the token does.
            with self.assertRaises(ls.InvalidCredential):
                bad.refresh("ltr_nothing")

    def test_rate_limited(self) -> None:
        srv = support.Server("--rate-limit", "1", "--rate-burst", "1")
        self.addCleanup(srv.close)
        with ls.Client(srv.url, "not-the-key-" + "x" * 32) as anon:  # not the API key: limited like a browser
            with self.assertRaises(ls.InvalidCredential):
                anon.refresh("ltr_nothing")
            with self.assertRaises(ls.RateLimited) as cm:
                anon.refresh("ltr_nothing")
            self.assertEqual((cm.exception.status, cm.exception.code), (429, "rate_limited"))
            self.assertGreaterEqual(cm.exception.retry_after, 1)
        with ls.Client(srv.url, srv.api_key) as backend:  # the API key: never limited
            for _ in range(3):
                with self.assertRaises(ls.InvalidCredential):
                    backend.refresh("ltr_nothing")

    def test_method_and_media_type(self) -> None:
        with self.assertRaises(ls.MethodNotAllowed) as cm:
            self.c._send(_client._Call("PUT", "/v1/sessions", lambda r, d: d, {}))
        self.assertEqual((cm.exception.status, cm.exception.code), (405, "method_not_allowed"))
        call = _client._Call("POST", "/v1/sessions", lambda r, d: d, None, headers={"Content-Type": "text/plain"})
        with self.assertRaises(ls.UnsupportedMediaType) as cm:
            self.c._finish(call, self.c._t.request("POST", "/v1/sessions", {
                "Authorization": "Bearer " + support.API_KEY, "Content-Type": "text/plain"}, b"{}"))
        self.assertEqual((cm.exception.status, cm.exception.code), (415, "unsupported_media_type"))

    def test_revoke_key_and_metadata(self) -> None:
        meta = self.c.metadata()
        self.assertTrue(meta["issuer"])
        self.assertTrue(meta["jwks_uri"].endswith("/.well-known/jwks.json"))
        iss = self.create("ivan")
        kid = json.loads(__import__("base64").urlsafe_b64decode(iss.access_token.split(".")[0] + "=="))["kid"]
        new = self.c.revoke_key(kid)
        self.assertNotEqual(new.kid, kid)
        self.assertNotIn(kid, {k["kid"] for k in self.c.jwks()["keys"]})
        with self.assertRaises(ls.InvalidCredential):
            self.c.verify_access_token(iss.access_token)
        self.assertEqual(self.c.verify_session(iss.session_token).session.subject, "ivan")
        with self.assertRaises(ls.NotFound):
            self.c.revoke_key("no-such-kid")

    def test_connections_are_reused(self) -> None:
        self.c.ready()
        self.create()
        self.assertEqual(len(self.c._t._idle), 1)
        conn = self.c._t._idle[0]
        for _ in range(5):
            self.create()
        self.assertEqual(self.c._t._idle, [conn])

    def test_config_errors(self) -> None:
        for url in ["ftp://x", "http://", "http://u:p@host", "http://h/?q=1"]:
            with self.subTest(url):
                with self.assertRaises(ls.ConfigError):
                    ls.Client(url, "k" * 32)
        with self.assertRaises(ls.ConfigError):
            ls.Client(support.URL, "bad key\r\n")
        env = dict(os.environ)
        try:
            os.environ.pop("LATCH_API_KEY", None)
            with self.assertRaises(ls.ConfigError):
                ls.Client(support.URL)
        finally:
            os.environ.clear()
            os.environ.update(env)
        with ls.Client() as c:  # LATCH_URL and LATCH_API_KEY
            self.assertEqual(c.base_url, support.URL)


class FailClosedTest(unittest.TestCase):
    def test_latch_stopped(self) -> None:
        srv = support.Server()
        self.addCleanup(srv.close)
        c = ls.Client(srv.url, srv.api_key, timeout=2)
        self.addCleanup(c.close)
        iss = c.create_session("alice")
        support.remember(iss.session_token)
        srv.stop()
        with self.assertRaises(ls.ConnectError) as cm:
            c.verify_session(iss.session_token)
        self.assertIsInstance(cm.exception, ls.UnavailableError)
        support.assert_no_token(self, str(cm.exception), [iss.session_token])
        self.assertFalse(c.ready())

    def test_stalled_latch_times_out(self) -> None:
        silent = support.Silent()
        self.addCleanup(silent.close)
        c = ls.Client(silent.url, "k" * 43, timeout=0.3)
        self.addCleanup(c.close)
        with self.assertRaises(ls.Timeout) as cm:
            c.verify_session("lts_whatever")
        self.assertIsInstance(cm.exception, ls.UnavailableError)
        self.assertNotIn("lts_whatever", str(cm.exception))

        async def stalled() -> None:
            async with ls.AsyncClient(silent.url, "k" * 43, timeout=0.3) as ac:
                await ac.verify_session("lts_whatever")
        with self.assertRaises(ls.Timeout):
            asyncio.run(stalled())

    def test_store_down(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            support.skip_or_fail("redis-server is not installed (apt-get install redis-server)")
        port = support.free_port()
        rp = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (rp.kill(), rp.wait()))
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        import base64
        kek = base64.b64encode(os.urandom(32)).decode()
        srv = support.Server("--store", f"redis://127.0.0.1:{port}", env={"LATCH_KEK": kek})
        self.addCleanup(srv.close)
        c = ls.Client(srv.url, srv.api_key, timeout=10)
        self.addCleanup(c.close)
        iss = c.create_session("alice")
        support.remember(iss.session_token)
        rp.kill()
        rp.wait()
        with self.assertRaises(ls.StoreUnavailable) as cm:
            c.verify_session(iss.session_token)
        self.assertEqual((cm.exception.status, cm.exception.code), (503, "store_unavailable"))
        self.assertIsInstance(cm.exception, ls.UnavailableError)


class _Canned:
    """A TCP server that answers every connection with the same bytes, then closes it."""

    def __init__(self, answer: bytes) -> None:
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.recv(65536)
                c.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


class HTTPParsingTest(unittest.TestCase):
    """Answers that are not the HTTP latch speaks fail closed, sync and async alike."""

    ok_body = b'{"keys": []}'

    def call_both(self, answer: bytes):
        srv = _Canned(answer)
        self.addCleanup(srv.close)
        out = []
        with ls.Client(srv.url, "k" * 32, timeout=2) as c:
            try:
                out.append(c.list_keys())
            except ls.LatchError as e:
                out.append(e)

        async def go():
            async with ls.AsyncClient(srv.url, "k" * 32, timeout=2) as c:
                try:
                    return await c.list_keys()
                except ls.LatchError as e:
                    return e
        out.append(asyncio.run(go()))
        return out

    def test_good_answer(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(self.ok_body)
        for answer in (head + b"\r\n" + self.ok_body,
                       b"HTTP/1.1 100 Continue\r\n\r\n" + head + b"\r\n" + self.ok_body,
                       head.replace(b"Content-Length: 12", b"Connection: close") + b"\r\n" + self.ok_body):
            with self.subTest(answer=answer[:30]):
                self.assertEqual(self.call_both(answer), [[], []])

    def test_bad_answers_fail_closed(self) -> None:
        many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
        cases = {
            "not HTTP": b"SSH-2.0-OpenSSH\r\n\r\n",
            "bad status": b"HTTP/1.1 OK\r\n\r\n",
            "header without colon": b"HTTP/1.1 200 OK\r\nnonsense\r\n\r\n",
            "too many headers": b"HTTP/1.1 200 OK\r\n" + many + b"\r\n",
            "head too long": b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
            "truncated head": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            "truncated body": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{}",
            "closed at once": b"",
        }
        for name, answer in cases.items():
            with self.subTest(name):
                for got in self.call_both(answer):
                    self.assertIsInstance(got, ls.UnavailableError, (name, got))


class TLSTest(unittest.TestCase):
    def test_https_with_a_private_ca(self) -> None:
        import ssl
        import tempfile
        openssl = shutil.which("openssl")
        if openssl is None:
            support.skip_or_fail("openssl is not installed (apt-get install openssl)")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        srv = support.Server("--tls-cert", cert, "--tls-key", key, scheme="https")
        self.addCleanup(srv.close)
        ctx = ssl.create_default_context(cafile=cert)
        with ls.Client(srv.url, srv.api_key, ssl_context=ctx) as c:
            iss = c.create_session("alice")
            support.remember(iss.session_token)
            self.assertEqual(c.verify_session(iss.session_token).session.subject, "alice")
        with ls.Client(srv.url, srv.api_key) as untrusting:  # the system CAs do not know this certificate
            with self.assertRaises(ls.ConnectError):
                untrusting.list_keys()

        async def run() -> None:
            async with ls.AsyncClient(srv.url, srv.api_key, ssl_context=ctx) as ac:
                self.assertTrue(await ac.list_keys())
        asyncio.run(run())
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        with self.assertRaises(ls.ConfigError):
            ls.Client(srv.url, srv.api_key, ssl_context=loose)


class ExpiryAndReuseTest(unittest.TestCase):
    """A server with short deadlines: expired, refresh_reuse."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.srv = support.Server("--idle-timeout", "1s", "--refresh-grace", "1ms", "--touch-interval", "100ms")
        cls.c = ls.Client(cls.srv.url, cls.srv.api_key)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.c.close()
        cls.srv.close()

    def test_expired(self) -> None:
        iss = self.c.create_session("alice")
        support.remember(iss.session_token)
        time.sleep(1.5)  # past the 1 s idle deadline, with margin
        with self.assertRaises(ls.Expired) as cm:
            self.c.verify_session(iss.session_token)
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "expired"))

    def test_refresh_reuse_revokes(self) -> None:
        iss = self.c.create_session("alice")
        support.remember(iss.session_token, iss.refresh_token)
        r = self.c.refresh(iss.refresh_token)
        support.remember(r.refresh_token, r.access_token)
        time.sleep(0.05)  # past the 1 ms grace window
        with self.assertRaises(ls.RefreshReuse) as cm:
            self.c.refresh(iss.refresh_token)
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "refresh_reuse"))
        with self.assertRaises(ls.InvalidCredential):
            self.c.verify_session(iss.session_token)


class AsyncClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.c = ls.AsyncClient(support.URL, support.API_KEY)

    async def asyncTearDown(self) -> None:
        await self.c.aclose()

    async def test_lifecycle(self) -> None:
        iss = await self.c.create_session("alice", data={"k": "v"})
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        v = await self.c.verify_session(iss.session_token)
        self.assertEqual(v.session.id, iss.session.id)
        self.assertEqual((await self.c.verify_access_token(iss.access_token)).session.id, iss.session.id)
        s = await self.c.get_session(iss.session.id)
        p = await self.c.patch_session(s.id, {"k": None}, if_match=s.version)
        self.assertEqual(p.data, {})
        with self.assertRaises(ls.Conflict):
            await self.c.patch_session(s.id, {"k": 1}, if_match=s.version)
        r = await self.c.renew_session(s.id)
        support.remember(r.session_token, r.refresh_token, r.access_token)
        with self.assertRaises(ls.InvalidToken):
            await self.c.verify_session(iss.session_token)
        f = await self.c.refresh(r.refresh_token)
        support.remember(f.refresh_token, f.access_token)
        self.assertIn(s.id, [x.id for x in await self.c.list_sessions("alice")])
        await self.c.revoke_session(s.id)
        with self.assertRaises(ls.Revoked):
            await self.c.verify_session(r.session_token)
        with self.assertRaises(ls.NotFound):
            await self.c.get_session(s.id)
        self.assertGreaterEqual(await self.c.revoke_subject("alice"), 0)
        self.assertTrue((await self.c.rotate_keys()).kid)
        self.assertTrue(await self.c.list_keys())
        self.assertTrue((await self.c.jwks())["keys"])
        self.assertTrue(await self.c.ready())
        iss = await self.c.create_session("gina", acr="pwd")
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        self.assertEqual((await self.c.whoami(iss.access_token)).id, iss.session.id)
        with self.assertRaises(ls.InsufficientUserAuthentication):
            await self.c.verify_access_token(iss.access_token, acr_values=["mfa"])
        r = await self.c.renew_session(iss.session.id, acr="mfa", amr=["otp"])
        support.remember(r.session_token, r.refresh_token, r.access_token)
        with self.assertRaises(ls.InvalidCredential):  # renewed: the old access token is dead
            await self.c.whoami(iss.access_token)
        await self.c.logout(r.access_token)
        with self.assertRaises(ls.InvalidCredential):
            await self.c.whoami(r.access_token)

    async def test_errors(self) -> None:
        with self.assertRaises(ls.BadRequest):
            await self.c.create_session("")
        with self.assertRaises(ls.TooLarge):
            await self.c.create_session("a", data={"x": "y" * (70 << 10)})
        async with ls.AsyncClient(support.URL, "wrong-" + "k" * 40) as bad:
            with self.assertRaises(ls.Unauthorized):
                await bad.list_keys()

    async def test_concurrent_calls_reuse_connections(self) -> None:
        iss = await self.c.create_session("alice")
        support.remember(iss.session_token)
        results = await asyncio.gather(*(self.c.verify_session(iss.session_token) for _ in range(20)))
        self.assertTrue(all(r.session.id == iss.session.id for r in results))
        self.assertLessEqual(len(self.c._t._idle), 20)
        idle = list(self.c._t._idle)
        await self.c.verify_session(iss.session_token)
        self.assertTrue(set(map(id, self.c._t._idle)) <= set(map(id, idle)))

    async def test_chunked_answer(self) -> None:
        # Enough sessions that the list answer outgrows Go's buffer and is sent chunked.
        subject = "many-" + os.urandom(4).hex()
        for _ in range(30):
            support.remember((await self.c.create_session(subject, data={"pad": "p" * 200})).session_token)
        raw = await self.c._t.request("GET", f"/v1/subjects/{subject}/sessions",
                                      {"Authorization": "Bearer " + support.API_KEY}, None)
        self.assertEqual(raw.status, 200)
        self.assertEqual(len(json.loads(raw.body)["sessions"]), 30)
        self.assertEqual(len(await self.c.list_sessions(subject)), 30)


if __name__ == "__main__":
    unittest.main()
