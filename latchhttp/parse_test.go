package latchhttp_test

import (
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/latch-sessions/latch/accesstoken"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// FuzzRequestHeaders sends hostile Cookie, Authorization and CSRF headers
// through the middleware: it must never panic, never authenticate a request
// without a token it issued, and never answer 5xx (the store is healthy).
func FuzzRequestHeaders(f *testing.F) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		f.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{AccessTokens: nopVerifier{}})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := latchhttp.FromContext(r.Context()); ok {
			panic("authenticated without a valid token")
		}
	}))
	for _, seed := range [][3]string{
		{"__Host-latch=lts_AAAA", "", ""},
		{`__Host-latch="lts_x"; other=1`, "Bearer", "x"},
		{"a=b;;; __Host-latch=;", "bearer   ", ""},
		{"__Host-latch", "Basic Zm9vOmJhcg==", "\x00"},
		{"=; =;__Host-latch=ltr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Bearer ey.ey.sig", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], true)
	}
	f.Fuzz(func(t *testing.T, cookie, authz, csrf string, post bool) {
		method := "GET"
		if post {
			method = "POST"
		}
		req := httptest.NewRequest(method, "https://example.com/", nil)
		req.Header["Cookie"] = []string{cookie}
		if authz != "" {
			req.Header["Authorization"] = []string{authz}
		}
		if csrf != "" {
			req.Header["X-Csrf-Token"] = []string{csrf}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

type nopVerifier struct{}

func (nopVerifier) Verify(context.Context, string) (c latchClaims, err error) {
	return c, errNope
}

func TestMultipartTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	e := newEnv(t, func(c *latchhttp.Config) { c.MaxMultipartMemory = 1 })
	c := e.newClient()
	c.login("alice")
	c.me()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("csrf_token", c.csrf)
	fw, _ := mw.CreateFormFile("file", "big.bin")
	fw.Write(bytes.Repeat([]byte("x"), 64<<10))
	mw.Close()
	req := c.req("POST", "/echo", &b)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if res, _ := c.do(req); res.StatusCode != http.StatusOK {
		t.Fatalf("multipart post: %d", res.StatusCode)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		t.Errorf("temporary file left behind: %s", en.Name())
	}
}

type latchClaims = accesstoken.Claims

var errNope = errors.New("nope")
