"""DPoP (RFC 9449) against a real latch serve: binding at create, proofs on
refresh and verify through the client, and the adapters' Authorization: DPoP,
with the attack table (wrong key, replayed jti, wrong htu/htm, stale iat,
missing ath, alg none, HMAC, private key in the header, another key's token,
a bound token as Bearer). Proofs are made by tests/dpop_proof.py
(python3-cryptography), independently of latch's Go code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import unittest

import latch_sessions as ls

from . import harness, support
from .dpop_proof import Key, b64

ME = "https://app.example/me"
CHALLENGE = re.compile(r'DPoP algs="[A-Za-z0-9 ]+", error="invalid_dpop_proof", error_description="[^"]+"$')


def setUpModule() -> None:
    support.need_latch()
    support.need("cryptography", "python3-cryptography")


def claims_of(jws: str) -> dict:
    p = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def forged(key: Key, htm: str, htu: str, access_token: str, alg: str) -> str:
    """A proof whose header says alg none or HS256 (signed with the public key's bytes)."""
    h = {"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk}
    c = {"jti": b64(hashlib.sha256(str(time.time_ns()).encode()).digest()[:12]), "htm": htm, "htu": htu,
         "iat": int(time.time()), "ath": b64(hashlib.sha256(access_token.encode()).digest())}
    signing = b64(json.dumps(h).encode()) + "." + b64(json.dumps(c).encode())
    sig = b"" if alg == "none" else hmac.new(json.dumps(key.jwk).encode(), signing.encode(), "sha256").digest()
    return signing + "." + b64(sig)


def attacks(key: Key, other: Key, htm: str, htu: str, at: str, other_at: str) -> dict[str, tuple[str, str]]:
    """name -> (access token, proof) that latch must refuse for a token bound to key."""
    replayed = key.proof(htm, htu, access_token=at)
    return {
        "wrong key": (at, other.proof(htm, htu, access_token=at)),
        "replayed jti": (at, replayed),  # sent once first by the caller
        "wrong htu": (at, key.proof(htm, htu.replace("/me", "/other").replace("/action", "/other"), access_token=at)),
        "wrong htm": (at, key.proof("DELETE", htu, access_token=at)),
        "stale iat": (at, key.proof(htm, htu, access_token=at, iat=time.time() - 600)),
        "future iat": (at, key.proof(htm, htu, access_token=at, iat=time.time() + 600)),
        "missing ath": (at, key.proof(htm, htu)),
        "wrong ath": (at, key.proof(htm, htu, access_token=other_at)),
        "alg none": (at, forged(key, htm, htu, at, "none")),
        "HMAC": (at, forged(key, htm, htu, at, "HS256")),
        "private key in header": (at, key.proof(htm, htu, access_token=at, with_private=True)),
        "wrong typ": (at, key.proof(htm, htu, access_token=at, header={"typ": "JWT"})),
        "token bound to another key": (other_at, key.proof(htm, htu, access_token=other_at)),
        "not a JWS": (at, "not-a-proof"),
    }, replayed


# The check latch names in the problem's reason member for each attack.
REASONS = {
    "wrong key": "key_mismatch", "replayed jti": "jti_replayed", "wrong htu": "htu", "wrong htm": "htm",
    "stale iat": "iat_stale", "future iat": "iat_future", "missing ath": "ath_missing", "wrong ath": "ath",
    "alg none": "malformed",  # an unsigned JWS has no signature, which no proof may lack
    "HMAC": "alg_symmetric", "private key in header": "private_key", "wrong typ": "typ",
    "token bound to another key": "key_mismatch", "not a JWS": "malformed",
}


class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.c = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.c.close)
        self.logs = support.LogCapture().__enter__()
        self.addCleanup(self._no_token_logged)
        self.key, self.other = Key("ES256"), Key("EdDSA")

    def _no_token_logged(self) -> None:
        self.logs.__exit__()
        support.assert_no_token(self, "\n".join(self.logs.lines))

    def bound(self, key: Key, subject: str = "dora") -> ls.Issued:
        iss = self.c.create_session(subject, dpop_jkt=key.jkt)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        return iss

    def test_binding_at_create(self) -> None:
        iss = self.bound(self.key)
        self.assertEqual(iss.token_type, "DPoP")
        self.assertEqual(claims_of(iss.access_token)["cnf"], {"jkt": self.key.jkt})
        # By a relayed proof: the key of the proof the client sent with its login request.
        login = "https://app.example/login"
        iss2 = self.c.create_session("dora", dpop=ls.DPoPProof(self.other.proof("POST", login), "POST", login))
        support.remember(iss2.session_token, iss2.refresh_token, iss2.access_token)
        self.assertEqual(claims_of(iss2.access_token)["cnf"], {"jkt": self.other.jkt})
        self.assertNotIn(iss2.access_token, repr(iss2))
        # A refused proof creates nothing.
        subject = "dora-" + b64(time.time_ns().to_bytes(8, "big"))
        for proof in (self.key.proof("GET", login), self.key.proof("POST", "https://evil.example/login"), "x"):
            with self.subTest(proof=proof[:10]), self.assertRaises(ls.InvalidDPoPProof) as cm:
                self.c.create_session(subject, dpop=ls.DPoPProof(proof, "POST", login))
            self.assertRegex(cm.exception.www_authenticate, CHALLENGE)
        self.assertEqual(self.c.list_sessions(subject), [])
        with self.assertRaises(ValueError):
            self.c.create_session("dora", dpop=ls.DPoPProof("p", "POST", login), dpop_jkt=self.key.jkt)
        with self.assertRaises(ls.BadRequest):
            self.c.create_session("dora", dpop_jkt="short")
        # An unbound session is Bearer, as before.
        plain = self.c.create_session("dora")
        support.remember(plain.session_token, plain.refresh_token, plain.access_token)
        self.assertEqual(plain.token_type, "Bearer")
        self.assertNotIn("cnf", claims_of(plain.access_token))

    def test_verify_needs_the_proof(self) -> None:
        iss = self.bound(self.key)
        other = self.bound(self.other)
        at = iss.access_token
        v = self.c.verify_access_token(at, dpop=ls.DPoPProof(self.key.proof("GET", ME, access_token=at), "GET", ME))
        self.assertEqual(v.session.id, iss.session.id)
        # Without a proof: the bound token is worthless.
        with self.assertRaises(ls.InvalidDPoPProof) as cm:
            self.c.verify_access_token(at)
        self.assertRegex(cm.exception.www_authenticate, CHALLENGE)
        table, replayed = attacks(self.key, self.other, "GET", ME, at, other.access_token)
        self.c.verify_access_token(at, dpop=ls.DPoPProof(replayed, "GET", ME))
        before = self.c.get_session(iss.session.id).version
        for name, (tok, proof) in table.items():
            with self.subTest(name), self.assertRaises(ls.InvalidDPoPProof) as cm:
                self.c.verify_access_token(tok, dpop=ls.DPoPProof(proof, "GET", ME))
            self.assertEqual(cm.exception.status, 401)
            self.assertEqual(cm.exception.reason, REASONS[name], name)
            self.assertNotIn(proof, str(cm.exception))
        self.assertEqual(self.c.get_session(iss.session.id).version, before)  # refusals change nothing

    def test_refresh_with_a_proof(self) -> None:
        iss = self.bound(self.key)
        url = "https://app.example/token"
        # No proof, or another key's: refused, and the refresh token is not spent.
        with self.assertRaises(ls.InvalidDPoPProof):
            self.c.refresh(iss.refresh_token)
        with self.assertRaises(ls.InvalidDPoPProof):
            self.c.refresh(iss.refresh_token, dpop=ls.DPoPProof(self.other.proof("POST", url), "POST", url))
        # Relayed by the backend's refresh endpoint.
        r = self.c.refresh(iss.refresh_token, dpop=ls.DPoPProof(self.key.proof("POST", url), "POST", url))
        support.remember(r.refresh_token, r.access_token)
        self.assertEqual(r.token_type, "DPoP")
        self.assertEqual(claims_of(r.access_token)["cnf"], {"jkt": self.key.jkt})
        # Made by the client for latch's own URL, sent as the DPoP header.
        latch_url = self.c.metadata()["issuer"].rstrip("/") + "/v1/refresh"
        r2 = self.c.refresh(r.refresh_token, dpop_proof=self.key.proof("POST", latch_url))
        support.remember(r2.refresh_token, r2.access_token)
        self.assertEqual(r2.token_type, "DPoP")
        with self.assertRaises(ls.InvalidDPoPProof):
            self.c.refresh(r2.refresh_token, dpop_proof=self.key.proof("POST", "https://elsewhere.example/v1/refresh"))
        with self.assertRaises(ValueError):
            self.c.refresh(r2.refresh_token, dpop=ls.DPoPProof("a", "POST", url), dpop_proof="b")

    def test_whoami_and_logout_as_the_user(self) -> None:
        iss = self.bound(self.key)
        at = iss.access_token
        base = self.c.metadata()["issuer"].rstrip("/")
        s = self.c.whoami(at, dpop_proof=self.key.proof("GET", base + "/v1/whoami", access_token=at))
        self.assertEqual(s.id, iss.session.id)
        for name, proof in (("no proof", None), ("another key", self.other.proof("GET", base + "/v1/whoami", access_token=at)),
                            ("another URL", self.key.proof("GET", base + "/v1/logout", access_token=at)),
                            ("no ath", self.key.proof("GET", base + "/v1/whoami"))):
            with self.subTest(name), self.assertRaises(ls.InvalidDPoPProof):
                self.c.whoami(at, dpop_proof=proof)
        with self.assertRaises(ls.InvalidDPoPProof):  # a stolen bound token cannot sign the user out
            self.c.logout(at)
        self.c.logout(at, dpop_proof=self.key.proof("POST", base + "/v1/logout", access_token=at))
        with self.assertRaises(ls.Revoked):
            self.c.verify_session(iss.session_token)

    def test_async_client(self) -> None:
        iss = self.bound(self.key)

        async def go() -> None:
            async with ls.AsyncClient(support.URL, support.API_KEY) as c:
                proof = self.key.proof("GET", ME, access_token=iss.access_token)
                v = await c.verify_access_token(iss.access_token, dpop=ls.DPoPProof(proof, "GET", ME))
                self.assertEqual(v.session.id, iss.session.id)
                with self.assertRaises(ls.InvalidDPoPProof):
                    await c.verify_access_token(iss.access_token, dpop=ls.DPoPProof(proof, "GET", ME))  # replayed
                url = "https://app.example/token"
                r = await c.refresh(iss.refresh_token, dpop=ls.DPoPProof(self.key.proof("POST", url), "POST", url))
                support.remember(r.refresh_token, r.access_token)
                self.assertEqual(r.token_type, "DPoP")
        asyncio.run(go())


# -- the adapters --------------------------------------------------------------------


def flask_app(client: ls.Client, bearer: str, **cfg):
    import flask
    from flask import g
    from latch_sessions.flask import Latch, login_required

    app = flask.Flask("dpop")
    app.config.update(LATCH_BEARER=bearer, LATCH_CACHE=False, **{"LATCH_" + k.upper(): v for k, v in cfg.items()})
    Latch(app, client=client)

    @app.route("/me", methods=["GET", "POST"])
    @login_required
    def me():
        return flask.jsonify(subject=g.latch.subject, auth=g.latch.auth, jkt=g.latch.dpop_jkt)

    @app.post("/action")
    @login_required
    def action():
        return "done"
    return harness.wsgi_caller(app)


def starlette_app(client: ls.AsyncClient, bearer: str, loop, **cfg):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route
    from latch_sessions.asgi import LatchMiddleware, login_required

    @login_required
    async def me(request):
        st = request.state.latch
        return JSONResponse({"subject": st.subject, "auth": st.auth, "jkt": st.dpop_jkt})

    @login_required
    async def action(request):
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/me", me, methods=["GET", "POST"]), Route("/action", action, methods=["POST"])])
    app.add_middleware(LatchMiddleware, client=client, bearer=bearer, cache=False, **cfg)
    return harness.asgi_caller(app, loop)


def django_app(client: ls.Client, bearer: str, **cfg):
    from . import test_django
    test_django.setUpModule()  # configures Django once, with test_django's routes
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    settings.ALLOWED_HOSTS = [harness.HOST, "10.0.0.5"]  # the proxied host of test_public_origin_behind_a_proxy
    old = settings.LATCH
    settings.LATCH = {"URL": support.URL, "API_KEY": support.API_KEY, "BEARER": bearer, "CACHE": False,
                      **{k.upper(): v for k, v in cfg.items()}}
    try:
        return harness.wsgi_caller(WSGIHandler())
    finally:
        settings.LATCH = old


class _AdapterTable:
    """Mixed into a TestCase that sets self.call(bearer, **cfg) -> call."""

    def setUp(self) -> None:
        super().setUp()
        self.api = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.api.close)
        self.key, self.other = Key("ES256"), Key("EdDSA")
        self.logs = support.LogCapture().__enter__()
        self.addCleanup(self._no_token_logged)

    def _no_token_logged(self) -> None:
        self.logs.__exit__()
        support.assert_no_token(self, "\n".join(self.logs.lines))

    def bound(self, key: Key) -> ls.Issued:
        iss = self.api.create_session("ivan", dpop_jkt=key.jkt)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        return iss

    @staticmethod
    def req(call, method: str, path: str, at: str, proof: str | None, scheme: str = "DPoP",
            host: str = harness.HOST, **extra) -> harness.Resp:
        h = {"Host": host, "Authorization": f"{scheme} {at}", **extra}
        if proof is not None:
            h["DPoP"] = proof
        return call(method, path, h, b"" if method == "POST" else None)

    def assertDPoPRefused(self, r: harness.Resp, what: str = "") -> None:
        self.assertEqual(r.status, 401, what)
        self.assertRegex(r.get("WWW-Authenticate") or "", CHALLENGE, what)
        self.assertEqual(r.get("Cache-Control"), "no-store")

    def run_table(self, bearer: str) -> None:
        call = self.call(bearer)
        iss, other = self.bound(self.key), self.bound(self.other)
        at = iss.access_token
        ok = self.req(call, "GET", "/me", at, self.key.proof("GET", ME, access_token=at))
        self.assertEqual(ok.status, 200, ok)
        body = json.loads(ok.body)
        self.assertEqual((body["subject"], body["auth"], body.get("jkt", self.key.jkt)), ("ivan", "bearer", self.key.jkt))
        # An unsafe request needs no CSRF token (browsers never attach Authorization), even cross-site.
        act = "https://app.example/action"
        r = self.req(call, "POST", "/action", at, self.key.proof("POST", act, access_token=at),
                     **{"Sec-Fetch-Site": "cross-site"})
        self.assertEqual((r.status, r.text), (200, "done"), r)
        table, replayed = attacks(self.key, self.other, "GET", ME, at, other.access_token)
        self.assertEqual(self.req(call, "GET", "/me", at, replayed).status, 200)
        table["bound token as Bearer"] = (at, None)
        table["DPoP scheme, no DPoP header"] = (at, None)
        table["two DPoP headers"] = (at, self.key.proof("GET", ME, access_token=at) + ", " +
                                     self.key.proof("GET", ME, access_token=at))
        table["POST proof for a GET"] = (at, self.key.proof("POST", ME, access_token=at))
        for name, (tok, proof) in table.items():
            with self.subTest(name):
                scheme = "Bearer" if name == "bound token as Bearer" else "DPoP"
                self.assertDPoPRefused(self.req(call, "GET", "/me", tok, proof, scheme), name)
        r = self.req(call, "GET", "/me", at, None, "Bearer")
        self.assertIn('error_description="the token is DPoP-bound', r.get("WWW-Authenticate"))
        # Refused here (before latch) or by latch, the challenge names the same algorithms.
        latch_said = self.req(call, "GET", "/me", at, self.other.proof("GET", ME, access_token=at))
        self.assertEqual(r.get("WWW-Authenticate").split(", error=")[0],
                         latch_said.get("WWW-Authenticate").split(", error=")[0])
        # An unbound token with the DPoP scheme is refused too; as Bearer it works.
        plain = self.api.create_session("ivan")
        support.remember(plain.session_token, plain.refresh_token, plain.access_token)
        self.assertDPoPRefused(self.req(call, "GET", "/me", plain.access_token,
                                        self.key.proof("GET", ME, access_token=plain.access_token)))
        self.assertEqual(self.req(call, "GET", "/me", plain.access_token, None, "Bearer").status, 200)
        # A revoked session's token is refused with its proof.
        self.api.revoke_session(iss.session.id)
        r = self.req(call, "GET", "/me", at, self.key.proof("GET", ME, access_token=at))
        self.assertEqual(r.status, 401)

    def test_online(self) -> None:
        self.run_table("online")

    def test_offline(self) -> None:
        support.need("jwt", "python3-jwt")
        self.run_table("offline")

    def test_public_origin_behind_a_proxy(self) -> None:
        # TLS ends at a proxy; the app sees http://10.0.0.5:8000 but the client signed the public URL.
        call = self.call("online", public_origin="https://api.example.com")
        iss = self.bound(self.key)
        at = iss.access_token
        proof = self.key.proof("GET", "https://api.example.com/me", access_token=at)
        self.assertEqual(self.req(call, "GET", "/me", at, proof, host="10.0.0.5:8000").status, 200)
        internal = self.key.proof("GET", "https://10.0.0.5:8000/me", access_token=at)
        self.assertDPoPRefused(self.req(call, "GET", "/me", at, internal, host="10.0.0.5:8000"))


