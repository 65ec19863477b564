"""One scenario suite for every adapter. Each adapter's test module builds
the same small app (routes below) and a `call` that drives it in-process
through WSGI or ASGI; the scenarios then check latchhttp's behaviour byte for
byte: cookie attributes, fixation, both CSRF layers (session and anonymous
tokens), logout, renew, revoke-others, dead cookies, fail-closed, bearer
tokens, and no token in any log record.

Routes every test app serves:
  GET  /form            the csrf_token() of the request (login form)
  POST /login           form user=…: login(user), answers "ok"
  GET  /me              login_required: JSON {"subject", "session_id", "auth"}
  POST /action          login_required: "done"
  POST /logout          logout(), "bye"
  POST /renew           renew(), "renewed"
  POST /revoke-others   revoke_others(), the count
  GET  /public          "hi"
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import unittest
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

import latch_sessions as ls
from latch_sessions import csrf

from . import support

HOST = "app.example"
ORIGIN = "https://app.example"


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def cookie(self, name: str) -> str | None:
        for c in self.all("Set-Cookie"):
            if c.split("=", 1)[0] == name:
                return c
        return None

    @property
    def text(self) -> str:
        return self.body.decode()


def wsgi_caller(app) -> Callable[..., Resp]:
    def call(method: str, path: str, headers: dict[str, str], body: bytes | None) -> Resp:
        p = urllib.parse.urlsplit(path)
        env = {
            "REQUEST_METHOD": method, "PATH_INFO": p.path, "QUERY_STRING": p.query, "SCRIPT_NAME": "",
            "SERVER_NAME": HOST, "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.7",
            "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body or b""),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body or b"")),
        }
        for k, v in headers.items():
            key = k.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                env["CONTENT_TYPE"] = v
            else:
                env["HTTP_" + key] = v
        out: dict = {}

        def start_response(status, hdrs, exc_info=None):
            out["status"], out["headers"] = int(status.split()[0]), list(hdrs)
        chunks = app(env, start_response)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return Resp(out["status"], out["headers"], data)
    return call


def asgi_caller(app, loop: asyncio.AbstractEventLoop) -> Callable[..., Resp]:
    def call(method: str, path: str, headers: dict[str, str], body: bytes | None) -> Resp:
        p = urllib.parse.urlsplit(path)
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "https", "path": p.path, "raw_path": p.path.encode(), "query_string": p.query.encode(),
                 "root_path": "", "server": (HOST, 443), "client": ("203.0.113.7", 5555),
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
        pending = [{"type": "http.request", "body": body or b"", "more_body": False}]
        out: dict = {"body": b""}

        async def receive():
            if pending:
                return pending.pop(0)
            await asyncio.sleep(3600)

        async def send(msg):
            if msg["type"] == "http.response.start":
                out["status"] = msg["status"]
                out["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in msg.get("headers", [])]
            elif msg["type"] == "http.response.body":
                out["body"] += msg.get("body", b"")
        if loop.is_running():  # a loop running in another thread (background tasks keep going between calls)
            asyncio.run_coroutine_threadsafe(app(scope, receive, send), loop).result(30)
        else:
            loop.run_until_complete(app(scope, receive, send))
        return Resp(out["status"], out["headers"], out["body"])
    return call


class Browser:
    """A browser on https://app.example: keeps cookies, sends Sec-Fetch-Site like one."""

    def __init__(self, call: Callable[..., Resp]) -> None:
        self.call = call
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, site: str | None = "same-origin", cookies: bool = True) -> Resp:
        h = {"Host": HOST, "User-Agent": "harness/1"}
        if site:
            h["Sec-Fetch-Site"] = site
        if cookies and self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        h.update(headers or {})
        r = self.call(method, path, h, body)
        for c in r.all("Set-Cookie"):
            name, _, rest = c.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in c or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
                support.remember(value)
        return r

    def get(self, path: str, **kw) -> Resp:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Resp:
        return self.request("POST", path, **kw)

    def form_token(self) -> str:
        r = self.get("/form")
        assert r.status == 200, r
        return r.text

    def login(self, user: str = "alice") -> Resp:
        tok = self.form_token()
        return self.post("/login", form={"user": user, "csrf_token": tok})

    @property
    def session_token(self) -> str | None:
        return self.cookies.get("__Host-latch")


