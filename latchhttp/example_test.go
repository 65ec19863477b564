package latchhttp_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// Example wires latch into a standard library ServeMux: a login form and
// its handler, a page that needs a session and shows a CSRF token for its
// forms, and logout. The requests at the end play a browser.
func Example() {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		log.Fatal(err)
	}
	sessions, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		// The login form needs a CSRF token too: without a session,
		// CSRFToken sets the anonymous CSRF cookie it belongs to.
		//	<input type="hidden" name="csrf_token" value="{{.CSRF}}">
		io.WriteString(w, latchhttp.CSRFToken(r))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("user") // check the password here
		if _, err := sessions.Login(w, r, latch.NewSession{Subject: user}); err != nil {
			http.Error(w, "login failed", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	mux.Handle("GET /account", sessions.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := latchhttp.FromContext(r.Context())
		// A real page renders forms with
		//	<input type="hidden" name="csrf_token" value="{{.CSRF}}">
		fmt.Fprintf(w, "hello %s\n%s", s.Subject(), latchhttp.CSRFToken(r))
	})))
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sessions.Logout(w, r); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	handler := sessions.Middleware(mux)

	// A browser: log in, visit the account page, log out.
	do := func(method, path, cookie string, form url.Values) *http.Response {
		req := httptest.NewRequest(method, "https://example.com"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Result()
	}
	res := do("GET", "/login", "", nil)
	anon := res.Cookies()[0]
	form, _ := io.ReadAll(res.Body)
	fmt.Println("login form:", res.StatusCode, anon.Name, "HttpOnly:", anon.HttpOnly)

	res = do("POST", "/login", anon.Name+"="+anon.Value, url.Values{"user": {"alice"}})
	fmt.Println("login without token:", res.StatusCode)
	res = do("POST", "/login", anon.Name+"="+anon.Value, url.Values{"user": {"alice"}, "csrf_token": {string(form)}})
	cookie := res.Cookies()[0]
	fmt.Println("login:", res.StatusCode, cookie.Name, "Secure:", cookie.Secure, "HttpOnly:", cookie.HttpOnly)

	res = do("GET", "/account", cookie.Name+"="+cookie.Value, nil)
	body, _ := io.ReadAll(res.Body)
	greeting, csrf, _ := strings.Cut(string(body), "\n")
	fmt.Println("account:", res.StatusCode, greeting)

	// Posting without the CSRF token is refused; the form's token passes.
	res = do("POST", "/logout", cookie.Name+"="+cookie.Value, nil)
	fmt.Println("logout without token:", res.StatusCode)
	res = do("POST", "/logout", cookie.Name+"="+cookie.Value, url.Values{"csrf_token": {csrf}})
	fmt.Println("logout:", res.StatusCode, res.Header.Get("Clear-Site-Data"))

	res = do("GET", "/account", cookie.Name+"="+cookie.Value, nil)
	fmt.Println("after logout:", res.StatusCode)

	// Output:
	// login form: 200 __Host-latch-csrf HttpOnly: true
	// login without token: 403
	// login: 303 __Host-latch Secure: true HttpOnly: true
	// account: 200 hello alice
	// logout without token: 403
	// logout: 303 "cookies"
	// after logout: 401
}
