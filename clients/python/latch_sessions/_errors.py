"""The exceptions of latch_sessions, all rooted at :class:`LatchError`.

::

    LatchError
    ├── ConfigError                      a setting refused at construction (also a ValueError)
    ├── UnavailableError                 latch could not answer: fail closed (503)
    │   ├── TransportError               no answer at all
    │   │   ├── ConnectError             the connection failed
    │   │   ├── Timeout                  no answer within the timeout
    │   │   └── ProtocolError            an answer that is not HTTP/JSON latch speaks
    │   └── StoreUnavailable             store_unavailable (503)
    └── ProblemError                     any problem document, with .status and .code
        ├── BadRequest                   bad_request (400)
        ├── MethodNotAllowed             method_not_allowed (405)
        ├── UnsupportedMediaType         unsupported_media_type (415)
        ├── Unauthorized                 unauthorized (401): the API key
        ├── InvalidCredential            the token presented is no good (401)
        │   ├── InvalidToken             invalid_token
        │   ├── Expired                  expired
        │   ├── Revoked                  revoked
        │   ├── RefreshReuse             refresh_reuse
        │   ├── InvalidDPoPProof         invalid_dpop_proof
        │   │   └── UseDPoPNonce         use_dpop_nonce, with .nonce
        │   └── InsufficientUserAuthentication   insufficient_user_authentication,
        │                                with .max_age and .acr_values
        ├── CSRFRejected                 csrf (403)
        ├── NotFound                     not_found (404)
        ├── Conflict                     conflict (409, 412)
        ├── TooLarge                     too_large (413)
        ├── RateLimited                  rate_limited (429), with .retry_after
        └── InternalError                internal (500), and any unknown code

Branch on the class or on ``.code``; ``.detail`` is for people. No exception
ever carries a token or the API key: messages are built from the status, the
code and latch's detail (which never quotes a token), and anything in them that
looks like a latch token or a JWT is redacted all the same.
"""

from __future__ import annotations

import re

__all__ = [
    "LatchError", "ConfigError", "UnavailableError", "TransportError", "ConnectError", "Timeout",
    "ProtocolError", "ProblemError", "BadRequest", "MethodNotAllowed", "UnsupportedMediaType",
    "Unauthorized", "InvalidCredential", "InvalidToken", "Expired", "Revoked", "RefreshReuse",
    "InvalidDPoPProof", "UseDPoPNonce", "InsufficientUserAuthentication", "CSRFRejected", "NotFound",
    "Conflict", "TooLarge", "RateLimited", "StoreUnavailable", "InternalError", "problem_error",
    "challenge_params",
]

# Latch tokens (lts_, ltr_, ltk_…), JWS compact serializations and Bearer
# credentials; redacted from every message as a second line of defence.
_SECRETS = re.compile(
    r"\blt[a-z]_[A-Za-z0-9_-]{8,}|\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*|(?i:bearer)\s+\S+"
)


def redact(text: str) -> str:
    """Return text with anything that looks like a token replaced by [redacted]."""
    return _SECRETS.sub("[redacted]", text)


class LatchError(Exception):
    """The base of every exception latch_sessions raises."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ConfigError(LatchError, ValueError):
    """A setting was refused when a client or an adapter was built; the message says why."""


class UnavailableError(LatchError):
    """latch could not give an answer; nothing was authenticated. Adapters answer 503."""


class TransportError(UnavailableError):
    """The request got no usable answer from latch."""


class ConnectError(TransportError):
    """The connection to latch could not be made or broke."""


class Timeout(TransportError):
    """latch did not answer within the client's timeout."""


class ProtocolError(TransportError):
    """latch's answer was not the HTTP or JSON expected."""


class ProblemError(LatchError):
    """latch answered with an RFC 9457 problem document.

    ``status`` is the HTTP status, ``code`` latch's stable code (see
    api/problems.md), ``title`` and ``detail`` are for people.
    """

    default_code = "internal"
    #: latch's WWW-Authenticate challenge for this refusal (RFC 6750, 9449, 9470), or None.
    www_authenticate: str | None = None
    #: latch's DPoP-Nonce (RFC 9449 §8) for a call that carried a proof, when nonces are on: relay it.
    dpop_nonce: str | None = None

    def __init__(self, status: int, code: str, title: str = "", detail: str = "") -> None:
        self.status = status
        self.code = code
        self.title = redact(title)
        self.detail = redact(detail)
        msg = f"latch: {status} {code}"
        if self.detail:
            msg += ": " + self.detail
        super().__init__(msg)

    def __reduce__(self):  # pickle with the constructor's arguments and what was set after
        return (self.__class__, (self.status, self.code, self.title, self.detail), dict(self.__dict__))


class BadRequest(ProblemError):
    default_code = "bad_request"


class MethodNotAllowed(ProblemError):
    default_code = "method_not_allowed"


class UnsupportedMediaType(ProblemError):
    default_code = "unsupported_media_type"


class Unauthorized(ProblemError):
    """The API key is missing or wrong (a back-channel call), or a public call carried no credential."""

    default_code = "unauthorized"


class InvalidCredential(ProblemError):
    """The token presented does not authenticate anyone; sign the user in again."""

    default_code = "invalid_token"


class InvalidToken(InvalidCredential):
    default_code = "invalid_token"


class Expired(InvalidCredential):
    default_code = "expired"


class Revoked(InvalidCredential):
    default_code = "revoked"


class RefreshReuse(InvalidCredential):
    """A rotated refresh token was presented again: latch revoked the session as stolen."""

    default_code = "refresh_reuse"


