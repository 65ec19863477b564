"""The framework-independent half of the adapters: what latchhttp does to a
request, written once. Each adapter (Flask, Django, ASGI) only translates its
framework's request and response to and from this module.

Flows that call latch (authenticate, login, logout, renew) are generators that
yield the client call they need; :func:`drive` runs them with a sync client and
:func:`adrive` with an async one, so sync and async adapters share every rule.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generator, Iterable, Mapping, Protocol, Sequence
from urllib.parse import quote, urlsplit

from . import csrf
from ._errors import (BadRequest, ConfigError, CSRFRejected, InvalidCredential, InvalidDPoPProof, InvalidToken,
                      LatchError, ProblemError, TooLarge, UnavailableError, UseDPoPNonce)
from ._types import DPoPProof, Issued, Session, Verified

__all__ = ["Config", "RequestSession", "AsyncRequestSession", "AuthRequirement", "SAFE_METHODS", "CSRF_HEADER",
           "CSRF_FIELD"]

log = logging.getLogger("latch_sessions")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
ANON_MAX_AGE = 7200
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_TOKEN_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Longer credentials are refused here, without a call to latch (session tokens
# are under 100 characters; access tokens are capped at 8 KiB like latch's verifier).
_MAX_SESSION_TOKEN = 512
_MAX_ACCESS_TOKEN = 8 << 10
# Answers to a verify that mean "this credential is no good" — latch judged the
# token, not the call: an empty, oversized or malformed token the client sent.
_DEAD = (InvalidCredential, BadRequest, TooLarge)


def _bad_token() -> InvalidToken:
    return InvalidToken(401, "invalid_token", "Invalid token", "malformed credential")


# RFC 9449 §7.1: the algorithms latch accepts in proofs (dpop.Algorithms), for the DPoP challenge.
DPOP_ALGS = "EdDSA Ed25519 ES256 RS256"
MAX_PROOF_SIZE = 8 << 10
_DPOP_REASONS = {  # latch's fixed descriptions (dpop/errors.go), for refusals made here
    "malformed": "the DPoP proof is not a well-formed JWS",
    "bearer": "the token is DPoP-bound and must be sent with the DPoP scheme and a proof",
    "missing": "a DPoP proof is required: the session is bound to a DPoP key",
}


def dpop_refusal(reason: str) -> InvalidDPoPProof:
    """A proof refused here, before any call to latch, shaped like latch's own refusals."""
    desc = _DPOP_REASONS[reason]
    e = InvalidDPoPProof(401, "invalid_dpop_proof", "Invalid DPoP proof", desc)
    e.www_authenticate = f'DPoP algs="{DPOP_ALGS}", error="invalid_dpop_proof", error_description="{desc}"'
    return e


def _visible(v: str) -> bool:
    return all("!" <= c <= "~" and c not in '"\\' for c in v)


@dataclass(frozen=True)
class AuthRequirement:
    """What a sensitive action demands of the user's sign-in (RFC 9470): at most
    ``max_age`` seconds since they authenticated, and/or one of ``acr_values``.
    Checked against the session the middleware loaded: no call to latch."""

    max_age: int | None = None
    acr_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        m = self.max_age
        if hasattr(m, "total_seconds"):
            m = int(m.total_seconds())  # a timedelta
            object.__setattr__(self, "max_age", m)
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ConfigError("latch: max_age is a whole number of seconds, at least 1")
        vals = (self.acr_values,) if isinstance(self.acr_values, str) else tuple(self.acr_values or ())
        if len(vals) > 8 or not all(isinstance(v, str) and 1 <= len(v) <= 128 and _visible(v) for v in vals):
            raise ConfigError("latch: acr values are 1 to 8 strings of 1 to 128 visible ASCII characters "
                              "other than '\"' and '\\'")
        if m is None and not vals:
            raise ConfigError("latch: require max_age, acr, or both")
        object.__setattr__(self, "acr_values", vals)

    def met_by(self, auth_time: datetime | None, acr: str | None, now: datetime | None = None) -> bool:
        """latch's rule (AuthRequirement.Check): a missing auth_time is too old for any max_age."""
        if self.max_age is not None:
            now = now or datetime.now(timezone.utc)
            if auth_time is None or (now - auth_time).total_seconds() > self.max_age:
                return False
        return not self.acr_values or (bool(acr) and acr in self.acr_values)

    def challenge(self) -> str:
        """The RFC 9470 §3 challenge, byte for byte latch's."""
        if self.max_age is not None and self.acr_values:
            desc = "A more recent authentication of another level is required"
        elif self.max_age is not None:
            desc = "A more recent authentication is required"
        else:
            desc = "A different authentication level is required"
        h = f'Bearer error="insufficient_user_authentication", error_description="{desc}"'
        if self.max_age is not None:
            h += f', max_age="{self.max_age}"'
        if self.acr_values:
            h += ', acr_values="' + " ".join(self.acr_values) + '"'
        return h