SESSION_COOKIE = re.compile(r"__Host-latch=(lts_[A-Za-z0-9_-]+); Path=/; Max-Age=(8640[0-9]|86[0-3][0-9]{2}); HttpOnly; Secure; SameSite=Lax")
EXPIRED = "{}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
ANON_COOKIE = re.compile(r"__Host-latch-csrf=([A-Za-z0-9_-]{43}); Path=/; Max-Age=7200; HttpOnly; Secure; SameSite=Lax")


class Scenarios:
    """Mixed into a unittest.TestCase that sets self.call (the app) and, for
    fail-closed, self.make_call(url, api_key) building the same app on another latch."""

    call: Callable[..., Resp]

    def setUp(self) -> None:  # noqa: D102
        super().setUp()
        self.latch = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.latch.close)
        self.logs = support.LogCapture().__enter__()
        self.addCleanup(self._check_logs)

    def _check_logs(self) -> None:
        self.logs.__exit__()
        support.assert_no_token(self, "\n".join(self.logs.lines))

    def browser(self) -> Browser:
        return Browser(self.call)

    # -- cookies ----------------------------------------------------------

    def test_login_sets_the_cookie_like_latchhttp(self) -> None:
        b = self.browser()
        r = b.login("alice")
        self.assertEqual(r.status, 200, r)
        c = r.cookie("__Host-latch")
        self.assertIsNotNone(c)
        self.assertRegex(c, "^" + SESSION_COOKIE.pattern + "$")
        self.assertEqual(r.get("Cache-Control"), "no-store")
        self.assertIn("Cookie", r.get("Vary") or "")
        # The anonymous CSRF cookie of the login form is expired at login.
        self.assertEqual(r.cookie("__Host-latch-csrf"), EXPIRED.format("__Host-latch-csrf"))
        me = b.get("/me")
        self.assertEqual(me.status, 200, me)
        self.assertEqual(json.loads(me.body)["subject"], "alice")
        self.assertEqual(json.loads(me.body)["auth"], "cookie")
        # A plain page sets no cookie, but still varies on it.
        p = b.get("/public")
        self.assertEqual(p.all("Set-Cookie"), [])
        self.assertIn("Cookie", p.get("Vary") or "")

    def test_anonymous_cookie_attributes(self) -> None:
        b = self.browser()
        r = b.get("/form")
        self.assertRegex(r.cookie("__Host-latch-csrf") or "", "^" + ANON_COOKIE.pattern + "$")
        self.assertEqual(r.get("Cache-Control"), "no-store")
        self.assertEqual(len(r.text), 86)

    def test_fixation(self) -> None:
        planted = self.latch.create_session("mallory")
        support.remember(planted.session_token)
        b = self.browser()
        b.cookies["__Host-latch"] = planted.session_token
        # The planted session's own CSRF token: the attacker knows it.
        tok = b.form_token()
        r = b.post("/login", form={"user": "alice", "csrf_token": tok})
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(b.session_token, planted.session_token)
        with self.assertRaises(ls.InvalidCredential):
            self.latch.verify_session(planted.session_token)
        self.assertEqual(json.loads(b.get("/me").body)["subject"], "alice")

    def test_dead_cookie_is_deleted(self) -> None:
        b = self.browser()
        b.login()
        tok = b.session_token
        sid = json.loads(b.get("/me").body)["session_id"]
        self.latch.revoke_session(sid)
        r = b.get("/me")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.cookie("__Host-latch"), EXPIRED.format("__Host-latch"))
        b.cookies["__Host-latch"] = tok
        self.assertEqual(b.get("/public").cookie("__Host-latch"), EXPIRED.format("__Host-latch"))
        b.cookies["__Host-latch"] = "lts_garbage"
        self.assertEqual(b.get("/me").status, 401)

    def test_hostile_cookies_and_tokens(self) -> None:
        b = self.browser()
        for value in ("", "x" * 5000, "lts_" + "\u00e9" * 10, '"lts_quoted"', "lts_" + "A" * 600):
            with self.subTest(value=value[:20]):
                r = b.call("GET", "/me", {"Host": HOST, "Cookie": "__Host-latch=" + value}, None)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.cookie("__Host-latch"), EXPIRED.format("__Host-latch"))
        for auth in ("Bearer ", "Bearer " + "x" * 9000, "Bearer a.b.c", "bearer \u00e9"):
            with self.subTest(auth=auth[:20]):
                r = b.call("GET", "/me", {"Host": HOST, "Authorization": auth}, None)
                self.assertEqual(r.status, 401, r)
        # A malformed anonymous cookie is no cookie: a fresh one is issued with the next token.
        r = b.call("GET", "/form", {"Host": HOST, "Cookie": "__Host-latch-csrf=%%%"}, None)
        self.assertRegex(r.cookie("__Host-latch-csrf") or "", "^" + ANON_COOKIE.pattern + "$")

    def test_login_required(self) -> None:
        b = self.browser()
        self.assertEqual(b.get("/me").status, 401)
        self.assertEqual(b.post("/action", form={"csrf_token": b.form_token()}).status, 401)

    # -- CSRF ---------------------------------------------------------------

    def test_csrf_with_a_session(self) -> None:
        b = self.browser()
        b.login()
        tok = b.form_token()
        self.assertEqual(b.post("/action", form={"csrf_token": tok}).status, 200)
        self.assertEqual(b.post("/action", headers={"X-CSRF-Token": b.form_token()}).status, 200)
        # Missing, wrong, malformed.
        for form in ({}, {"csrf_token": csrf.mask(bytes(32))}, {"csrf_token": "x"}, {"csrf_token": tok[:-2]}):
            with self.subTest(form=form):
                self.assertEqual(b.post("/action", form=form).status, 403)
        # Not from the query string.
        self.assertEqual(b.post("/action?csrf_token=" + tok).status, 403)
        # Another session's token.
        other = self.browser()
        other.login("bob")
        self.assertEqual(b.post("/action", form={"csrf_token": other.form_token()}).status, 403)
        # The session's token still works after all of that.
        self.assertEqual(b.post("/action", form={"csrf_token": b.form_token()}).status, 200)

    def test_cross_site_is_refused_before_latch(self) -> None:
        b = self.browser()
        b.login()
        tok = b.form_token()
        for kw in ({"site": "cross-site"}, {"site": "same-site"},
                   {"site": None, "headers": {"Origin": "https://evil.example"}},
                   {"site": None, "headers": {"Origin": "null"}}):
            with self.subTest(kw=kw):
                r = b.post("/action", form={"csrf_token": tok}, **kw)
                self.assertEqual(r.status, 403)
        # Same origin by Origin alone (an older browser), or neither header (not a browser).
        self.assertEqual(b.post("/action", form={"csrf_token": tok}, site=None,
                                headers={"Origin": ORIGIN}).status, 200)
        self.assertEqual(b.post("/action", form={"csrf_token": tok}, site=None).status, 200)
        self.assertEqual(b.post("/action", form={"csrf_token": tok}, site="none").status, 200)
        # A cross-site login form post (login CSRF) is refused too.
        anon = self.browser()
        self.assertEqual(anon.post("/login", form={"user": "mallory", "csrf_token": anon.form_token()},
                                   site="cross-site").status, 403)
        self.assertNotIn("__Host-latch", anon.cookies)

    def test_anonymous_login_form(self) -> None:
        b = self.browser()
        # No cookie, no token.
        self.assertEqual(b.post("/login", form={"user": "alice"}).status, 403)
        # A made-up token without the anonymous cookie.
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": csrf.mask(bytes(32))}).status, 403)
        # A token minted for another visitor's cookie.
        attacker = self.browser()
        foreign = attacker.form_token()
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": foreign}).status, 403)
        b.form_token()  # now b has its own cookie
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": foreign}).status, 403)
        self.assertNotIn("__Host-latch", b.cookies)
        # Its own token works, from the form or the header.
        r = b.post("/login", form={"user": "alice"}, headers={"X-CSRF-Token": b.form_token()})
        self.assertEqual(r.status, 200, r)
        self.assertIn("__Host-latch", b.cookies)
        self.assertNotIn("__Host-latch-csrf", b.cookies)
        # After login only the session's token counts: an anonymous one is refused.
        anon_tok = attacker.form_token()
        b.cookies["__Host-latch-csrf"] = attacker.cookies["__Host-latch-csrf"]
        self.assertEqual(b.post("/action", form={"csrf_token": anon_tok}).status, 403)

    # -- logout, renew, revoke-others ------------------------------------------

    def test_logout(self) -> None:
        b = self.browser()
        b.login()
        tok = b.session_token
        r = b.post("/logout", form={"csrf_token": b.form_token()})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.cookie("__Host-latch"), EXPIRED.format("__Host-latch"))
        self.assertEqual(r.get("Clear-Site-Data"), '"cookies"')
        self.assertEqual(r.get("Cache-Control"), "no-store")
        with self.assertRaises(ls.Revoked):
            self.latch.verify_session(tok)
        self.assertEqual(b.get("/me").status, 401)
        # Logout without a token is refused like any unsafe request.
        b2 = self.browser()
        b2.login()
        self.assertEqual(b2.post("/logout").status, 403)
        self.assertEqual(b2.get("/me").status, 200)

    def test_renew(self) -> None:
        b = self.browser()
        b.login()
        old_tok, old_csrf = b.session_token, b.form_token()
        sid = json.loads(b.get("/me").body)["session_id"]
        r = b.post("/renew", form={"csrf_token": b.form_token()})
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.cookie("__Host-latch") or "", "^" + SESSION_COOKIE.pattern + "$")
        self.assertNotEqual(b.session_token, old_tok)
        with self.assertRaises(ls.InvalidCredential):
            self.latch.verify_session(old_tok)
        self.assertEqual(json.loads(b.get("/me").body)["session_id"], sid)
        # The old CSRF token died with the old secret.
        self.assertEqual(b.post("/action", form={"csrf_token": old_csrf}).status, 403)
        self.assertEqual(b.post("/action", form={"csrf_token": b.form_token()}).status, 200)

    def test_revoke_others(self) -> None:
        user = "carol-" + id(self).__str__()
        phone, laptop = self.browser(), self.browser()
        phone.login(user)
        laptop.login(user)
        r = laptop.post("/revoke-others", form={"csrf_token": laptop.form_token()})
        self.assertEqual((r.status, r.text), (200, "1"))
        self.assertEqual(phone.get("/me").status, 401)
        self.assertEqual(laptop.get("/me").status, 200)

    # -- bearer tokens, failure -------------------------------------------------

    def test_bearer_access_token(self) -> None:
        iss = self.latch.create_session("dave")
        support.remember(iss.session_token, iss.access_token, iss.refresh_token)
        b = self.browser()
        auth = {"Authorization": "Bearer " + iss.access_token}
        r = b.get("/me", headers=auth)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body), {"subject": "dave", "session_id": iss.session.id, "auth": "bearer"})
        # No CSRF token needed, even cross-site: browsers never attach Authorization themselves.
        self.assertEqual(b.post("/action", headers=auth, site="cross-site").status, 200)
        # A bad token is not rescued by a cookie.
        b.login("alice")
        r = b.get("/me", headers={"Authorization": "Bearer not.a.token"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.get("WWW-Authenticate"), 'Bearer error="invalid_token"')
        self.latch.revoke_session(iss.session.id)
        self.assertEqual(b.get("/me", headers=auth).status, 401)

    def test_fail_closed_when_latch_is_stopped(self) -> None:
        srv = support.Server()
        self.addCleanup(srv.close)
        call = self.make_call(srv.url, srv.api_key)
        b = Browser(call)
        self.assertEqual(b.login("alice").status, 200)
        tok = b.form_token()
        self.assertEqual(b.get("/me").status, 200)
        srv.stop()
        for r in (b.get("/me"), b.get("/public"), b.post("/action", form={"csrf_token": tok})):
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.get("Retry-After"), "5")
            self.assertEqual(r.get("Cache-Control"), "no-store")
            self.assertEqual(r.all("Set-Cookie"), [])  # the cookie is kept for when latch is back
        # Login while latch is down fails closed too (the view's call raises UnavailableError).
        anon = Browser(call)
        anon.cookies["__Host-latch-csrf"], anon_tok = _anon_pair()
        self.assertEqual(anon.post("/login", form={"user": "x", "csrf_token": anon_tok}).status, 503)


def _anon_pair() -> tuple[str, str]:
    secret, value = csrf.new_anon_secret()
    return value, csrf.mask(csrf.anon_key(secret))
