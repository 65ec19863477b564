"""WebSocket handshakes through the ASGI middleware, in real Starlette and FastAPI
apps (starlette.testclient), against a real latch serve: the session cookie with
the Origin check that stops cross-site WebSocket hijacking, Bearer and DPoP
tokens, websocket_login_required, and fail-closed when latch is down."""

from __future__ import annotations

import asyncio
import unittest

import latch_sessions as ls

from . import support

ORIGIN = "http://testserver"  # starlette.testclient's host

try:  # at module level: FastAPI resolves the (postponed) annotations in this module's globals
    from fastapi import WebSocket
except ImportError:
    WebSocket = None


def setUpModule() -> None:
    support.need_latch()
    support.need("starlette", "python3-starlette")
    support.need("httpx", "python3-httpx")  # starlette.testclient


def starlette_app(url: str, api_key: str, ran: list, **cfg):
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from latch_sessions.asgi import LatchMiddleware, websocket_login_required

    async def open_ws(websocket):
        ran.append("open")
        st = websocket.state.latch
        await websocket.accept()
        await websocket.send_json({"subject": st.subject, "auth": st.auth})
        await websocket.close()

    @websocket_login_required
    async def private(websocket):
        ran.append("private")
        await websocket.accept()
        await websocket.send_json({"subject": websocket.state.latch.subject})
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", open_ws), WebSocketRoute("/private", private)])
    app.add_middleware(LatchMiddleware, client=ls.AsyncClient(url, api_key, timeout=2), bearer="online",
                       cache=False, **cfg)
    return app


def fastapi_app(ran: list):
    from fastapi import Depends, FastAPI
    from latch_sessions.asgi import LatchMiddleware
    from latch_sessions.fastapi import require_websocket_session

    app = FastAPI()
    app.add_middleware(LatchMiddleware, client=ls.AsyncClient(support.URL, support.API_KEY), cache=False)

    @app.websocket("/private")
    async def private(websocket: WebSocket, latch=Depends(require_websocket_session)):
        ran.append("private")
        await websocket.accept()
        await websocket.send_json({"subject": latch.subject})
        await websocket.close()
    return app


