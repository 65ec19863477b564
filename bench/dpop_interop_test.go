package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store/memstore"
)

// TestDPoPInteropPanva: proofs made by panva's dpop package from npm (an
// independent RFC 9449 implementation, WebCrypto keys) are accepted by
// latch's verifier for ES256, Ed25519 and RS256, with and without ath,
// its thumbprint equals latch's, and the same proofs are refused for
// another URL, another method, another access token, or a second time.
func TestDPoPInteropPanva(t *testing.T) {
	node := requireNodeModule(t, "dpop")
	const htu = "https://latch.example/v1/refresh"
	const tok = "an.access.token"
	for _, alg := range []string{"ES256", "Ed25519", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			in, _ := json.Marshal(map[string]any{"alg": alg, "requests": []map[string]string{
				{"htm": "POST", "htu": htu},
				{"htm": "GET", "htu": "https://api.example/orders?id=7", "access_token": tok},
				{"htm": "POST", "htu": htu},
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "node/make-dpop.mjs")
			cmd.Stdin = bytes.NewReader(in)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node/make-dpop.mjs: %v\n%s", err, stderr.String())
			}
			var res struct {
				JKT    string   `json:"jkt"`
				Proofs []string `json:"proofs"`
			}
			if err := json.Unmarshal(out, &res); err != nil || len(res.Proofs) != 3 {
				t.Fatalf("node/make-dpop.mjs output: %v", err)
			}
			v := &dpop.Verifier{Replay: memstore.New()}
			refresh := dpop.Use{Method: "POST", URL: htu, JKT: res.JKT}
			refused := func(p string, use dpop.Use, want dpop.Reason) {
				t.Helper()
				if _, err := v.Verify(ctx, p, use); !errorsIsReason(err, want) {
					t.Errorf("Verify = %v, want %s", err, want)
				}
			}
			refused(res.Proofs[0], dpop.Use{Method: "POST", URL: "https://latch.example/v1/sessions", JKT: res.JKT}, dpop.ReasonURL)
			refused(res.Proofs[0], dpop.Use{Method: "PUT", URL: htu, JKT: res.JKT}, dpop.ReasonMethod)
			p, err := v.Verify(ctx, res.Proofs[0], refresh)
			if err != nil {
				t.Fatalf("a panva/dpop %s proof: %v", alg, err)
			}
			if p.JKT != res.JKT {
				t.Errorf("thumbprint %s, panva/dpop says %s", p.JKT, res.JKT)
			}
			refused(res.Proofs[0], refresh, dpop.ReasonReplay)
			access := dpop.Use{Method: "GET", URL: "https://api.example/orders", JKT: res.JKT}
			access.AccessToken = "another.access.token"
			refused(res.Proofs[1], access, dpop.ReasonATH)
			access.AccessToken = tok
			if _, err := v.Verify(ctx, res.Proofs[1], access); err != nil {
				t.Errorf("a panva/dpop %s proof with ath: %v", alg, err)
			}
			refused(res.Proofs[2], dpop.Use{Method: "POST", URL: htu, JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, dpop.ReasonKey)
		})
	}
}

func errorsIsReason(err error, r dpop.Reason) bool {
	e, ok := errors.AsType[*dpop.Error](err)
	return ok && e.Reason == r
}
