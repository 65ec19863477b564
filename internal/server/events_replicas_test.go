package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
)

// testEventReplicas: a subscriber on replica B sees every revocation made
// through replica A on the same store, and reports how long after A's
// answer each event arrived.
func testEventReplicas(t *testing.T, start func(t *testing.T) (a, b *httpReplica)) {
	a, b := start(t)
	s := openStream(t, b.client, b.url, "", "", io.Discard)
	if !s.heartbeat(10 * time.Second) {
		t.Fatal("no heartbeat from B on a healthy store")
	}
	const rounds = 20
	var delays []time.Duration
	var buf bytes.Buffer
	for i := range rounds {
		if code := b.call(t, "POST", "/v1/sessions", fmt.Sprintf(`{"subject":"events-%d"}`, i), &buf); code != http.StatusCreated {
			t.Fatalf("create: %d %s", code, buf.String())
		}
		c := parseCreated(t, buf.Bytes())
		if code := a.call(t, "DELETE", "/v1/sessions/"+c.id, "", nil); code != http.StatusNoContent {
			t.Fatalf("revoke through A: %d", code)
		}
		answered := time.Now()
		for {
			e, _ := s.next()
			if e.event == "session.revoked" && e.json(t)["session_id"] == c.id {
				delays = append(delays, time.Since(answered))
				break
			}
		}
	}
	slices.Sort(delays)
	t.Logf("revoke answered by A -> event on B's stream: p50 %v, p99 %v, max %v (%d rounds)", delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1], rounds)
	if delays[len(delays)/2] > time.Second { // a gross regression only: the machine is shared
		t.Errorf("median event delay %v", delays[len(delays)/2])
	}
}

// httpReplica is a replica's base URL and HTTP client.
type httpReplica struct {
	url    string
	client *http.Client
}

func (r *httpReplica) call(t *testing.T, method, path, body string, out *bytes.Buffer) int {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
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

func redisReplicas(base string) func(t *testing.T) (a, b *httpReplica) {
	return func(t *testing.T) (a, b *httpReplica) {
		url := base + "?prefix=" + uniquePrefix(t, base, "latchev")
		kek := bytes.Repeat([]byte{9}, 32)
		ta := startReplica(t, url, kek)
		tb := startReplica(t, url, kek)
		return &httpReplica{ta.URL, ta.Client()}, &httpReplica{tb.URL, tb.Client()}
	}
}

func TestEventReplicasRedis(t *testing.T) {
	testEventReplicas(t, redisReplicas("redis://"+testredis.Addr(t)))
}

func TestEventReplicasRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	testEventReplicas(t, redisReplicas("redis-cluster://"+strings.Join(testredis.StartCluster(t), ",")))
}
