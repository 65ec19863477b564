package bench

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// Example_chi uses latchhttp with the chi router: the middleware goes in
// r.Use, RequireSession guards a route group. It lives in the bench module so
// that the latch library never depends on chi.
func Example_chi() {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		log.Fatal(err)
	}
	sessions, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		log.Fatal(err)
	}

	r := chi.NewRouter()
	r.Use(sessions.Middleware)
	r.Post("/login", func(w http.ResponseWriter, r *http.Request) {
		if _, err := sessions.Login(w, r, latch.NewSession{Subject: r.PostFormValue("user")}); err != nil {
			http.Error(w, "login failed", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Pages embed the token; a script can also fetch it. Without a session
	// (the login form) it is an anonymous token, and CSRFToken sets the
	// anonymous CSRF cookie it belongs to.
	r.Get("/csrf", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, latchhttp.CSRFToken(r))
	})
	r.Group(func(r chi.Router) {
		r.Use(sessions.RequireSession)
		r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
			s, _ := latchhttp.FromContext(r.Context())
			fmt.Fprintf(w, "%s reads item %s", s.Subject(), chi.URLParam(r, "id"))
		})
		r.Delete("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "deleted item %s", chi.URLParam(r, "id"))
		})
	})

	do := func(method, path, cookie, csrf string, form url.Values) (int, string) {
		req := httptest.NewRequest(method, "https://example.com"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}

	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "https://example.com/csrf", nil))
	anon, anonTok := rec.Result().Cookies()[0], rec.Body.String()
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, func() *http.Request {
		req := httptest.NewRequest("POST", "https://example.com/login", strings.NewReader("user=alice"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", anon.Name+"="+anon.Value)
		req.Header.Set("X-CSRF-Token", anonTok)
		return req
	}())
	c := rec.Result().Cookies()[0]
	cookie := c.Name + "=" + c.Value

	fmt.Println(do("GET", "/items/7", "", "", nil))
	fmt.Println(do("GET", "/items/7", cookie, "", nil))
	fmt.Println(do("DELETE", "/items/7", cookie, "", nil))

	// A script on the page sends the token it was given in a header.
	_, tok := do("GET", "/csrf", cookie, "", nil)
	fmt.Println(do("DELETE", "/items/7", cookie, tok, nil))

	// Output:
	// 401 Unauthorized
	//
	// 200 alice reads item 7
	// 403 Forbidden
	//
	// 200 deleted item 7
}
