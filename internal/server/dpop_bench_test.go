package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/benchpair"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/memstore"
)

// BenchmarkDPoPCost is what a DPoP proof adds to a request through the
// whole handler chain (no network, memory store, EdDSA tokens and
// proofs), next to what it should add at most: one Ed25519 verification
// and one replay-cache call (100 of them, on the memory store), measured
// in the same run. The six operations
// take turns (internal/benchpair), so the machine's load weighs on all
// alike; CPU per operation is the figure, throughput is not. Proofs are
// made before the timer starts, each with a fresh jti.
//
//	go test ./internal/server -run XXX -bench DPoPCost -benchtime 20000x -count 3
func BenchmarkDPoPCost(b *testing.B) {
	srv, _ := benchServer(b)
	replays := &countingReplay{ReplayCache: srv.dpop.Replay}
	srv.dpop.Replay = replays // before first use, as Verifier asks
	h := srv.Handler()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	prover, err := dpop.NewProver(priv)
	if err != nil {
		b.Fatal(err)
	}

	plain, err := srv.Manager().Create(ctx, latch.NewSession{Subject: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	bound, err := srv.Manager().Create(ctx, latch.NewSession{Subject: "bob", JKT: prover.JKT()})
	if err != nil {
		b.Fatal(err)
	}
	const api = "https://api.example/orders"
	const self = "http://example.com/v1/refresh" // httptest's Host: latch's URL here
	boundAccess := bound.AccessToken.Reveal()
	n := b.N + 100
	verifyProofs := proofPool(b, prover, n, "GET", api, boundAccess)
	refreshProofs := proofPool(b, prover, n, "POST", self, "")

	call := func(path, body, proof string) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+testAPIKey)
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			return w, fmt.Errorf("%s: status %d: %s", path, w.Code, w.Body)
		}
		return w, nil
	}
	plainVerify := `{"access_token":"` + plain.AccessToken.Reveal() + `"}`
	var nextVerify, nextRefresh atomic.Int64
	chains := func(jkt string) chan string { // refresh tokens, one per goroutine at most
		c := make(chan string, 8)
		for range cap(c) {
			is, err := srv.Manager().Create(ctx, latch.NewSession{Subject: "carol", JKT: jkt})
			if err != nil {
				b.Fatal(err)
			}
			c <- is.RefreshToken.Reveal()
		}
		return c
	}
	plainChains, boundChains := chains(""), chains(prover.JKT())
	refresh := func(c chan string, proof string) error {
		tok := <-c
		w, err := call("/v1/refresh", `{"refresh_token":"`+tok+`"}`, proof)
		if err != nil {
			c <- tok
			return err
		}
		var out struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.Unmarshal(w.Body.Bytes(), &out)
		c <- out.RefreshToken
		return nil
	}
	msg := []byte(verifyProofs[0][:strings.LastIndexByte(verifyProofs[0], '.')])
	sig := ed25519.Sign(priv, msg)
	pub := priv.Public().(ed25519.PublicKey)
	var seen atomic.Int64
	baseline := memstore.New()

	ops := []benchpair.Op{
		{Name: "verify-plain", Do: func(context.Context, int) error {
			_, err := call("/v1/sessions/verify", plainVerify, "")
			return err
		}},
		{Name: "verify-dpop", Do: func(context.Context, int) error {
			p := verifyProofs[nextVerify.Add(1)%int64(n)]
			_, err := call("/v1/sessions/verify", `{"access_token":"`+boundAccess+`","dpop":{"proof":"`+p+`","htm":"GET","htu":"`+api+`"}}`, "")
			return err
		}},
		{Name: "refresh-plain", Do: func(context.Context, int) error { return refresh(plainChains, "") }},
		{Name: "refresh-dpop", Do: func(context.Context, int) error {
			return refresh(boundChains, refreshProofs[nextRefresh.Add(1)%int64(n)])
		}},
		{Name: "ed25519-verify", Do: func(context.Context, int) error {
			if !ed25519.Verify(pub, msg, sig) {
				return fmt.Errorf("the baseline signature does not verify")
			}
			return nil
		}},
		{Name: "replay-seen-x100", Do: func(ctx context.Context, _ int) error {
			for range 100 { // too quick alone to share turns with the rest
				if _, err := baseline.Seen(ctx, "dpop:"+strconv.FormatInt(seen.Add(1), 10), time.Now().Add(time.Minute)); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	// Store calls per operation, counted one at a time before the run
	// (and reported after it: the run resets reported metrics).
	calls := map[string][2]float64{}
	for _, op := range ops[:4] {
		const k = 20
		calls0, seen0 := srv.storeCalls(b), replays.n.Load()
		for range k {
			if err := op.Do(ctx, 0); err != nil {
				b.Fatal(err)
			}
		}
		calls[op.Name] = [2]float64{float64(srv.storeCalls(b)-calls0) / k, float64(replays.n.Load()-seen0) / k}
	}
	for _, r := range benchpair.Run(b, 1, 1, ops...) {
		if testing.Verbose() {
			b.Logf("%s: %d ops, %v wall, %v CPU", r.Name, r.Ops, r.Wall, r.CPU)
		}
	}
	for name, c := range calls {
		b.ReportMetric(c[0], name+"-store-calls/op")
		b.ReportMetric(c[1], name+"-replay-calls/op")
	}
}

// proofPool makes n proofs by p for a request, each with a fresh jti.
func proofPool(b *testing.B, p *dpop.Prover, n int, method, url, accessToken string) []string {
	out := make([]string, n)
	for i := range out {
		var err error
		if out[i], err = p.Proof(method, url, dpop.ProofOptions{AccessToken: accessToken}); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// countingReplay counts replay-cache calls.
type countingReplay struct {
	store.ReplayCache
	n atomic.Int64
}

func (c *countingReplay) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	c.n.Add(1)
	return c.ReplayCache.Seen(ctx, key, until)
}

// storeCalls is how many store operations the server's metrics counted.
func (s *Server) storeCalls(b *testing.B) int64 {
	fams, err := s.metrics.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, f := range fams {
		if f.GetName() == "latch_store_operation_duration_seconds" {
			for _, m := range f.GetMetric() {
				n += int64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}