class FlaskTest(_AdapterTable, unittest.TestCase):
    def setUp(self) -> None:
        support.need("flask", "python3-flask")
        super().setUp()

    def call(self, bearer: str, **cfg):
        return flask_app(self.api, bearer, **cfg)


class StarletteTest(_AdapterTable, unittest.TestCase):
    def setUp(self) -> None:
        support.need("starlette", "python3-starlette")
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)

    def call(self, bearer: str, **cfg):
        c = ls.AsyncClient(support.URL, support.API_KEY)
        self.addCleanup(lambda: self.loop.run_until_complete(c.aclose()))
        return starlette_app(c, bearer, self.loop, **cfg)


class DjangoTest(_AdapterTable, unittest.TestCase):
    def setUp(self) -> None:
        support.need("django", "python3-django")
        super().setUp()

    def call(self, bearer: str, **cfg):
        return django_app(self.api, bearer, **cfg)


class NonceTest(unittest.TestCase):
    """latch serve --dpop-nonce (docs/protocol.md §5): a proof without the server's nonce is
    answered use_dpop_nonce with DPoP-Nonce; the client retries once with it. The client
    surfaces every nonce latch sends, and the adapters relay it on refusals and successes."""

    def setUp(self) -> None:
        self.srv = support.Server("--dpop-nonce")
        self.addCleanup(self.srv.close)
        self.api = ls.Client(self.srv.url, self.srv.api_key)
        self.addCleanup(self.api.close)
        self.key = Key("ES256")

    def test_client(self) -> None:
        iss = self.api.create_session("nina", dpop_jkt=self.key.jkt)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        at = iss.access_token
        with self.assertRaises(ls.UseDPoPNonce) as cm:
            self.api.verify_access_token(at, dpop=ls.DPoPProof(self.key.proof("GET", ME, access_token=at), "GET", ME))
        e = cm.exception
        self.assertIsInstance(e, ls.InvalidDPoPProof)
        self.assertRegex(e.nonce, r"^[A-Za-z0-9_-]{1,64}$")
        self.assertEqual(e.dpop_nonce, e.nonce)
        self.assertIn('error="use_dpop_nonce"', e.www_authenticate)
        v = self.api.verify_access_token(at, dpop=ls.DPoPProof(
            self.key.proof("GET", ME, access_token=at, nonce=e.nonce), "GET", ME))
        self.assertEqual(v.session.id, iss.session.id)
        self.assertTrue(v.dpop_nonce)  # on success too, for the next proof
        # Other refusals carry the nonce as well.
        with self.assertRaises(ls.InvalidDPoPProof) as cm:
            self.api.verify_access_token(at, dpop=ls.DPoPProof(
                self.key.proof("POST", ME, access_token=at, nonce=v.dpop_nonce), "GET", ME))
        self.assertNotIsInstance(cm.exception, ls.UseDPoPNonce)
        self.assertTrue(cm.exception.dpop_nonce)
        # Refresh, relayed: refused without the nonce (the token is not spent), then with it.
        url = "https://app.example/token"
        with self.assertRaises(ls.UseDPoPNonce) as cm:
            self.api.refresh(iss.refresh_token, dpop=ls.DPoPProof(self.key.proof("POST", url), "POST", url))
        r = self.api.refresh(iss.refresh_token, dpop=ls.DPoPProof(
            self.key.proof("POST", url, nonce=cm.exception.nonce), "POST", url))
        support.remember(r.refresh_token, r.access_token)
        self.assertTrue(r.dpop_nonce)
        self.assertEqual(r.token_type, "DPoP")

    def test_adapter_relays_the_nonce(self) -> None:
        support.need("flask", "python3-flask")
        iss = self.api.create_session("nina", dpop_jkt=self.key.jkt)
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        at = iss.access_token
        call = flask_app(self.api, "online")
        r = _AdapterTable.req(call, "GET", "/me", at, self.key.proof("GET", ME, access_token=at))
        self.assertEqual(r.status, 401)
        self.assertIn('error="use_dpop_nonce"', r.get("WWW-Authenticate"))
        n = r.get("DPoP-Nonce")
        self.assertRegex(n or "", r"^[A-Za-z0-9_-]{1,64}$")
        r = _AdapterTable.req(call, "GET", "/me", at, self.key.proof("GET", ME, access_token=at, nonce=n))
        self.assertEqual(r.status, 200, r)
        n2 = r.get("DPoP-Nonce")
        self.assertTrue(n2)  # the next proof's nonce, on success too
        r = _AdapterTable.req(call, "GET", "/me", at, self.key.proof("GET", ME, access_token=at, nonce=n2))
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    unittest.main()
