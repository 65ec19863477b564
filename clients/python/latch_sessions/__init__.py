"""latch for Python: a client for latch's session API and middleware for Flask,
Django and ASGI apps (Starlette, FastAPI).

Most users need one of the adapters:

* Flask: ``latch_sessions.flask.Latch(app)``, ``g.latch``, ``@login_required``
* Django: ``latch_sessions.django.LatchMiddleware``, ``request.latch``, ``@login_required``
* Starlette/FastAPI: ``latch_sessions.asgi.LatchMiddleware``, ``request.state.latch``,
  ``latch_sessions.fastapi.require_session``

and, for back-channel work (listing a user's devices, revoking), :class:`Client`
or :class:`AsyncClient`. Cookies, CSRF and the event stream follow
docs/protocol.md, so an app on this package behaves like one on the Go
middleware or the Node package.

# Security model

Tokens are secrets: none appears in an exception, a ``repr`` or a log record of
this package. Every failure to reach latch fails closed (an
:class:`UnavailableError`; the adapters answer 503), never as "authenticated".
"""

from ._client import DEFAULT_TIMEOUT, AsyncClient, Client
from ._errors import *  # noqa: F403 - the exception hierarchy is the public API
from ._errors import __all__ as _errors_all
from ._types import DPoPProof, Issued, Key, Refreshed, Rotated, Session, Verified, format_time, parse_time

__version__ = "0.1.0"

__all__ = ["Client", "AsyncClient", "DEFAULT_TIMEOUT", "Session", "Issued", "Refreshed", "Verified", "Key", "DPoPProof",
           "Rotated", "parse_time", "format_time", *_errors_all]
