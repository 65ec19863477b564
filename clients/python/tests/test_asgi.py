"""The ASGI middleware under Starlette and FastAPI, driven in-process, against a real latch serve."""

from __future__ import annotations

import asyncio
import json
import unittest

import latch_sessions as ls

from . import harness, support


def setUpModule() -> None:
    support.need_latch()
    support.need("starlette", "python3-starlette")


def starlette_app(client: ls.AsyncClient):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route
    from latch_sessions.asgi import LatchMiddleware, login_required

    async def form(request):
        return PlainTextResponse(request.state.latch.csrf_token())

    async def login(request):
        f = await request.form()  # the middleware replayed the body it read
        await request.state.latch.login(f["user"])
        return PlainTextResponse("ok")

    @login_required
    async def me(request):
        st = request.state.latch
        return JSONResponse({"subject": st.subject, "session_id": st.session_id, "auth": st.auth})

    @login_required
    async def action(request):
        return PlainTextResponse("done")

    async def logout(request):
        await request.state.latch.logout()
        return PlainTextResponse("bye")

    @login_required
    async def renew(request):
        await request.state.latch.renew()
        return PlainTextResponse("renewed")

    @login_required
    async def revoke_others(request):
        return PlainTextResponse(str(await request.state.latch.revoke_others()))

    async def public(request):
        return PlainTextResponse("hi")

    app = Starlette(routes=[
        Route("/form", form), Route("/login", login, methods=["POST"]), Route("/me", me),
        Route("/action", action, methods=["POST"]), Route("/logout", logout, methods=["POST"]),
        Route("/renew", renew, methods=["POST"]), Route("/revoke-others", revoke_others, methods=["POST"]),
        Route("/public", public)])
    app.add_middleware(LatchMiddleware, client=client, bearer="online", cache=False)
    return app


def fastapi_app(client: ls.AsyncClient):
    from fastapi import Depends, FastAPI, Form
    from fastapi.responses import PlainTextResponse
    from latch_sessions.asgi import LatchMiddleware
    from latch_sessions.fastapi import latch_state, require_session

    app = FastAPI()
    app.add_middleware(LatchMiddleware, client=client, bearer="online", cache=False)

    @app.get("/form", response_class=PlainTextResponse)
    async def form(latch=Depends(latch_state)):
        return latch.csrf_token()

    @app.post("/login", response_class=PlainTextResponse)
    async def login(user: str = Form(), latch=Depends(latch_state)):
        await latch.login(user)
        return "ok"

    @app.get("/me")
    async def me(latch=Depends(require_session)):
        return {"subject": latch.subject, "session_id": latch.session_id, "auth": latch.auth}

    @app.post("/action", response_class=PlainTextResponse)
    async def action(latch=Depends(require_session)):
        return "done"

    @app.post("/logout", response_class=PlainTextResponse)
    async def logout(latch=Depends(latch_state)):
        await latch.logout()
        return "bye"

    @app.post("/renew", response_class=PlainTextResponse)
    async def renew(latch=Depends(require_session)):
        await latch.renew()
        return "renewed"

    @app.post("/revoke-others", response_class=PlainTextResponse)
    async def revoke_others(latch=Depends(require_session)):
        return str(await latch.revoke_others())

    @app.get("/public", response_class=PlainTextResponse)
    async def public():
        return "hi"

    return app


class _ASGIBase(harness.Scenarios):
    build = staticmethod(starlette_app)

    def setUp(self) -> None:
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)
        self.call = self.make_call(support.URL, support.API_KEY)

    def make_call(self, url, api_key):
        c = ls.AsyncClient(url, api_key, timeout=2)
        self.addCleanup(lambda: self.loop.run_until_complete(c.aclose()))
        return harness.asgi_caller(self.build(c), self.loop)


class StarletteTest(_ASGIBase, unittest.TestCase):
    build = staticmethod(starlette_app)

    def test_multipart_form_token(self) -> None:
        b = self.browser()
        tok = b.form_token()
        boundary = "XyZ"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{tok}\r\n"
                f"--{boundary}--\r\n").encode()
        h = {"Host": harness.HOST, "Sec-Fetch-Site": "same-origin", "Content-Type": f"multipart/form-data; boundary={boundary}",
             "Cookie": "; ".join(f"{k}={v}" for k, v in b.cookies.items())}
        r = self.call("POST", "/login", h, body)
        self.assertEqual((r.status, r.text), (200, "ok"))
        # A file part named csrf_token does not count.
        body2 = body.replace(b'name="csrf_token"', b'name="csrf_token"; filename="t.txt"')
        self.assertEqual(self.call("POST", "/login", h, body2).status, 403)

    def test_lifespan_passes_through(self) -> None:
        from latch_sessions.asgi import LatchMiddleware
        seen = []

        async def inner(scope, receive, send):
            seen.append(scope["type"])
        mw = LatchMiddleware(inner, client=ls.AsyncClient(support.URL, support.API_KEY))
        self.loop.run_until_complete(mw({"type": "lifespan"}, None, None))
        self.assertEqual(seen, ["lifespan"])


class FastAPITest(_ASGIBase, unittest.TestCase):
    build = staticmethod(fastapi_app)

    @classmethod
    def setUpClass(cls) -> None:
        support.need("fastapi", "python3-fastapi")

    def test_unauthorized_has_www_authenticate(self) -> None:
        r = self.browser().get("/me")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.get("WWW-Authenticate"), "Bearer")


if __name__ == "__main__":
    unittest.main()
