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
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from ._web import AsyncRequestSession
from .asgi import session_of, unauthorized

__all__ = ["require_session", "latch_state"]


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
