package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testutil"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

const testAPIKey = "test-api-key-0123456789-abcdefghijklmnop"

// failingStore wraps a memstore; while down, every call fails with
// store.ErrUnavailable, as a store whose backend is unreachable does.
type failingStore struct {
	*memstore.Store
	down atomic.Bool
}

var errDown = fmt.Errorf("%w: test: backend down", store.ErrUnavailable)

func (f *failingStore) fail() error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *failingStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, id)
}

func (f *failingStore) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Create(ctx, rec, max)
}

func (f *failingStore) Update(ctx context.Context, rec *store.Record) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Update(ctx, rec)
}

func (f *failingStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.RotateRefresh(ctx, r)
}

func (f *failingStore) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Revoke(ctx, id, reason, at)
}

func (f *failingStore) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.RevokeSubject(ctx, subject, except, reason, at)
}

func (f *failingStore) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, subject, now)
}

func (f *failingStore) Ping(ctx context.Context) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

func (f *failingStore) KeyringVersion(ctx context.Context) (uint64, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.KeyringVersion(ctx)
}

func (f *failingStore) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	if err := f.fail(); err != nil {
		return nil, 0, err
	}
	return f.Store.LoadKeyring(ctx)
}

// harness is a Server on a fake clock behind a real HTTP listener. It
// remembers every secret the server handed out and, when the test ends,
// checks that none of them (nor the API key) reached the log.
type harness struct {
	t        *testing.T
	srv      *Server
	ts       *httptest.Server
	client   *http.Client // the test server\'s, checking every exchange against api/openapi.json
	clock    *testutil.Clock
	store    *failingStore
	logs     *testutil.Buffer
	streamed *testutil.Buffer // everything read from GET /v1/events
	secrets  map[string]bool
}

func newHarness(t *testing.T, mod ...func(*Options)) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		clock:    testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)),
		store:    &failingStore{Store: memstore.New()},
		logs:     &testutil.Buffer{},
		streamed: &testutil.Buffer{},
		secrets:  map[string]bool{testAPIKey: true},
	}
	opts := Options{
		Store:  h.store,
		APIKey: testAPIKey,
		KEK:    bytes.Repeat([]byte{7}, 32),
		Issuer: "https://latch.test",
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    h.clock.Now,
	}
	for _, f := range mod {
		f(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	h.client = &http.Client{Transport: &contractCheck{t: t, next: h.ts.Client().Transport}}
	t.Cleanup(func() {
		h.ts.Close()
		h.checkLogs()
	})
	return h
}

// checkLogs fails the test if any secret handed out appears in the log
// or in an event stream.
func (h *harness) checkLogs() {
	h.t.Helper()
	logs := h.logs.String() + h.streamed.String()
	if logs == "" {
		h.t.Error("no log output captured; the log check is vacuous")
	}
	for s := range h.secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			h.t.Errorf("a secret (%.6s…) appears in the logs", s)
		}
		// A token's secret part must not leak either, even without its prefix.
		if len(s) > 30 && strings.Contains(logs, s[len(s)-24:]) {
			h.t.Errorf("the tail of a secret (%.6s…) appears in the logs", s)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d: body is not a JSON object: %v: %q", r.status, err, r.body)
	}
	return m
}

// req is a request to send: body is sent as application/json unless a
// Content-Type header is given.
type req struct {
	method, path string
	body         string
	apiKey       bool
	header       map[string]string
	via          *http.Client // default: the test server's client
}

func (h *harness) do(rq req) *response {
	h.t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r, err := http.NewRequest(rq.method, h.ts.URL+rq.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if rq.apiKey {
		r.Header.Set("Authorization", "Bearer "+testAPIKey)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	c := h.client
	if rq.via != nil {
		c = &http.Client{Transport: &contractCheck{t: h.t, next: rq.via.Transport}}
	}
	resp, err := c.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	out := &response{status: resp.StatusCode, header: resp.Header, body: b}
	h.collect(out)
	return out
}

// collect remembers every secret in a response, and checks that problem
// documents never carry one.
func (h *harness) collect(r *response) {
	var m map[string]any
	if json.Unmarshal(r.body, &m) != nil {
		return
	}
	for _, k := range []string{"session_token", "refresh_token", "access_token", "csrf_token"} {
		if s, ok := m[k].(string); ok {
			h.secrets[s] = true
		}
	}
	if strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		for s := range h.secrets {
			if s != "" && bytes.Contains(r.body, []byte(s)) {
				h.t.Errorf("a problem document contains a secret: %s", r.body)
			}
		}
	}
}

// api sends a back-channel request with the API key.
func (h *harness) api(method, path, body string) *response {
	h.t.Helper()
	return h.do(req{method: method, path: path, body: body, apiKey: true})
}

// wantProblem checks r is a problem document with status and code.
func wantProblem(t *testing.T, r *response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	m := r.json(t)
	if m["code"] != code {
		t.Errorf("code = %v, want %q; body %s", m["code"], code, r.body)
	}
	if m["status"] != float64(status) {
		t.Errorf("status member = %v, want %d", m["status"], status)
	}
	for _, k := range []string{"type", "title", "detail"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("problem member %q is missing: %s", k, r.body)
		}
	}
}

func wantStatus(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
}

// created is a session created through the API.
type created struct {
	id, sessionToken, refreshToken, accessToken string
	body                                        map[string]any
}

func (h *harness) create(subject string, extra string) created {
	h.t.Helper()
	body := fmt.Sprintf(`{"subject":%q%s}`, subject, extra)
	r := h.api("POST", "/v1/sessions", body)
	wantStatus(h.t, r, http.StatusCreated)
	return parseCreated(h.t, r.body)
}

// parseCreated reads the answer of POST /v1/sessions.
func parseCreated(t *testing.T, body []byte) created {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("create answered %q: %v", body, err)
	}
	s := m["session"].(map[string]any)
	return created{
		id:           s["id"].(string),
		sessionToken: m["session_token"].(string),
		refreshToken: m["refresh_token"].(string),
		accessToken:  m["access_token"].(string),
		body:         m,
	}
}