class InvalidDPoPProof(InvalidCredential):
    """A DPoP-bound session or access token was used without a valid proof by its key
    (RFC 9449): missing, malformed, replayed, for another method or URL, by another key,
    or a bound token sent as plain Bearer. Nothing changed; ``www_authenticate`` is the
    ``DPoP`` challenge to answer the client with, and ``reason`` names the failed check
    (``"jti_replayed"``, ``"htu"``, ``"key_mismatch"``, ``"bound_as_bearer"``, … as in
    latch's problem document; None if latch did not say)."""

    default_code = "invalid_dpop_proof"
    reason: str | None = None


class UseDPoPNonce(InvalidDPoPProof):
    """The proof must carry latch's nonce (RFC 9449 §8): ``nonce`` is the value to put in the
    next proof's ``nonce`` claim (send it to the client as the ``DPoP-Nonce`` header)."""

    default_code = "use_dpop_nonce"
    nonce: str | None = None


class InsufficientUserAuthentication(InvalidCredential):
    """The session is live but its sign-in is older or weaker than the action demands
    (RFC 9470). ``max_age`` (seconds) and ``acr_values`` say what it needs; ask the user to
    authenticate again, then renew the session with the new ``auth_time``, ``acr``, ``amr``.
    ``www_authenticate`` is the ``Bearer error="insufficient_user_authentication"`` challenge."""

    default_code = "insufficient_user_authentication"
    max_age: int | None = None
    acr_values: tuple[str, ...] | None = None


class CSRFRejected(ProblemError):
    """An unsafe request failed the CSRF checks (403 csrf).

    Adapters raise it with ``reason`` "cross-origin", "missing-token" or
    "invalid-token"; it never contains the token.
    """

    default_code = "csrf"

    def __init__(self, status: int = 403, code: str = "csrf", title: str = "", detail: str = "",
                 reason: str = "") -> None:
        self.reason = reason or detail
        super().__init__(status, code, title or "CSRF check failed", detail or reason)

    def __reduce__(self):
        return (self.__class__, (self.status, self.code, self.title, self.detail, self.reason))


class NotFound(ProblemError):
    default_code = "not_found"


class Conflict(ProblemError):
    """If-Match did not match the session's version (412), or concurrent writes kept winning (409)."""

    default_code = "conflict"


class TooLarge(ProblemError):
    default_code = "too_large"


class RateLimited(ProblemError):
    """Too many requests; ``retry_after`` is the number of seconds latch asked to wait (or None)."""

    default_code = "rate_limited"
    retry_after: int | None = None


class StoreUnavailable(ProblemError, UnavailableError):
    """latch's session store could not be reached (503 store_unavailable)."""

    default_code = "store_unavailable"


class InternalError(ProblemError):
    default_code = "internal"


_BY_CODE: dict[str, type[ProblemError]] = {
    c.default_code: c
    for c in (BadRequest, MethodNotAllowed, UnsupportedMediaType, Unauthorized, InvalidToken, Expired,
              Revoked, RefreshReuse, InvalidDPoPProof, UseDPoPNonce, InsufficientUserAuthentication,
              CSRFRejected, NotFound, Conflict, TooLarge, RateLimited, StoreUnavailable, InternalError)
}

# Codes for answers that are not problem documents (a proxy's 502, say).
_BY_STATUS = {400: "bad_request", 401: "unauthorized", 403: "csrf", 404: "not_found", 405: "method_not_allowed",
              409: "conflict", 412: "conflict", 413: "too_large", 415: "unsupported_media_type",
              429: "rate_limited", 502: "store_unavailable", 503: "store_unavailable",
              504: "store_unavailable"}


_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


def challenge_params(www_authenticate: str) -> dict[str, str]:
    """The quoted auth-params of a WWW-Authenticate challenge (``max_age="300"`` …)."""
    return {k.lower(): re.sub(r"\\(.)", r"\1", v) for k, v in _PARAM.findall(www_authenticate or "")}


def problem_error(status: int, doc: object, retry_after: int | None = None,
                  headers: dict[str, str] | None = None) -> ProblemError:
    """Build the exception for an error answer: doc is the decoded problem document, or None;
    headers the answer's (lower-case names), for the challenges and DPoP-Nonce."""
    code = title = detail = ""
    if isinstance(doc, dict):
        code = doc.get("code") if isinstance(doc.get("code"), str) else ""
        title = doc.get("title") if isinstance(doc.get("title"), str) else ""
        detail = doc.get("detail") if isinstance(doc.get("detail"), str) else ""
    if not code:
        code = _BY_STATUS.get(status, "internal")
    cls = _BY_CODE.get(code)
    if cls is None:
        # An unknown code: classify by status so callers still fail the right way.
        cls = _BY_CODE.get(_BY_STATUS.get(status, "internal"), InternalError)
        if status == 401:
            cls = InvalidCredential
    if cls is CSRFRejected:
        err: ProblemError = CSRFRejected(status, code, title, detail)
    else:
        err = cls(status, code, title, detail)
    if isinstance(err, RateLimited):
        err.retry_after = retry_after
    if isinstance(err, InvalidDPoPProof) and isinstance(doc, dict) and isinstance(doc.get("reason"), str):
        err.reason = doc["reason"]
    if headers:
        www = headers.get("www-authenticate")
        if www and status == 401:
            err.www_authenticate = www
        err.dpop_nonce = headers.get("dpop-nonce") or None
        if isinstance(err, UseDPoPNonce):
            err.nonce = err.dpop_nonce
        if isinstance(err, InsufficientUserAuthentication) and www:
            p = challenge_params(www)
            if p.get("max_age", "").isdigit():
                err.max_age = int(p["max_age"])
            if p.get("acr_values"):
                err.acr_values = tuple(p["acr_values"].split())
    return err