@dataclass(frozen=True)
class Config:
    """How an adapter treats requests. The defaults are the secure choice;
    every adapter reads the same settings (Flask from ``LATCH_*`` app config,
    Django from ``settings.LATCH``, ASGI from keyword arguments).

    * ``cookie_name``: the session cookie, default ``__Host-latch`` (must keep
      the ``__Host-`` prefix unless ``insecure_cookie_for_development_only``);
      the anonymous CSRF cookie is this name + ``-csrf``.
    * ``same_site``: ``Lax`` (default) or ``Strict``.
    * ``insecure_cookie_for_development_only``: drop ``Secure`` (and then the
      ``__Host-`` prefix is refused). Never in production; browsers treat
      http://localhost as secure, so you rarely need it.
    * ``trusted_origins``: other origins (``https://app.example.com``) allowed
      to send unsafe requests.
    * ``anonymous_csrf_exempt``: paths whose unsafe requests without a session
      need no anonymous CSRF token (webhooks that authenticate themselves).
      Never a login form.
    * ``bearer``: ``"off"`` (default: cookies only), ``"online"`` (verify
      ``Authorization: Bearer`` access tokens with latch on every request) or
      ``"offline"`` (verify them locally against latch's JWKS with PyJWT).
    * ``login_url``: where ``login_required`` sends browsers without a session
      (default: answer 401).
    * ``reauth_url``: where ``require_recent_auth`` sends browsers whose
      sign-in is too old or too weak (default: answer 401).
    * ``public_origin``: the ``scheme://host[:port]`` clients address when a
      proxy rewrites it (TLS terminated in front of the app): the URL a DPoP
      proof must name is this origin + the request's path. Default: the
      request's own scheme and Host.
    """

    cookie_name: str = "__Host-latch"
    same_site: str = "Lax"
    insecure_cookie_for_development_only: bool = False
    trusted_origins: Sequence[str] = ()
    anonymous_csrf_exempt: Sequence[str] = ()
    bearer: str = "off"
    login_url: str | None = None
    reauth_url: str | None = None
    public_origin: str | None = None

    def __post_init__(self) -> None:
        name = self.cookie_name
        if not isinstance(name, str) or not _TOKEN_NAME.fullmatch(name):
            raise ConfigError("latch: cookie_name is not a valid cookie name (RFC 6265 token)")
        prefixed = name.lower().startswith("__host-") or name.lower().startswith("__secure-")
        if prefixed and self.insecure_cookie_for_development_only:
            raise ConfigError("latch: browsers drop __Host- and __Secure- cookies that are not Secure; use a cookie_name "
                              "without the prefix for plain-HTTP development, or leave insecure_cookie_for_development_only "
                              "off: http://localhost is a secure context, so Secure cookies already work there")
        if self.same_site not in ("Lax", "Strict"):
            raise ConfigError("latch: same_site must be 'Lax' or 'Strict'")
        if self.bearer not in ("off", "online", "offline"):
            raise ConfigError("latch: bearer must be 'off', 'online' or 'offline'")
        origins = []
        for o in self.trusted_origins:
            u = urlsplit(o)
            if u.scheme not in ("http", "https") or not u.netloc or u.path or u.query or u.fragment:
                raise ConfigError(f"latch: trusted_origins: {o!r} is not an origin of the form scheme://host[:port]")
            origins.append(f"{u.scheme}://{u.netloc}".lower())
        object.__setattr__(self, "trusted_origins", tuple(origins))
        if self.public_origin is not None:
            u = urlsplit(self.public_origin)
            if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query or u.fragment:
                raise ConfigError("latch: public_origin must be an origin of the form scheme://host[:port]")
            object.__setattr__(self, "public_origin", f"{u.scheme}://{u.netloc}")
        object.__setattr__(self, "anonymous_csrf_exempt", tuple(self.anonymous_csrf_exempt))

    @property
    def anon_cookie_name(self) -> str:
        return self.cookie_name + "-csrf"

    def _attrs(self) -> str:
        return "; HttpOnly" + ("" if self.insecure_cookie_for_development_only else "; Secure") + \
            f"; SameSite={self.same_site}"

    # Set-Cookie values, attribute for attribute what Go's http.Cookie writes for latchhttp.
    def session_cookie(self, token: str, expires_at: datetime) -> str:
        # Like latchhttp, the cookie lives until the session's absolute deadline (at least a second).
        max_age = max(1, int((expires_at - datetime.now(timezone.utc)).total_seconds()))
        return f"{self.cookie_name}={token}; Path=/; Max-Age={max_age}{self._attrs()}"

    def expired_cookie(self, name: str) -> str:
        return f"{name}=; Path=/; Expires={_EPOCH}; Max-Age=0{self._attrs()}"

    def anon_cookie(self, value: str) -> str:
        return f"{self.anon_cookie_name}={value}; Path=/; Max-Age={ANON_MAX_AGE}{self._attrs()}"

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any], prefix: str = "") -> "Config":
        """Build from a mapping such as Flask's app.config (prefix "LATCH_") or settings.LATCH."""
        kw = {}
        for f in ("cookie_name", "same_site", "insecure_cookie_for_development_only", "trusted_origins",
                  "anonymous_csrf_exempt", "bearer", "login_url", "reauth_url", "public_origin"):
            key = prefix + f.upper() if prefix else f
            if key in m:
                kw[f] = m[key]
        return cls(**kw)


