"""A Django view on latch, in one file: latch holds who is signed in (no
django.contrib.sessions, no AuthenticationMiddleware, no CsrfViewMiddleware —
latch's middleware protects every POST, the login form included).

    LATCH_URL=http://127.0.0.1:8080 LATCH_API_KEY=… \\
        /usr/bin/python3 clients/python/examples/django_site/app.py runserver localhost:8000
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=os.environ.get("DJANGO_DEBUG") == "1",
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "dev-only-" + "x" * 40),
        ALLOWED_HOSTS=["localhost", "127.0.0.1", "app.example"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "latch_sessions.django.LatchMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        LATCH={"URL": os.environ.get("LATCH_URL", "http://127.0.0.1:8080"), "LOGIN_URL": "/login"},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        USE_TZ=True,
    )

import django  # noqa: E402

django.setup()

from django.http import HttpResponse  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.template import engines  # noqa: E402
from django.urls import path  # noqa: E402

from latch_sessions.django import login_required  # noqa: E402

_SALT = b"example-salt"
USERS = {u: hashlib.sha256(_SALT + b"correct horse").hexdigest() for u in ("alice", "bob")}

_LOGIN = engines["django"].from_string("""<!doctype html><title>Sign in</title>
{% if error %}<p>Wrong user or password.</p>{% endif %}
<form method="post">{{ request.latch.csrf_field }}
<input name="user"> <input name="password" type="password"> <button>Sign in</button></form>""")

_ACCOUNT = engines["django"].from_string("""<!doctype html><title>Account</title>
<p>Signed in as <b>{{ request.latch.subject }}</b> (idle timeout in {{ request.latch.idle_seconds_left }} s).</p>
<form method="post" action="/logout">{{ request.latch.csrf_field }}<button>Sign out</button></form>""")


def login(request):
    if request.method == "POST":
        user, password = request.POST.get("user", ""), request.POST.get("password", "")
        want = USERS.get(user)
        if want and hmac.compare_digest(want, hashlib.sha256(_SALT + password.encode()).hexdigest()):
            request.latch.login(user)
            return redirect("/account")
        return HttpResponse(_LOGIN.render({"request": request, "error": True}), status=401)
    return HttpResponse(_LOGIN.render({"request": request}))


@login_required
def account(request):
    return HttpResponse(_ACCOUNT.render({"request": request}))


def logout(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    request.latch.logout()
    return redirect("/login")


urlpatterns = [path("login", login), path("account", account), path("logout", logout)]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
