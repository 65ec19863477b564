"""A FastAPI API on latch with access and refresh tokens.

Clients sign in with a password (POST /token) and get a short-lived access
token (EdDSA JWT, sent as ``Authorization: Bearer``) and a single-use refresh
token (POST /token/refresh rotates it; presenting a used one again revokes the
session as stolen). Access tokens are verified offline with PyJWT against
latch's JWKS, and — through latch's event stream — a revoked session's tokens
are refused at once, not when they expire. POST /logout ends the session for
every token it issued.

Run it (latch serve on 127.0.0.1:8080, its API key in LATCH_API_KEY):

    LATCH_URL=http://127.0.0.1:8080 LATCH_API_KEY=… /usr/bin/python3 -m uvicorn \\
        --app-dir clients/python/examples fastapi_api:app

    curl -s localhost:8000/token -d '{"user":"alice","password":"correct horse"}' -H 'Content-Type: application/json'
"""

from __future__ import annotations

import hashlib
import hmac
import os

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel

import latch_sessions as ls
from latch_sessions.asgi import LatchMiddleware
from latch_sessions.fastapi import require_session

latch = ls.AsyncClient(os.environ.get("LATCH_URL", "http://127.0.0.1:8080"))
app = FastAPI(title="latch + FastAPI")
# bearer="offline": verify access tokens locally (online while the event stream is not live).
# /token and /token/refresh are called without a session by non-browser clients and set no
# cookie, so they need no anonymous CSRF token; a cross-site browser post is still refused.
app.add_middleware(LatchMiddleware, client=latch, bearer="offline",
                   anonymous_csrf_exempt=["/token", "/token/refresh"])

_SALT = b"example-salt"
USERS = {u: hashlib.sha256(_SALT + b"correct horse").hexdigest() for u in ("alice", "bob")}


class Login(BaseModel):
    user: str
    password: str


class Refresh(BaseModel):
    refresh_token: str


def _check(user: str, password: str) -> bool:
    want = USERS.get(user)
    return want is not None and hmac.compare_digest(want, hashlib.sha256(_SALT + password.encode()).hexdigest())


@app.post("/token")
async def token(body: Login):
    if not _check(body.user, body.password):
        raise HTTPException(401, "wrong user or password")
    iss = await latch.create_session(body.user, claims={"role": "user"})
    return {"access_token": iss.access_token, "refresh_token": iss.refresh_token,
            "token_type": iss.token_type, "expires_in": iss.expires_in}


@app.post("/token/refresh")
async def refresh(body: Refresh):
    try:
        r = await latch.refresh(body.refresh_token)
    except ls.InvalidCredential as e:  # invalid_token, expired, revoked, refresh_reuse
        raise HTTPException(401, e.code) from None
    return {"access_token": r.access_token, "refresh_token": r.refresh_token,
            "token_type": r.token_type, "expires_in": r.expires_in}


@app.get("/me")
async def me(session=Depends(require_session)):
    return {"user": session.subject, "session_id": session.session_id, "role": (session.claims or {}).get("role")}


@app.get("/devices")
async def devices(session=Depends(require_session)):
    return [{"id": s.id, "last_seen_at": s.last_seen_at.isoformat(), "user_agent": s.user_agent,
             "current": s.id == session.session_id} for s in await latch.list_sessions(session.subject)]


@app.post("/logout", status_code=204)
async def logout(session=Depends(require_session)):
    await session.logout()  # revokes the session: its refresh and access tokens stop working