class Request(Protocol):
    """What an adapter tells the core about a request."""

    method: str
    path: str

    def header(self, name: str) -> str | None: ...  # lower-case name; the first value
    def cookie_headers(self) -> Iterable[str]: ...
    def client_ip(self) -> str | None: ...
    def dpop_headers(self) -> list[str]: ...  # every DPoP header value, for "exactly one"
    def url(self) -> str: ...  # scheme://host + escaped path, no query: what a DPoP proof names (htu)


def read_cookie(headers: Iterable[str], name: str) -> str | None:
    """The first cookie called name, as latchhttp reads it (a __Host- cookie cannot be planted by another host).

    Found with str.find rather than by splitting every pair: this runs on every request."""
    key = name + "="
    for line in headers:
        i = line.find(key)
        while i >= 0:
            j = i - 1
            while j >= 0 and line[j].isspace():
                j -= 1
            if j < 0 or line[j] == ";":  # the name begins a cookie-pair
                end = line.find(";", i)
                v = line[i + len(key):end if end >= 0 else len(line)].rstrip()
                if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                    v = v[1:-1]
                return v
            i = line.find(key, i + 1)
    return None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or len(authorization) < 7 or authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip()


def auth_token(authorization: str | None) -> tuple[str, str] | None:
    """("Bearer" or "DPoP", token) of an Authorization header with either scheme, as latchhttp reads it."""
    if not authorization:
        return None
    head = authorization[:7].lower()
    if head == "bearer ":
        return "Bearer", authorization[7:].strip()
    if head[:5] == "dpop ":
        return "DPoP", authorization[5:].strip()
    return None


def same_origin(req: Request, trusted: Sequence[str]) -> bool:
    """Go's net/http.CrossOriginProtection.Check: Sec-Fetch-Site, else Origin against Host."""
    origin = req.header("origin")
    site = req.header("sec-fetch-site")
    if site:
        if site in ("same-origin", "none"):
            return True
        return origin is not None and origin.lower() in trusted
    if not origin:
        return True  # neither header: not a browser; the token layer still applies
    try:
        host = urlsplit(origin).netloc
    except ValueError:
        host = ""
    if host and host == (req.header("host") or ""):
        return True
    return origin.lower() in trusted


