"""FastAPI dependencies over :class:`latch_sessions.asgi.LatchMiddleware`.

::

    from fastapi import Depends, FastAPI
    from latch_sessions.asgi import LatchMiddleware
    from latch_sessions.fastapi import require_session, latch_state

    app = FastAPI()
    app.add_middleware(LatchMiddleware, bearer="online")

    @app.get("/me")
    async def me(latch = Depends(require_session)):
        return {"user": latch.subject}

``require_session`` answers 401 (``WWW-Authenticate: Bearer`` when bearer tokens
are on) for requests without a valid session; ``latch_state`` gives the state
of any request, signed in or not (for login views).

Sensitive actions demand a recent or stronger sign-in (RFC 9470 step-up)::

    @app.post("/payments")
    async def pay(latch = Depends(require_recent_auth(max_age=300, acr="mfa"))): ...

and WebSocket endpoints take ``Depends(require_websocket_session)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from fastapi import HTTPException, Request, WebSocket, WebSocketException

from ._web import AsyncRequestSession, AuthRequirement, recent_auth_refusal
from .asgi import _full_path, session_of, unauthorized

__all__ = ["require_session", "latch_state", "require_recent_auth", "require_websocket_session"]


def latch_state(request: Request) -> AsyncRequestSession:
    """The request's latch state, authenticated or not."""
    return session_of(request)


def require_session(request: Request) -> AsyncRequestSession:
    """The request's latch state; 401 if it carries no valid session."""
    st = session_of(request)
    if not st.authenticated:
        status, headers, _ = unauthorized(st)
        raise HTTPException(status, "Unauthorized",
                            headers={k: v for k, v in headers if k in ("WWW-Authenticate", "Cache-Control")})
    return st


def require_recent_auth(max_age: int | None = None, acr: str | Sequence[str] = (), *,
                        reauth_url: str | None = None) -> Callable[[Request], AsyncRequestSession]:
    """A dependency for sensitive actions: the request's latch state if its user authenticated
    within ``max_age`` seconds and/or with one of the ``acr`` values (RFC 9470), as
    latchhttp.RequireRecentAuth. Without a session: as ``require_session``. A bearer request
    that falls short gets 401 with ``WWW-Authenticate: Bearer
    error="insufficient_user_authentication"``, ``max_age`` and ``acr_values``; a browser a
    303 to ``reauth_url`` (default: the middleware's) with ``?next=``, or 401 without one."""
    need = AuthRequirement(max_age, acr)

    def dependency(request: Request) -> AsyncRequestSession:
        st = require_session(request)
        refusal = recent_auth_refusal(st, need, reauth_url or st._cfg.reauth_url, _full_path(request))
        if refusal is not None:
            status, headers, _ = refusal
            keep = ("WWW-Authenticate", "Cache-Control", "Location")
            raise HTTPException(status, "Unauthorized" if status == 401 else "See Other",
                                headers={k: v for k, v in headers if k in keep})
        return st
    return dependency


def require_websocket_session(websocket: WebSocket) -> AsyncRequestSession:
    """For WebSocket endpoints: the handshake's latch state; closed with 1008 (the client sees
    403) when it carries no valid session."""
    st = session_of(websocket)
    if not st.authenticated:
        raise WebSocketException(code=1008)
    return st
