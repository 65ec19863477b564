package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store/redisstore"
)

// replica is one `latch serve` instance: its own Redis client (with its own
// client-side cache), keyring and HTTP listener, sharing only the Redis
// server with the other replicas.
func startReplica(t *testing.T, url string, kek []byte, opts ...redisstore.Option) *httptest.Server {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("opening %s: %v", strings.SplitN(url, "?", 2)[0], err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(context.Background(), Options{
		Store:  st,
		APIKey: testAPIKey,
		KEK:    kek,
		Issuer: "https://latch.test",
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// uniquePrefix returns a fresh key prefix for a test on the Redis at base
// and, for a standalone Redis, removes the keyring saved under it when the
// test ends (sessions expire by TTL; the keyring has none).
func uniquePrefix(t *testing.T, base, name string) string {
	var p [6]byte
	rand.Read(p[:])
	prefix := name + hex.EncodeToString(p[:]) + ":"
	if strings.HasPrefix(base, "redis://") {
		t.Cleanup(func() {
			host, port, _ := strings.Cut(base[len("redis://"):], ":")
			exec.Command("redis-cli", "-h", host, "-p", port, "DEL", prefix+"{keyring}").Run()
		})
	}
	return prefix
}

// call sends a back-channel request to a replica and returns the status.
func call(t *testing.T, ts *httptest.Server, method, path, body string, out *bytes.Buffer) int {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		out.Reset()
		io.Copy(out, resp.Body)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode
}

// testReplicas runs two replicas on one Redis: a session created and
// revoked through A must be rejected by B — whose cache saw it live —
// within 50 ms, for its session token and its access token alike.
func testReplicas(t *testing.T, base string) {
	url := base + "?prefix=" + uniquePrefix(t, base, "latchrepl")
	kek := bytes.Repeat([]byte{9}, 32)
	a := startReplica(t, url, kek)
	b := startReplica(t, url, kek) // loads the keyring A created

	// Every round must end with B refusing both carriers (revocationDelays
	// fails the test otherwise); what is statistical is how fast. The target
	// is 50 ms. On a machine whose two cores are shared, the scheduler alone
	// can delay a single round by tens of milliseconds, so the bound holds
	// for the 90th percentile, max stays within a second, and a batch that
	// misses them is measured once more: a load spike passes, a slow
	// propagation path misses both batches.
	const rounds = 40
	for attempt := 1; ; attempt++ {
		delays := revocationDelays(t, a, b, rounds)
		slices.Sort(delays)
		p50, p90, max := delays[len(delays)/2], delays[len(delays)*9/10], delays[len(delays)-1]
		t.Logf("batch %d: revocation through replica A rejected by replica B after: p50 %v, p90 %v, max %v (%d rounds)", attempt, p50, p90, max, len(delays))
		if p90 < 50*time.Millisecond && max < time.Second {
			return
		}
		if attempt == 2 {
			t.Errorf("cross-replica revocation delay in two batches in a row: p90 %v (want < 50ms), max %v (want < 1s)", p90, max)
			return
		}
	}
}

// revocationDelays runs rounds of: create a session through A, verify both
// its carriers through B (B's cache now holds the live record), revoke it
// through A, then poll B until it refuses the session token, and check it
// refuses the access token too. It returns, per round, the time from A's
// answer to the revocation to B's refusal.
func revocationDelays(t *testing.T, a, b *httptest.Server, rounds int) []time.Duration {
	t.Helper()
	var delays []time.Duration
	var buf bytes.Buffer
	for i := range rounds {
		if code := call(t, a, "POST", "/v1/sessions", fmt.Sprintf(`{"subject":"replica-%d"}`, i), &buf); code != http.StatusCreated {
			t.Fatalf("create through A: %d %s", code, buf.String())
		}
		c := parseCreated(t, buf.Bytes())
		verifySession := fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)
		verifyAccess := fmt.Sprintf(`{"access_token":%q}`, c.accessToken)
		for _, body := range []string{verifySession, verifyAccess} {
			if code := call(t, b, "POST", "/v1/sessions/verify", body, &buf); code != http.StatusOK {
				t.Fatalf("verify through B: %d %s", code, buf.String())
			}
		}
		if code := call(t, a, "DELETE", "/v1/sessions/"+c.id, "", nil); code != http.StatusNoContent {
			t.Fatalf("revoke through A: %d", code)
		}
		revoked := time.Now()
		for {
			code := call(t, b, "POST", "/v1/sessions/verify", verifySession, &buf)
			if code == http.StatusUnauthorized {
				if !strings.Contains(buf.String(), `"code":"revoked"`) {
					t.Fatalf("B rejected the session for another reason: %s", buf.String())
				}
				delays = append(delays, time.Since(revoked))
				break
			}
			if code != http.StatusOK {
				t.Fatalf("verify through B after revocation: %d %s", code, buf.String())
			}
			if time.Since(revoked) > 5*time.Second {
				t.Fatalf("round %d: B still accepted the session 5 s after A revoked it", i)
			}
			time.Sleep(200 * time.Microsecond)
		}
		if code := call(t, b, "POST", "/v1/sessions/verify", verifyAccess, &buf); code != http.StatusUnauthorized || !strings.Contains(buf.String(), `"code":"revoked"`) {
			t.Fatalf("B accepted the access token of a session A revoked: %d %s", code, buf.String())
		}
	}
	return delays
}

func TestReplicasRedis(t *testing.T) {
	testReplicas(t, "redis://"+testredis.Addr(t))
}

func TestReplicasRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	testReplicas(t, "redis-cluster://"+strings.Join(testredis.StartCluster(t), ","))
}
