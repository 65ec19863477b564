"""The seed's Flask app, on latch: login, a token refresh endpoint, logout,
CSRF on every form and an idle-timeout warning — and no session code of its own.

What the hand-written version had, and what replaced it:

* TokenManager signing HS256 JWTs with a secret from the environment
  -> latch issues the session (an opaque __Host-latch cookie for the browser)
     and, for API clients, short-lived EdDSA access tokens plus single-use
     refresh tokens, all bound to one server-side record;
* refresh tokens that never rotated -> POST /api/token/refresh rotates them;
  a stolen, already-used refresh token revokes the whole session;
* no server-side logout -> POST /logout revokes the session everywhere
  (cookie, refresh and access tokens alike);
* CSRF -> both of latch's layers on every POST, including the login form;
* idle timeout -> latch's idle deadline, shown on the page, which signs the
  user out when it runs out;
* "sign out everywhere else" asks for the password again when the sign-in is
  older than five minutes (step-up, RFC 9470), then renews the session.

Run it (latch serve on 127.0.0.1:8080, its API key in LATCH_API_KEY):

    LATCH_URL=http://127.0.0.1:8080 LATCH_API_KEY=… /usr/bin/python3 clients/python/examples/flask_app.py

and open http://localhost:5000 (a secure context, so the __Host- cookie works
over plain HTTP there). Users: alice and bob, password "correct horse".
"""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime, timezone

from flask import Flask, abort, g, jsonify, redirect, render_template_string, request

import latch_sessions as ls
from latch_sessions.flask import Latch, login_required, require_recent_auth

app = Flask(__name__)
app.config["LATCH_URL"] = os.environ.get("LATCH_URL", "http://127.0.0.1:8080")
app.config["LATCH_LOGIN_URL"] = "/login"
app.config["LATCH_REAUTH_URL"] = "/reauth"  # where require_recent_auth sends a browser whose sign-in is too old
# The token endpoints are for non-browser clients without a session, and set no cookie:
# they need no anonymous CSRF token (a cross-site browser post is still refused).
app.config["LATCH_ANONYMOUS_CSRF_EXEMPT"] = ["/api/token", "/api/token/refresh"]
latch = Latch(app)

# The app's own user store. (Passwords here are salted SHA-256 only to keep the
# example short: use argon2 or bcrypt in an application.)
_SALT = b"example-salt"
USERS = {u: hashlib.sha256(_SALT + b"correct horse").hexdigest() for u in ("alice", "bob")}


def check_password(user: str, password: str) -> bool:
    want = USERS.get(user)
    got = hashlib.sha256(_SALT + password.encode()).hexdigest()
    return want is not None and hmac.compare_digest(want, got)


PAGE = """<!doctype html>
<title>latch + Flask</title>
{% if latch.authenticated %}
  <p>Signed in as <b>{{ latch.subject }}</b>.
     Signed out after <span id="left">{{ latch.idle_seconds_left() }}</span> s without activity.</p>
  <form method="post" action="/logout">{{ csrf_field() }}<button>Sign out</button></form>
  <form method="post" action="/logout-others">{{ csrf_field() }}<button>Sign out everywhere else</button></form>
  <script>
    // The idle-timeout countdown: when it runs out, latch has ended the session.
    let left = {{ latch.idle_seconds_left() }};
    setInterval(() => {
      left -= 1;
      document.getElementById("left").textContent = Math.max(left, 0);
      if (left <= 0) location.href = "/login?expired=1";
    }, 1000);
  </script>
{% else %}
  <p><a href="/login">Sign in</a></p>
{% endif %}
"""

LOGIN = """<!doctype html>
<title>Sign in</title>
{% if expired %}<p>Your session timed out. Please sign in again.</p>{% endif %}
{% if error %}<p>Wrong user or password.</p>{% endif %}
<form method="post" action="/login">
  {{ csrf_field() }}
  <input name="user" autocomplete="username"> <input name="password" type="password" autocomplete="current-password">
  <button>Sign in</button>
</form>
"""

REAUTH = """<!doctype html>
<title>Confirm it is you</title>
<p>{% if error %}Wrong password. {% endif %}Please enter your password again to continue.</p>
<form method="post" action="/reauth">
  {{ csrf_field() }}
  <input name="password" type="password" autocomplete="current-password">
  <button>Confirm</button>
</form>
"""


@app.get("/")
def index():
    return render_template_string(PAGE)


@app.get("/login")
def login_form():
    return render_template_string(LOGIN, expired="expired" in request.args, error=False)


@app.post("/login")
def login():
    # latch has already checked this form's CSRF token (the anonymous one of the login page).
    user, password = request.form.get("user", ""), request.form.get("password", "")
    if not check_password(user, password):
        return render_template_string(LOGIN, expired=False, error=True), 401
    # Revokes any session the browser carried (fixation), sets the cookie, records how the user signed in.
    g.latch.login(user, acr="pwd", amr=["pwd"])
    return redirect("/", 303)


@app.post("/logout")
def logout():
    g.latch.logout()
    return redirect("/login", 303)


@app.post("/logout-others")
@require_recent_auth(max_age=300)  # signed in more than 5 minutes ago: to /reauth first
def logout_others():
    g.latch.revoke_others()
    return redirect("/", 303)


@app.get("/reauth")
@login_required
def reauth_form():
    return render_template_string(REAUTH, error=False)


@app.post("/reauth")
@login_required
def reauth():
    if not check_password(g.latch.subject, request.form.get("password", "")):
        return render_template_string(REAUTH, error=True), 401
    # New tokens that say the user proved who they are just now.
    g.latch.renew(auth_time=datetime.now(timezone.utc), acr="pwd", amr=["pwd"])
    return redirect("/", 303)


@app.get("/session")
@login_required
def session_info():
    """What the page polls to warn before the idle timeout (JSON, no secret but the masked CSRF token)."""
    return jsonify(g.latch.info())


# --- the API part: access and refresh tokens for non-browser clients -------------

@app.post("/api/token")
def api_token():
    """Exchange a password for an access token and a refresh token (a mobile app, a CLI)."""
    body = request.get_json(silent=True) or {}
    if not check_password(str(body.get("user", "")), str(body.get("password", ""))):
        abort(401)
    iss = latch.client.create_session(body["user"], ip=request.remote_addr, user_agent=request.user_agent.string)
    return jsonify(access_token=iss.access_token, refresh_token=iss.refresh_token, token_type=iss.token_type,
                   expires_in=iss.expires_in)


@app.post("/api/token/refresh")
def api_refresh():
    """Rotate a refresh token. A rotated one presented again is treated as theft: the session is revoked."""
    body = request.get_json(silent=True) or {}
    try:
        r = latch.client.refresh(str(body.get("refresh_token", "")))
    except ls.InvalidCredential as e:
        return jsonify(error=e.code), 401
    return jsonify(access_token=r.access_token, refresh_token=r.refresh_token, token_type=r.token_type,
                   expires_in=r.expires_in)


if __name__ == "__main__":
    app.run(host="localhost", port=5000)