def _jkt(claims: Mapping[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) and jkt else None


_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


_ENVIRON_KEYS = {n: _environ_key(n) for n in ("authorization", "cookie", "origin", "sec-fetch-site", "host",
                                              "user-agent", "x-csrf-token", "content-type", "dpop")}


class WSGIRequest:
    """A WSGI request (Flask, Django) as the core sees it, read from the environ directly;
    adapters add form_token."""

    __slots__ = ("env", "method", "path")

    def __init__(self, environ: Mapping[str, Any], path: str) -> None:
        self.env, self.method, self.path = environ, environ.get("REQUEST_METHOD") or "GET", path

    def header(self, name: str) -> str | None:
        return self.env.get(_ENVIRON_KEYS.get(name) or _environ_key(name))

    def cookie_headers(self) -> list[str]:
        c = self.env.get("HTTP_COOKIE")
        return [c] if c else []

    def client_ip(self) -> str | None:
        return self.env.get("REMOTE_ADDR")

    def dpop_headers(self) -> list[str]:
        v = self.env.get("HTTP_DPOP")  # repeated headers arrive joined with ","
        return [v] if v else []

    def url(self) -> str:
        return wsgi_url(self.env)


def wsgi_url(environ: Mapping[str, Any]) -> str:
    """scheme://host + path of a WSGI request (Flask, Django), for a DPoP proof's htu."""
    host = environ.get("HTTP_HOST")
    scheme = environ.get("wsgi.url_scheme", "http")
    if not host:
        host = environ.get("SERVER_NAME", "")
        port = environ.get("SERVER_PORT", "")
        if port and port != ("443" if scheme == "https" else "80"):
            host += ":" + port
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # gunicorn, uWSGI: the path as sent
    if raw and raw.startswith("/"):
        path = raw.split("?", 1)[0]
    else:
        path = quote((environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1"), safe=_PATH_SAFE)
    return f"{scheme}://{host}{path or '/'}"


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWS latch has already verified (online mode): decoded, not checked."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


Op = tuple[str, tuple[Any, ...], dict[str, Any]]
Flow = Generator[Op, Any, Any]


class _Base:
    """The latch state of one request: who it is, and what the response must carry.

    Adapters put it on the request (``g.latch``, ``request.latch``,
    ``request.state.latch``). Read ``session`` (a :class:`Session`, or None),
    ``subject``, ``authenticated``, ``auth`` ("cookie", "bearer" or None);
    render forms with ``csrf_token()``; call ``login``, ``logout``, ``renew``
    and ``revoke_others`` before the response is sent.
    """

    __slots__ = ("_core", "_cfg", "_req", "session", "auth", "claims", "error", "bearer_presented", "_token",
                 "_csrf_src", "_anon_read", "_anon_secret_v", "_anon_cookie_in", "_set_cookies", "_no_store",
                 "_clear_site_data", "_offline_sid", "_offline_sub", "dpop_jkt", "_dpop_nonce")

    def __init__(self, core: "Core", req: Request) -> None:
        self._core = core
        self._cfg = core.config
        self._req = req
        self.session: Session | None = None
        #: "cookie", "bearer" or None.
        self.auth: str | None = None
        #: The access token's claims for bearer requests.
        self.claims: dict[str, Any] | None = None
        #: Why the credentials the request carried did not work (an InvalidCredential), or None.
        self.error: LatchError | None = None
        self.bearer_presented = False
        self._token: str | None = None  # the session token the request carried, or login set
        self._csrf_src: str | None = None  # latch's masking of the session's CSRF key, unmasked when needed
        self._anon_read = False  # the anonymous CSRF cookie is read only when needed
        self._anon_secret_v: bytes | None = None
        self._anon_cookie_in: bool = False
        self._set_cookies: dict[str, str] = {}
        self._no_store = False
        self._clear_site_data = False
        self._offline_sid: str | None = None
        self._offline_sub: str | None = None
        #: For a request authenticated by a DPoP-bound access token and its proof: the key's thumbprint.
        self.dpop_jkt: str | None = None
        self._dpop_nonce: str | None = None  # a DPoP-Nonce from latch, relayed to the client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} auth={self.auth!r} session={self.session_id!r}>"

    @property
    def authenticated(self) -> bool:
        return self.auth is not None

    @property
    def subject(self) -> str | None:
        if self.session is not None:
            return self.session.subject
        return self._offline_sub

    @property
    def session_id(self) -> str | None:
        if self.session is not None:
            return self.session.id
        return self._offline_sid

    @property
    def auth_time(self) -> datetime | None:
        """When the user last proved who they are (the session's, or an offline token's claim)."""
        if self.session is not None:
            return self.session.auth_time
        t = (self.claims or {}).get("auth_time")
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return datetime.fromtimestamp(t, timezone.utc)
        return None

    @property
    def acr(self) -> str | None:
        """How the user authenticated (RFC 9470 acr), or None."""
        if self.session is not None:
            return self.session.acr
        a = (self.claims or {}).get("acr")
        return a if isinstance(a, str) else None

    def meets(self, need: AuthRequirement) -> bool:
        """Whether the request's sign-in is recent and strong enough for need; False without one."""
        return self.authenticated and need.met_by(self.auth_time, self.acr)

    def _read_anon(self) -> None:
        if not self._anon_read:
            self._anon_read = True
            anon = read_cookie(self._req.cookie_headers(), self._cfg.anon_cookie_name)
            self._anon_cookie_in = anon is not None
            self._anon_secret_v = csrf.parse_anon_secret(anon)

    @property
    def _anon_secret(self) -> bytes | None:
        self._read_anon()
        return self._anon_secret_v

    @_anon_secret.setter
    def _anon_secret(self, v: bytes | None) -> None:
        self._read_anon()
        self._anon_secret_v = v

    def _csrf_key(self) -> bytes | None:
        return csrf.unmask(self._csrf_src) if self._csrf_src else None

    def csrf_token(self) -> str:
        """A CSRF token for this request's forms (the hidden ``csrf_token`` field) and scripts
        (the ``X-CSRF-Token`` header): the session's, or for a visitor without a session an
        anonymous one tied to the ``__Host-latch-csrf`` cookie, which this sets. Each call
        returns a different masking; all are valid. "" for bearer requests, which need none.
        The response is marked ``Cache-Control: no-store``."""
        if self.auth == "bearer":
            return ""
        if self.auth == "cookie":
            k = self._csrf_key()
            if k is None:
                return ""
            self._no_store = True
            return csrf.mask(k)
        if self._anon_secret is None:
            self._anon_secret, value = csrf.new_anon_secret()
            self._set_cookies[self._cfg.anon_cookie_name] = self._cfg.anon_cookie(value)
        elif self._cfg.anon_cookie_name not in self._set_cookies:
            # Refresh the cookie to a full Max-Age, as latchhttp does, so the form stays usable.
            value = base64.urlsafe_b64encode(self._anon_secret).rstrip(b"=").decode()
            self._set_cookies[self._cfg.anon_cookie_name] = self._cfg.anon_cookie(value)
        self._no_store = True
        return csrf.mask(csrf.anon_key(self._anon_secret))

    def csrf_field(self) -> str:
        """The hidden form field, as HTML: ``<input type="hidden" name="csrf_token" value="…">``
        (a markupsafe.Markup when markupsafe is installed, so Jinja does not escape it)."""
        html = f'<input type="hidden" name="{CSRF_FIELD}" value="{self.csrf_token()}">'
        try:
            from markupsafe import Markup
        except ImportError:
            return html
        return Markup(html)

    def idle_seconds_left(self) -> int:
        """Seconds until the session's idle (or absolute) deadline; 0 without a session."""
        if self.session is None:
            return 0
        left = (self.session.deadline() - datetime.now(timezone.utc)).total_seconds()
        return max(0, int(left))

    def info(self) -> dict[str, Any]:
        """The session for templates and JSON (a page warning before the idle timeout)."""
        if not self.authenticated:
            return {"authenticated": False, "idle_seconds_left": 0}
        d: dict[str, Any] = {"authenticated": True, "method": self.auth, "session_id": self.session_id,
                             "subject": self.subject}
        if self.session is not None:
            s = self.session
            d.update(auth_time=_iso(s.auth_time), idle_expires_at=_iso(s.idle_expires_at),
                     expires_at=_iso(s.expires_at), idle_seconds_left=self.idle_seconds_left())
        if self.auth == "cookie":
            d["csrf_token"] = self.csrf_token()
        return d

    def response_headers(self) -> list[tuple[str, str]]:
        """The headers this request's response must carry: Vary always; Set-Cookie,
        Cache-Control: no-store and Clear-Site-Data when the session changed."""
        h = [("Vary", "Cookie, Authorization")]
        h += [("Set-Cookie", c) for c in self._set_cookies.values()]
        if self._no_store or self._set_cookies:
            h.append(("Cache-Control", "no-store"))
        if self._clear_site_data:
            h.append(("Clear-Site-Data", '"cookies"'))
        if self._dpop_nonce:
            h.append(("DPoP-Nonce", self._dpop_nonce))
        return h

    # -- flows ------------------------------------------------------------

    def _client_kw(self) -> dict[str, Any]:
        return {"ip": self._req.client_ip(), "user_agent": self._req.header("user-agent")}

    def _adopt(self, iss: Issued, csrf_token: str | None) -> None:
        self.session, self.auth, self.claims, self.error = iss.session, "cookie", None, None
        self._offline_sid = self._offline_sub = None
        self._token = iss.session_token
        self._csrf_src = csrf_token
        self._set_cookies[self._cfg.cookie_name] = self._cfg.session_cookie(iss.session_token, iss.session.expires_at)
        self._no_store = True
        self._clear_site_data = False

    def _end_anon(self) -> None:
        self._read_anon()
        if self._anon_cookie_in or self._cfg.anon_cookie_name in self._set_cookies:
            self._set_cookies[self._cfg.anon_cookie_name] = self._cfg.expired_cookie(self._cfg.anon_cookie_name)
        self._anon_secret = None

    def _login(self, subject: str, data: Mapping[str, Any] | None, claims: Mapping[str, Any] | None,
               acr: str | None, amr: Sequence[str] | None, auth_time: datetime | None) -> Flow:
        # Fixation: the token the request carried (valid or not) is revoked by latch.
        iss = yield ("create_session", (subject,), dict(
            data=data, claims=claims, acr=acr, amr=amr, auth_time=auth_time, replace_session_token=self._token,
            **self._client_kw()))
        tok = iss.csrf_token
        if tok is None:
            v = yield ("verify_session", (iss.session_token,), self._client_kw())
            tok = v.csrf_token
        self._adopt(iss, tok)
        self._end_anon()
        return iss

    def _logout(self) -> Flow:
        sid = self.session_id
        if sid is not None:
            yield ("revoke_session", (sid,), {})
        self.session, self.auth, self.claims, self._token, self._csrf_src = None, None, None, None, None
        self._offline_sid = self._offline_sub = None
        self._set_cookies[self._cfg.cookie_name] = self._cfg.expired_cookie(self._cfg.cookie_name)
        self._no_store = True
        self._clear_site_data = True
        return None

    def _renew(self, claims: Mapping[str, Any] | None, auth_time: datetime | None, acr: str | None = None,
               amr: Sequence[str] | None = None) -> Flow:
        sid = self._require("renew")
        iss = yield ("renew_session", (sid,), dict(claims=claims, auth_time=auth_time, acr=acr, amr=amr))
        if self.auth == "cookie":
            v = yield ("verify_session", (iss.session_token,), self._client_kw())
            self._adopt(iss, v.csrf_token)
        return iss

    def _revoke_others(self) -> Flow:
        sid = self._require("revoke_others")
        n = yield ("revoke_subject", (self.subject,), dict(except_session=sid))
        return n

    def _require(self, what: str) -> str:
        sid = self.session_id
        if sid is None:
            raise LatchError(f"latch: {what} needs an authenticated request")
        return sid


class RequestSession(_Base):
    """The latch state of a request in a sync app (Flask, Django). See :class:`_Base`."""

    __slots__ = ()

    def login(self, subject: str, *, data: Mapping[str, Any] | None = None,
              claims: Mapping[str, Any] | None = None, acr: str | None = None,
              amr: Sequence[str] | None = None, auth_time: datetime | None = None) -> Issued:
        """Start a session for a user your code has just authenticated and set its cookie.

        Fixation-safe: any session token the request carried is revoked. The
        anonymous CSRF cookie is expired; from now on the session's CSRF token
        counts. ``acr``, ``amr`` and ``auth_time`` (default now) record how and when
        the user proved who they are, for require_recent_auth. Returns the Issued
        (its refresh and access tokens are for API clients)."""
        return drive(self._core, self._req, self._login(subject, data, claims, acr, amr, auth_time))

    def logout(self) -> None:
        """Revoke the session (cookie, refresh and access tokens alike), expire the cookie with
        the same attributes and send ``Clear-Site-Data: "cookies"``. Serve it on POST."""
        drive(self._core, self._req, self._logout())

    def renew(self, *, claims: Mapping[str, Any] | None = None, auth_time: datetime | None = None,
              acr: str | None = None, amr: Sequence[str] | None = None) -> Issued:
        """New tokens after a privilege change; every old token stops working, the cookie is replaced.
        After a re-authentication (step-up) pass ``auth_time`` (default now), ``acr`` and ``amr``."""
        return drive(self._core, self._req, self._renew(claims, auth_time, acr, amr))

    def revoke_others(self) -> int:
        """Sign the user out everywhere else; returns how many sessions were revoked."""
        return drive(self._core, self._req, self._revoke_others())


class AsyncRequestSession(_Base):
    """The latch state of a request in an ASGI app: the same as RequestSession, awaited."""

    __slots__ = ()

    async def login(self, subject: str, *, data: Mapping[str, Any] | None = None,
                    claims: Mapping[str, Any] | None = None, acr: str | None = None,
                    amr: Sequence[str] | None = None, auth_time: datetime | None = None) -> Issued:
        return await adrive(self._core, self._req, self._login(subject, data, claims, acr, amr, auth_time))

    async def logout(self) -> None:
        await adrive(self._core, self._req, self._logout())

    async def renew(self, *, claims: Mapping[str, Any] | None = None, auth_time: datetime | None = None,
                    acr: str | None = None, amr: Sequence[str] | None = None) -> Issued:
        return await adrive(self._core, self._req, self._renew(claims, auth_time, acr, amr))

    async def revoke_others(self) -> int:
        return await adrive(self._core, self._req, self._revoke_others())


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Core:
    """One adapter's shared state: config, the client (sync or async), the
    optional cache and offline verifier. Built by the adapters."""

    def __init__(self, config: Config, client: Any, *, cache: Any = None, offline: Any = None) -> None:
        self.config = config
        self.client = client
        self.cache = cache
        self.offline = offline
        if config.bearer == "offline" and offline is None:
            raise ConfigError("latch: bearer='offline' needs an offline verifier (PyJWT: apt-get install python3-jwt)")

    @classmethod
    def build(cls, config: Config, client: Any, *, cache: bool = True) -> "Core":
        """A Core for client (a Client or an AsyncClient), with cached validation (docs/protocol.md §4)
        unless cache is False, and an offline verifier if config.bearer is "offline"."""
        from ._client import AsyncClient
        c = None
        if cache:
            from .cache import AsyncCache, Cache
            c = AsyncCache(client) if isinstance(client, AsyncClient) else Cache(client)
        offline = None
        if config.bearer == "offline":
            from .jwt import AsyncOfflineVerifier, OfflineVerifier
            offline = (AsyncOfflineVerifier if isinstance(client, AsyncClient) else OfflineVerifier)(client, cache=c)
        return cls(config, client, cache=c, offline=offline)

    def target(self, name: str) -> Callable[..., Any]:
        if name == "verify_session" and self.cache is not None:
            return self.cache.verify_session
        if name == "offline_check":
            return self.offline.check
        return getattr(self.client, name)

    def htu(self, req: Request) -> str:
        """The URL a DPoP proof for this request must name."""
        if self.config.public_origin:
            return self.config.public_origin + (urlsplit(req.url()).path or "/")
        return req.url()

    def bearer(self, st: _Base, scheme: str, tok: str) -> Flow:
        """Authenticate by an access token: Bearer, or DPoP with its proof (RFC 9449 §7), as latchhttp
        does. A bound token (cnf.jkt) is refused as Bearer; a DPoP-scheme token must be bound. Proofs
        are always checked by latch, online, even in offline mode: its jti replay cache is shared by
        every replica and worker, which a cache in this process could not be."""
        req, cfg = st._req, self.config
        st.bearer_presented = True
        if not tok or len(tok) > _MAX_ACCESS_TOKEN:
            raise _bad_token()
        relay = None
        if scheme == "DPoP":
            proofs = req.dpop_headers()
            if not proofs:
                raise dpop_refusal("missing")
            if len(proofs) > 1 or "," in proofs[0] or len(proofs[0]) > MAX_PROOF_SIZE:
                raise dpop_refusal("malformed")  # RFC 9449 §4.3: exactly one DPoP header
            relay = DPoPProof(proofs[0].strip(), req.method.upper(), self.htu(req))
        # Refuse a scheme the token's binding rules out before any call: refusing on unverified claims is safe.
        bound = _jkt(jwt_claims(tok))
        if bound and relay is None:
            raise dpop_refusal("bearer")
        if relay is not None and not bound:
            raise dpop_refusal("missing")
        online = cfg.bearer == "online" or relay is not None
        claims: dict[str, Any] = {}
        if not online:
            claims, online = yield ("offline_check", (tok,), {})
            st._offline_sid, st._offline_sub = claims.get("sid"), claims.get("sub")
        if online:
            v = yield ("verify_access_token", (tok,), dict(st._client_kw(), dpop=relay))
            st.session = v.session
            st._dpop_nonce = v.dpop_nonce
            claims = jwt_claims(tok)
        st.claims, st.auth, st.dpop_jkt = claims, "bearer", bound
        return st

    def cached(self, st: _Base) -> bool:
        """The hot path, without a flow: a safe request whose cookie's validation is in the cache
        (and no Authorization header to judge it by instead). True if st is filled; else run
        authenticate, which decides every other case the same way."""
        req = st._req
        if self.cache is None or req.method not in SAFE_METHODS or getattr(req, "websocket", False) or \
                (self.config.bearer != "off" and req.header("authorization") is not None):
            return False
        tok = read_cookie(req.cookie_headers(), self.config.cookie_name)
        if not tok or len(tok) > _MAX_SESSION_TOKEN:
            return False
        v = self.cache.peek(tok)
        if v is None:
            return False
        st._token, st.session, st.auth, st._csrf_src = tok, v.session, "cookie", v.csrf_token
        return True

    def authenticate(self, st: _Base) -> Flow:
        """Fill st from its request, as latchhttp's middleware does; raise CSRFRejected or
        UnavailableError when the request must be refused (403, 503)."""
        req, cfg = st._req, self.config
        # A WebSocket handshake is a GET that browsers send cross-site with cookies: it gets the
        # origin check of unsafe requests (cross-site WebSocket hijacking), not the token check.
        ws = getattr(req, "websocket", False)
        unsafe = ws or req.method.upper() not in SAFE_METHODS
        if cfg.bearer != "off":
            at = auth_token(req.header("authorization"))
            if at is not None:
                # A bearer request is judged by its token alone: never the cookie, never CSRF.
                try:
                    yield from self.bearer(st, *at)
                except _DEAD as e:
                    st.session, st.auth, st.claims, st.error = None, None, None, e
                    st._offline_sid = st._offline_sub = None
                    st._dpop_nonce = e.dpop_nonce  # relayed whatever the refusal (docs/protocol.md §5)
                except UnavailableError:
                    raise
                except ProblemError as e:
                    raise _fail_closed(e) from None
                return st
        tok = read_cookie(req.cookie_headers(), cfg.cookie_name)
        st._token = tok
        if unsafe and not same_origin(req, cfg.trusted_origins):
            # Layer one, before any call to latch, with or without a session (login CSRF).
            raise CSRFRejected(reason="cross-origin")
        if tok is not None:
            try:
                if not tok or len(tok) > _MAX_SESSION_TOKEN:
                    raise _bad_token()
                # The hot path: a cached answer is taken here, without a round through drive().
                v = self.cache.peek(tok) if self.cache is not None else None
                if v is None:
                    v = yield ("verify_session", (tok,), st._client_kw())
            except _DEAD as e:
                # A dead cookie: go on unauthenticated and delete it.
                st.error, st._token = e, None
                st._set_cookies[cfg.cookie_name] = cfg.expired_cookie(cfg.cookie_name)
            except UnavailableError:
                raise
            except ProblemError as e:
                raise _fail_closed(e) from None
            else:
                st.session, st.auth = v.session, "cookie"
                st._csrf_src = v.csrf_token
        if unsafe and not ws:
            # Layer two: the synchronizer token, the session's or else the anonymous one.
            got = req.header(CSRF_HEADER) or (yield ("form_token", (), {}))
            if st.auth == "cookie":
                key = st._csrf_key()
            elif req.path in cfg.anonymous_csrf_exempt:
                return st
            else:
                key = csrf.anon_key(st._anon_secret) if st._anon_secret is not None else None
            if not got:
                raise CSRFRejected(reason="missing-token")
            if not csrf.check(got, key):
                raise CSRFRejected(reason="invalid-token")
        return st


def _fail_closed(e: ProblemError) -> UnavailableError:
    # latch refused the call itself (a wrong API key, a bug): nobody is authenticated.
    log.error("latch: session validation failed: %s %s; answering 503", e.status, e.code)
    return UnavailableError(f"latch: validation failed ({e.status} {e.code})")


def drive(core: Core, req: Any, flow: Flow) -> Any:
    """Run a flow with a sync client."""
    try:
        op = next(flow)
        while True:
            name, args, kw = op
            try:
                res = req.form_token() if name == "form_token" else core.target(name)(*args, **kw)
            except Exception as e:
                op = flow.throw(e)
            else:
                op = flow.send(res)
    except StopIteration as stop:
        return stop.value


async def adrive(core: Core, req: Any, flow: Flow) -> Any:
    """Run a flow with an async client."""
    try:
        op = next(flow)
        while True:
            name, args, kw = op
            try:
                res = await (req.form_token() if name == "form_token" else core.target(name)(*args, **kw))
            except Exception as e:
                op = flow.throw(e)
            else:
                op = flow.send(res)
    except StopIteration as stop:
        return stop.value


def error_response(err: BaseException, st: _Base | None, bearer_enabled: bool) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for a refused request, like latchhttp's DefaultErrorHandler:
    the standard text only, never the error's own."""
    if isinstance(err, CSRFRejected):
        status, text = 403, "Forbidden"
    elif isinstance(err, UnavailableError):
        status, text = 503, "Service Unavailable"
    else:
        status, text = 401, "Unauthorized"
    h = list(st.response_headers()) if st is not None else [("Vary", "Cookie, Authorization")]
    h = [(k, v) for k, v in h if k != "Cache-Control"]
    h += [("Cache-Control", "no-store"), ("Content-Type", "text/plain; charset=utf-8"),
          ("X-Content-Type-Options", "nosniff")]
    if status == 503:
        h.append(("Retry-After", "5"))
    if status == 401 and bearer_enabled:
        h.append(("WWW-Authenticate", www_authenticate(st)))
    return status, h, (text + "\n").encode()


def www_authenticate(st: _Base | None) -> str:
    """The challenge of a 401, as latchhttp's RequireSession writes it: the DPoP challenge
    (RFC 9449 §7.1) for a refused proof, else Bearer with error="invalid_token" when a
    token was presented."""
    if st is not None and isinstance(st.error, InvalidDPoPProof):
        return st.error.www_authenticate or f'DPoP algs="{DPOP_ALGS}", error="{st.error.code}"'
    if st is not None and st.bearer_presented:
        return 'Bearer error="invalid_token"'
    return "Bearer"


def recent_auth_refusal(st: _Base, need: AuthRequirement, reauth_url: str | None,
                        next_path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """None when st's sign-in meets need; else the answer latchhttp.RequireRecentAuth gives an
    authenticated request that does not (call it after the login_required checks): for a bearer
    request 401 with the RFC 9470 challenge; for a browser a redirect to reauth_url (with
    ?next=), or without one 401 without a challenge."""
    if need.met_by(st.auth_time, st.acr):
        return None
    h = [("Cache-Control", "no-store")]
    if st.auth != "bearer" and reauth_url:
        from urllib.parse import quote
        sep = "&" if "?" in reauth_url else "?"
        return 303, h + [("Location", reauth_url + sep + "next=" + quote(next_path, safe="/"))], b""
    h += [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
    if st.auth == "bearer":
        h.append(("WWW-Authenticate", need.challenge()))
    return 401, h, b"Unauthorized\n"
