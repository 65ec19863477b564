package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/store/boltstore"
)

const issuerTestAPIKey = "issuer-interop-api-key-0123456789abcdef"

// startLatch runs a latch server on a new loopback port of its own, with
// the default issuer latch serve derives from that port.
func startLatch(t *testing.T, path string, alg accesstoken.Algorithm) (*httptest.Server, func()) {
	t.Helper()
	st, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Options{
		Store: st, APIKey: issuerTestAPIKey, KEK: bytes.Repeat([]byte{4}, 32),
		DefaultIssuer: "http://" + ln.Addr().String(), SigningAlgorithm: alg,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Handler()}}
	ts.Start()
	return ts, func() { ts.Close(); st.Close() }
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// An access token issued before a restart on another port verifies with
// jwx and golang-jwt configured only from the metadata document of the
// restarted server: its issuer, and the keys at its jwks_uri.
func TestInteropIssuerMetadataAfterRestart(t *testing.T) {
	for _, alg := range []accesstoken.Algorithm{accesstoken.EdDSA, accesstoken.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "latch.db")
			first, stop := startLatch(t, path, alg)
			req, _ := http.NewRequest("POST", first.URL+"/v1/sessions", strings.NewReader(`{"subject":"alice"}`))
			req.Header.Set("Authorization", "Bearer "+issuerTestAPIKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var created struct {
				AccessToken string `json:"access_token"`
			}
			json.NewDecoder(resp.Body).Decode(&created)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || created.AccessToken == "" {
				t.Fatalf("create: %d", resp.StatusCode)
			}
			stop()

			second, stop := startLatch(t, path, alg)
			defer stop()
			var md struct {
				Issuer  string `json:"issuer"`
				JWKSURI string `json:"jwks_uri"`
			}
			getJSON(t, second.URL+"/.well-known/oauth-authorization-server", &md)
			if md.Issuer != first.URL || !strings.HasPrefix(md.JWKSURI, second.URL+"/") {
				t.Fatalf("metadata after the restart: %+v; want issuer %s and the JWKS of %s", md, first.URL, second.URL)
			}
			set, err := jwk.Fetch(context.Background(), md.JWKSURI)
			if err != nil {
				t.Fatal(err)
			}
			jt, err := jwxjwt.ParseString(created.AccessToken, jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(md.Issuer),
				jwxjwt.WithAudience("latch"), jwxjwt.WithValidate(true))
			if err != nil {
				t.Fatalf("jwx configured from the metadata refused a token from before the restart: %v", err)
			}
			if sub, _ := jt.Subject(); sub != "alice" {
				t.Errorf("jwx subject %q", sub)
			}
			var doc json.RawMessage
			getJSON(t, md.JWKSURI, &doc)
			if _, err := gojwt.Parse(created.AccessToken, goJWTKeyfunc(t, doc), gojwt.WithValidMethods([]string{string(alg)}),
				gojwt.WithIssuer(md.Issuer), gojwt.WithAudience("latch"), gojwt.WithExpirationRequired()); err != nil {
				t.Errorf("golang-jwt configured from the metadata: %v", err)
			}
			// A verifier that trusted the new address as the issuer refuses it.
			if _, err := jwxjwt.ParseString(created.AccessToken, jwxjwt.WithKeySet(set), jwxjwt.WithIssuer(second.URL),
				jwxjwt.WithValidate(true)); err == nil {
				t.Error("jwx accepted the token for the new address as issuer; the test proves nothing")
			}
		})
	}
}
