package main

import (
	"bytes"
	"encoding/json"
	"html/template"
	"log"
	"net/http"
	"net/url"

	"github.com/latch-sessions/latch/latchhttp"
)

// render executes a page into a buffer first, so the CSRF token is taken
// (and the response marked no-store) before anything is written.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	data["CSRF"] = latchhttp.CSRFToken(r)
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		log.Printf("webapp: template %s: %v", name, err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func writeJSON(w http.ResponseWriter, v any) {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("webapp: json: %v", err)
	}
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short": func(s string) string {
		if len(s) > 60 {
			return s[:60] + "…"
		}
		return s
	},
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>latch example</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem} form.inline{display:inline}
label{display:block;margin:.6rem 0} input[type=text],input[type=password]{font:inherit;padding:.4rem;width:16rem}
button{font:inherit;padding:.4rem .9rem;cursor:pointer}
table{border-collapse:collapse;width:100%;margin:1rem 0} td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;font-size:.9rem}
.msg{background:#eef6ee;padding:.5rem .8rem} .err{background:#fbeaea;padding:.5rem .8rem}
#idle{padding:.5rem .8rem;background:#f4f4f8} #idle.warn{background:#fff3cd}
.muted{color:#666;font-size:.9rem}
</style></head><body>{{end}}

{{define "login"}}{{template "head"}}
<h1>Sign in</h1>
{{with .Message}}<p class="msg">{{.}}</p>{{end}}
{{with .Error}}<p class="err">{{.}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<label>User <input type="text" name="user" autocomplete="username" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<p class="muted">Users: alice and bob; the password is printed when the server starts.</p>
</body></html>{{end}}

{{define "account"}}{{template "head"}}
<h1>Hello, {{.Name}}</h1>
{{with .Message}}<p class="msg">{{.}}</p>{{end}}
<p id="idle" data-left="{{.Info.IdleSecondsLeft}}">Your session ends after inactivity at {{.Session.IdleExpiresAt.Format "15:04:05 MST"}}.</p>
<p class="muted">Session {{.Session.ID}} · signed in {{.Session.AuthTime.Format "2006-01-02 15:04 MST"}} · ends at the latest {{.Session.ExpiresAt.Format "2006-01-02 15:04 MST"}}</p>

<h2>Your sessions</h2>
<table><tr><th>Device</th><th>IP</th><th>Last seen</th><th></th></tr>
{{range .Sessions}}<tr><td>{{short .UserAgent}}</td><td>{{.IP}}</td><td>{{.LastSeenAt.Format "2006-01-02 15:04 MST"}}</td><td>{{if .Current}}this device{{end}}</td></tr>
{{end}}</table>
<form class="inline" method="post" action="/sessions/revoke-others">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<button type="submit">Sign out everywhere else</button>
</form>
<form class="inline" method="post" action="/logout">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<button type="submit">Sign out</button>
</form>
<script src="/app.js"></script>
</body></html>{{end}}
`))

// appJS counts down to the idle deadline, offers to stay signed in a minute
// before it, and sends the user to sign in again when it has passed.
const appJS = `"use strict";
(function () {
  var el = document.getElementById("idle");
  if (!el) return;
  var deadline = Date.now() + 1000 * parseInt(el.dataset.left, 10);
  function render() {
    var left = Math.round((deadline - Date.now()) / 1000);
    if (left <= 0) {
      window.location = "/?m=" + encodeURIComponent("Your session timed out. Please sign in again.");
      return;
    }
    if (left <= 60) {
      el.className = "warn";
      el.textContent = "You will be signed out in " + left + " s because of inactivity. ";
      var b = document.createElement("button");
      b.textContent = "Stay signed in";
      b.onclick = stay;
      el.appendChild(b);
    } else {
      el.className = "";
      var m = Math.floor(left / 60), s = left % 60;
      el.textContent = "Signed out after inactivity in " + m + " min " + (s < 10 ? "0" : "") + s + " s.";
    }
  }
  function stay() {
    fetch("/session.json", {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) { deadline = 0; render(); return; }
      return r.json().then(function (j) { deadline = Date.now() + 1000 * j.idle_seconds_left; render(); });
    });
  }
  render();
  setInterval(render, 1000);
})();
`
