package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faultnet"
	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store/redisstore"
)

// The tests below are issue 16's fault: replica B loses its link to Redis
// without noticing (a proxy that stalls, or packets silently dropped),
// while replica A revokes a session B has cached. B may accept the revoked
// session only within the store's staleness bound after the revocation
// was acknowledged (plus the one request in flight), then answers 503
// until its link works again, and then `revoked`.

// faultTimeout is the store's call timeout in these tests, so that the
// 503s during the fault come quickly.
const faultTimeout = 300 * time.Millisecond

// faultRounds is how many times each test repeats the scenario:
// LATCH_FAULT_ROUNDS, default 3 (RELIABILITY.md used 20).
func faultRounds(t *testing.T) int {
	if n, err := strconv.Atoi(os.Getenv("LATCH_FAULT_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// fault is a way to break and repair B's link to Redis.
type fault struct {
	dial         func(ctx context.Context, addr string) (net.Conn, error)
	break_, heal func()
}

// testStaleReplica runs the scenario on the Redis at base (a redis:// or
// redis-cluster:// URL without query) with B connected through f, and
// logs how long B accepted each revoked session.
func testStaleReplica(t *testing.T, base string, f fault) {
	prefix := "latchstale" + strings.ToLower(strconv.FormatInt(time.Now().UnixNano(), 36)) + ":"
	url := base + "?prefix=" + prefix + "&timeout=" + faultTimeout.String()
	kek := bytes.Repeat([]byte{7}, 32)
	a := startReplica(t, url, kek)
	b := startReplica(t, url, kek, func(o *redisstore.Options) { o.Dial = f.dial })
	bound := redisstore.DefaultCacheStaleness

	var windows []time.Duration
	var buf bytes.Buffer
	for i := range faultRounds(t) {
		if code := call(t, a, "POST", "/v1/sessions", fmt.Sprintf(`{"subject":"stale-%d"}`, i), &buf); code != http.StatusCreated {
			t.Fatalf("create through A: %d %s", code, buf.String())
		}
		c := parseCreated(t, buf.Bytes())
		verify := fmt.Sprintf(`{"session_token":%q}`, c.sessionToken)
		// B validates the session a few times: its cache now holds it.
		for range 5 {
			if code := call(t, b, "POST", "/v1/sessions/verify", verify, &buf); code != http.StatusOK {
				t.Fatalf("verify through B: %d %s", code, buf.String())
			}
		}

		f.break_()
		if code := call(t, a, "DELETE", "/v1/sessions/"+c.id, "", nil); code != http.StatusNoContent {
			f.heal()
			t.Fatalf("revoke through A: %d", code)
		}
		acked := time.Now()
		// B may accept the session only in requests that started within
		// the bound after the acknowledgement; then it must answer 503.
		var window time.Duration
		unavailable := 0
		for unavailable < 2 {
			start := time.Now()
			code := call(t, b, "POST", "/v1/sessions/verify", verify, &buf)
			switch code {
			case http.StatusOK:
				if since := start.Sub(acked); since >= bound {
					f.heal()
					t.Fatalf("round %d: B accepted the revoked session in a request started %v after the revocation, bound %v", i, since, bound)
				}
				window = time.Since(acked)
			case http.StatusServiceUnavailable:
				unavailable++
			default:
				f.heal()
				t.Fatalf("round %d: B answered %d %s while cut off from Redis, want 200 (within %v) or 503", i, code, buf.String(), bound)
			}
			time.Sleep(2 * time.Millisecond)
		}
		windows = append(windows, window)

		f.heal()
		healed := time.Now()
		for {
			code := call(t, b, "POST", "/v1/sessions/verify", verify, &buf)
			if code == http.StatusUnauthorized {
				if !strings.Contains(buf.String(), `"code":"revoked"`) {
					t.Fatalf("round %d: B rejected the session for another reason: %s", i, buf.String())
				}
				break
			}
			if code != http.StatusServiceUnavailable {
				t.Fatalf("round %d: B answered %d %s after the link came back, want 503 then 401 revoked", i, code, buf.String())
			}
			if time.Since(healed) > 15*time.Second {
				t.Fatalf("round %d: B still unavailable 15 s after its link came back", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	slices.Sort(windows)
	t.Logf("B accepted a session revoked through A for: p50 %v, max %v after the revocation (%d rounds; bound %v)",
		windows[len(windows)/2].Round(time.Millisecond), windows[len(windows)-1].Round(time.Millisecond), len(windows), bound)
}

// stallFault routes B through one stalling proxy per Redis node.
func stallFault(t *testing.T, addrs []string) fault {
	ps := faultnet.NewProxies(t, addrs...)
	return fault{dial: ps.Dial, break_: ps.Stall, heal: ps.Resume}
}

func TestStaleReplicaStalledProxy(t *testing.T) {
	srv := testredis.StartServer(t)
	testStaleReplica(t, "redis://"+srv.Addr(), stallFault(t, []string{srv.Addr()}))
}

func TestStaleReplicaStalledProxyCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	addrs := testredis.StartCluster(t)
	testStaleReplica(t, "redis-cluster://"+strings.Join(addrs, ","), stallFault(t, addrs))
}

// TestStaleReplicaNetworkCut cuts B off for real: B's sockets live in a
// network namespace joined to the host by a veth pair, Redis listens on
// the host end, and the cut drops every packet on both ends.
func TestStaleReplicaNetworkCut(t *testing.T) {
	n := faultnet.NewNet(t)
	srv := testredis.StartServer(t, "--bind", "127.0.0.1", n.HostIP, "--protected-mode", "no")
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return n.Dial(ctx, net.JoinHostPort(n.HostIP, port))
	}
	testStaleReplica(t, "redis://"+srv.Addr(), fault{dial: dial, break_: n.Cut, heal: n.Heal})
}