class WebSocketTest(unittest.TestCase):
    def setUp(self) -> None:
        from starlette.testclient import TestClient
        self.api = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.api.close)
        self.ran: list = []
        self.tc = TestClient(starlette_app(support.URL, support.API_KEY, self.ran))
        self.iss = self.api.create_session("wanda")
        support.remember(self.iss.session_token, self.iss.refresh_token, self.iss.access_token)
        self.cookie = {"cookie": "__Host-latch=" + self.iss.session_token}

    def connect(self, path: str, headers: dict[str, str], tc=None) -> dict:
        with (tc or self.tc).websocket_connect(path, headers=headers) as ws:
            return ws.receive_json()

    def refused(self, path: str, headers: dict[str, str], tc=None) -> int:
        from starlette.websockets import WebSocketDisconnect
        with self.assertRaises(WebSocketDisconnect) as cm:
            with (tc or self.tc).websocket_connect(path, headers=headers) as ws:
                ws.receive_json()
        return cm.exception.code

    def test_cookie_session_same_origin(self) -> None:
        self.assertEqual(self.connect("/ws", {**self.cookie, "origin": ORIGIN}), {"subject": "wanda", "auth": "cookie"})
        self.assertEqual(self.connect("/private", {**self.cookie, "origin": ORIGIN, "sec-fetch-site": "same-origin"}),
                         {"subject": "wanda"})
        # Not a browser (no Origin): the cookie is all it has.
        self.assertEqual(self.connect("/private", self.cookie), {"subject": "wanda"})

    def test_cross_site_handshakes_are_refused_before_the_app(self) -> None:
        for h in ({"origin": "https://evil.example"}, {"origin": "null"},
                  {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
                  {"origin": ORIGIN, "sec-fetch-site": "same-site"}):
            with self.subTest(h=h):
                self.assertEqual(self.refused("/ws", {**self.cookie, **h}), 1008)
                self.assertEqual(self.refused("/ws", h), 1008)  # with or without a session
        self.assertEqual(self.ran, [])
        # Unless the origin is trusted.
        from starlette.testclient import TestClient
        tc = TestClient(starlette_app(support.URL, support.API_KEY, self.ran,
                                      trusted_origins=["https://app.example.com"]))
        self.assertEqual(self.connect("/ws", {**self.cookie, "origin": "https://app.example.com",
                                              "sec-fetch-site": "cross-site"}, tc)["subject"], "wanda")

    def test_without_a_valid_session(self) -> None:
        self.assertEqual(self.connect("/ws", {"origin": ORIGIN}), {"subject": None, "auth": None})
        self.assertEqual(self.refused("/private", {"origin": ORIGIN}), 1008)
        self.assertEqual(self.refused("/private", {"origin": ORIGIN, "cookie": "__Host-latch=lts_garbage"}), 1008)
        self.api.revoke_session(self.iss.session.id)
        self.assertEqual(self.refused("/private", {**self.cookie, "origin": ORIGIN}), 1008)
        self.assertNotIn("private", self.ran)

    def test_bearer_and_dpop(self) -> None:
        auth = {"authorization": "Bearer " + self.iss.access_token}
        self.assertEqual(self.connect("/ws", auth), {"subject": "wanda", "auth": "bearer"})
        # A browser cannot attach Authorization to a WebSocket: no hijacking to stop.
        self.assertEqual(self.connect("/private", {**auth, "origin": "https://tool.example"}), {"subject": "wanda"})
        self.assertEqual(self.refused("/private", {"authorization": "Bearer not.a.token"}), 1008)
        support.need("cryptography", "python3-cryptography")
        from .dpop_proof import Key
        key = Key("EdDSA")
        bound = self.api.create_session("wanda", dpop_jkt=key.jkt)
        support.remember(bound.session_token, bound.refresh_token, bound.access_token)
        at = bound.access_token
        # The handshake is GET http(s)://host/path: the proof names that URL (ws:// maps to http://).
        h = {"authorization": "DPoP " + at, "dpop": key.proof("GET", ORIGIN + "/private", access_token=at)}
        self.assertEqual(self.connect("/private", h), {"subject": "wanda"})
        self.assertEqual(self.refused("/private", h), 1008)  # the same proof again: replayed
        self.assertEqual(self.refused("/private", {"authorization": "Bearer " + at}), 1008)  # bound, as Bearer

    def test_fail_closed_when_latch_is_down(self) -> None:
        from starlette.testclient import TestClient
        srv = support.Server()
        self.addCleanup(srv.close)
        tc = TestClient(starlette_app(srv.url, srv.api_key, self.ran))
        with ls.Client(srv.url, srv.api_key) as c:
            iss = c.create_session("wanda")
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        h = {"cookie": "__Host-latch=" + iss.session_token, "origin": ORIGIN}
        self.assertEqual(self.connect("/ws", h, tc)["subject"], "wanda")
        srv.stop()
        self.ran.clear()
        self.assertEqual(self.refused("/ws", h, tc), 1013)
        self.assertEqual(self.ran, [])

    def test_http_response_extension(self) -> None:
        # Servers offering websocket.http.response get a real 403 instead of a bare close.
        from latch_sessions.asgi import LatchMiddleware
        ran = []

        async def app(scope, receive, send):
            ran.append(scope["type"])
        mw = LatchMiddleware(app, client=ls.AsyncClient(support.URL, support.API_KEY), cache=False)
        sent = []
        msgs = [{"type": "websocket.connect"}]

        async def receive():
            return msgs.pop(0)

        async def send(m):
            sent.append(m)
        scope = {"type": "websocket", "path": "/ws", "scheme": "ws", "headers": [
            (b"host", b"testserver"), (b"origin", b"https://evil.example")], "extensions": {"websocket.http.response": {}}}
        asyncio.run(mw(scope, receive, send))
        self.assertEqual(ran, [])
        self.assertEqual((sent[0]["type"], sent[0]["status"]), ("websocket.http.response.start", 403))
        self.assertEqual(sent[1], {"type": "websocket.http.response.body", "body": b"Forbidden\n"})

    def test_fastapi_dependency(self) -> None:
        support.need("fastapi", "python3-fastapi")
        from starlette.testclient import TestClient
        ran: list = []
        tc = TestClient(fastapi_app(ran))
        self.assertEqual(self.connect("/private", {**self.cookie, "origin": ORIGIN}, tc), {"subject": "wanda"})
        self.assertEqual(self.refused("/private", {"origin": ORIGIN}, tc), 1008)
        self.assertEqual(self.refused("/private", {**self.cookie, "origin": "https://evil.example"}, tc), 1008)
        self.assertEqual(ran, ["private"])


if __name__ == "__main__":
    unittest.main()
