package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/boltstore"
	"github.com/latch-sessions/latch/store/redisstore"
)

// startAt starts a server on a fresh loopback port whose DefaultIssuer is
// the port's URL, as latch serve derives it from --addr, and returns it
// with its URL.
func startAt(t *testing.T, st store.Store, kek []byte, mod ...func(*Options)) (*Server, *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Store: st, APIKey: testAPIKey, KEK: kek,
		DefaultIssuer: "http://" + ln.Addr().String(),
		Logger:        slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	for _, f := range mod {
		f(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler()}}
	ts.Start()
	t.Cleanup(ts.Close)
	return srv, ts
}

type metadataDoc struct {
	Issuer   string   `json:"issuer"`
	JWKSURI  string   `json:"jwks_uri"`
	DPoPAlgs []string `json:"dpop_signing_alg_values_supported"`
}

func getMetadata(t *testing.T, ts *httptest.Server) metadataDoc {
	t.Helper()
	var buf bytes.Buffer
	if code := call(t, ts, "GET", "/.well-known/oauth-authorization-server", "", &buf); code != http.StatusOK {
		t.Fatalf("metadata: %d %s", code, buf.String())
	}
	var m metadataDoc
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return m
}

// verifyFromMetadata verifies tok offline as a third party would: the
// issuer and the keys come only from the metadata document of ts.
func verifyFromMetadata(t *testing.T, ts *httptest.Server, tok string) error {
	t.Helper()
	m := getMetadata(t, ts)
	resp, err := http.Get(m.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(resp.Body)
	keys, err := accesstoken.ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := accesstoken.NewStaticKeys(keys...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: ks, Issuer: m.Issuer, Audience: "latch"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	return err
}

func verifyOnline(t *testing.T, ts *httptest.Server, tok string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	code := call(t, ts, "POST", "/v1/sessions/verify", fmt.Sprintf(`{"access_token":%q}`, tok), &buf)
	return code, buf.String()
}

// An access token outlives a restart on another address: the issuer is
// the one recorded at the first start, and the metadata document names it
// with the JWKS at the new address.
func TestIssuerSurvivesRestartOnAnotherPort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "latch.db")
	kek := bytes.Repeat([]byte{3}, 32)
	open := func() *boltstore.Store {
		st, err := boltstore.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	st := open()
	first, a := startAt(t, st, kek)
	if first.Issuer() != "http://"+a.Listener.Addr().String() {
		t.Fatalf("first start: issuer %q, want the URL of its address", first.Issuer())
	}
	var buf bytes.Buffer
	if code := call(t, a, "POST", "/v1/sessions", `{"subject":"alice"}`, &buf); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, buf.String())
	}
	c := parseCreated(t, buf.Bytes())
	a.Close()
	st.Close()

	st = open()
	t.Cleanup(func() { st.Close() })
	second, b := startAt(t, st, kek)
	if second.Issuer() != first.Issuer() {
		t.Fatalf("after a restart on another port the issuer is %q, want the recorded %q", second.Issuer(), first.Issuer())
	}
	if code, body := verifyOnline(t, b, c.accessToken); code != http.StatusOK {
		t.Fatalf("online verify after the restart: %d %s", code, body)
	}
	m := getMetadata(t, b)
	if m.Issuer != first.Issuer() || m.JWKSURI != b.URL+"/.well-known/jwks.json" {
		t.Errorf("metadata = %+v, want issuer %s and the JWKS of %s", m, first.Issuer(), b.URL)
	}
	if err := verifyFromMetadata(t, b, c.accessToken); err != nil {
		t.Errorf("offline verify configured from the metadata: %v", err)
	}

	// --issuer overrides the recorded one (and does not replace it).
	override, o := startAt(t, st, kek, func(o *Options) { o.Issuer = "https://auth.example" })
	if override.Issuer() != "https://auth.example" || getMetadata(t, o).Issuer != "https://auth.example" {
		t.Errorf("override: issuer %q", override.Issuer())
	}
	if code, body := verifyOnline(t, o, c.accessToken); code != http.StatusUnauthorized || !strings.Contains(body, `"invalid_token"`) {
		t.Errorf("a token of another issuer: %d %s, want 401 invalid_token", code, body)
	}
	if again, _ := startAt(t, st, kek); again.Issuer() != first.Issuer() {
		t.Errorf("after an override the recorded issuer is %q, want %q", again.Issuer(), first.Issuer())
	}
}

// Every replica on one Redis shares the issuer of the first, whatever
// its own address, and accepts the first one's tokens.
func TestIssuerSharedByReplicas(t *testing.T) {
	base := "redis://" + testredis.Addr(t)
	url := base + "?prefix=" + uniquePrefix(t, base, "latchiss")
	kek := bytes.Repeat([]byte{5}, 32)
	open := func() store.Store {
		st, err := redisstore.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	first, a := startAt(t, open(), kek)
	second, b := startAt(t, open(), kek)
	if second.Issuer() != first.Issuer() || first.Issuer() != "http://"+a.Listener.Addr().String() {
		t.Fatalf("replica issuers %q and %q, want both the first one's URL", first.Issuer(), second.Issuer())
	}
	var buf bytes.Buffer
	if code := call(t, a, "POST", "/v1/sessions", `{"subject":"bob"}`, &buf); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, buf.String())
	}
	c := parseCreated(t, buf.Bytes())
	if code, body := verifyOnline(t, b, c.accessToken); code != http.StatusOK {
		t.Fatalf("replica B refused replica A's token: %d %s", code, body)
	}
	if err := verifyFromMetadata(t, b, c.accessToken); err != nil {
		t.Errorf("offline verify configured from replica B's metadata: %v", err)
	}
}
