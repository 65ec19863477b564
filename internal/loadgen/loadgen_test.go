package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBareRun(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	defer srv.Close()
	res, err := Run(context.Background(), Config{Server: srv.URL, Connections: 4, Duration: 200 * time.Millisecond, Warmup: -1}, Bare)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("implausible result %+v", res)
	}
}

func TestUnreachableServerFails(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	url := srv.URL
	srv.Close()
	_, err := Run(context.Background(), Config{Server: url, APIKey: "k", Connections: 1, Duration: 50 * time.Millisecond, Warmup: -1}, VerifySession)
	if err == nil {
		t.Fatal("no error against a closed port")
	}
}

func TestPaddedHandler(t *testing.T) {
	for _, n := range []int{0, 20, 21, 464, 5000} {
		srv := httptest.NewServer(PaddedHandler(n))
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"session_token":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if want := max(n, 20); len(b) != want || resp.ContentLength != int64(want) || !json.Valid(b) {
			t.Errorf("PaddedHandler(%d): %d bytes, Content-Length %d, valid JSON %v", n, len(b), resp.ContentLength, json.Valid(b))
		}
	}
}

// Probe reports the sizes of the operation's own exchange, not of the
// session it created first.
func TestProbe(t *testing.T) {
	const answer = `{"session":{"id":"ses_x"},"csrf_token":"abc"}` + "\n"
	var verifyBody string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"session_token":"lts_probe","refresh_token":"ltr_x","access_token":"eyJx","session":{"id":"ses_x","data":{"padding":"to make this answer longer than the verify answer"}}}`)
	})
	mux.HandleFunc("POST /v1/sessions/verify", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		verifyBody = string(b)
		io.WriteString(w, answer)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sz, err := Probe(context.Background(), Config{Server: srv.URL, APIKey: "k"}, VerifySession)
	if err != nil {
		t.Fatal(err)
	}
	if verifyBody != `{"session_token":"lts_probe"}` || sz != (Sizes{Request: len(verifyBody), Response: len(answer)}) {
		t.Fatalf("Probe = %+v for a %d-byte request %q and a %d-byte answer", sz, len(verifyBody), verifyBody, len(answer))
	}
	// Bare then sends a request of that size.
	var got int
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = len(b)
	}))
	defer bare.Close()
	if _, err := Run(context.Background(), Config{Server: bare.URL, Connections: 1, Duration: 20 * time.Millisecond, Warmup: -1,
		BareRequest: bytes.Repeat([]byte{'x'}, sz.Request)}, Bare); err != nil {
		t.Fatal(err)
	}
	if got != sz.Request {
		t.Fatalf("Bare sent %d bytes, want %d", got, sz.Request)
	}
}
