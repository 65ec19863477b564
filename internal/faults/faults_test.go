package faults

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/serveproc"
	"github.com/latch-sessions/latch/internal/testredis"
)

// long reports whether the long form was asked for (LATCH_FAULTS_LONG=1):
// longer load between faults and more repetitions. The short form runs in
// `go test ./...` and CI.
func long() bool { return os.Getenv("LATCH_FAULTS_LONG") == "1" }

// phase is how long load runs before, during and after a fault.
func phase() time.Duration {
	if long() {
		return 5 * time.Second
	}
	return time.Second
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs latch serve under injected faults")
	}
}

func randomKey() string {
	var b [32]byte
	crand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// deployment is n latch serve replicas on one store.
type deployment struct {
	opts []serveproc.Options
	srv  []*serveproc.Server
}

func deploy(t *testing.T, n int, storeURL string) *deployment {
	t.Helper()
	return deployWith(t, n, storeURL, nil)
}

// deployWith is deploy with each replica's options changed by edit (if not
// nil) before it starts.
func deployWith(t *testing.T, n int, storeURL string, edit func(i int, o *serveproc.Options)) *deployment {
	t.Helper()
	d := &deployment{}
	kek, key := randomKey(), randomKey()
	for i := range n {
		o := serveproc.Options{Store: storeURL, APIKey: key, Addr: serveproc.FreeAddr(t), Env: []string{"LATCH_KEK=" + kek}}
		if edit != nil {
			edit(i, &o)
		}
		d.opts = append(d.opts, o)
		d.srv = append(d.srv, serveproc.Start(t, o))
	}
	return d
}

func (d *deployment) urls() []string {
	var u []string
	for _, o := range d.opts {
		u = append(u, "http://"+o.Addr)
	}
	return u
}

// drive runs load against d while inject runs, then reads every
// acknowledged write back and checks the history.
func drive(t *testing.T, d *deployment, workers int, o Options, h *History, inject func(h *History)) *Report {
	t.Helper()
	l := NewLoad(d.urls(), d.opts[0].APIKey, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx, workers); close(done) }()
	t0 := time.Now()
	inject(h)
	cancel()
	<-done
	t1 := time.Now()
	l.Reread(context.Background())
	t.Logf("load with faults %v, read-back %v", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	r := Check(h, o)
	t.Logf("RESULT %s: %v", t.Name(), r)
	if !r.OK() {
		t.Errorf("%d violations, first ones: %q", len(r.Violations), r.Violations)
		dump(t, h, r)
	}
	if r.Sessions == 0 || r.Revocations == 0 || r.Rotations == 0 {
		t.Errorf("the load exercised too little to check anything: %v", r)
	}
	for i, rec := range r.Recovery {
		if rec < 0 {
			t.Errorf("fault %d: some replica never answered a request successfully after the dependency returned", i)
		}
	}
	return r
}

// redisURL starts a private Redis that fsyncs every write (appendfsync
// always), so a kill -9 loses nothing it acknowledged, and returns it with
// the --store URL for it.
func redisURL(t *testing.T) (*testredis.Server, string) {
	rs := testredis.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	return rs, "redis://" + rs.Addr() + "?timeout=500ms"
}

// redisTolerance is the Redis store's documented staleness bound: a
// replica may accept a revoked session for up to this long after another
// replica acknowledged the revocation (RELIABILITY.md, "bounded staleness").
const redisTolerance = 250 * time.Millisecond

func TestRedisKillRestart(t *testing.T) {
	redisFault(t, "redis kill -9", (*testredis.Server).Kill, (*testredis.Server).Restart)
}

func TestRedisStopCont(t *testing.T) {
	redisFault(t, "redis SIGSTOP/SIGCONT", (*testredis.Server).Pause, (*testredis.Server).Resume)
}

// redisFault runs two replicas on a private Redis and, under load, breaks
// it and brings it back after a phase, once in the short form and three
// times in the long form.
func redisFault(t *testing.T, name string, breakIt, fix func(*testredis.Server)) {
	skipShort(t)
	rs, url := redisURL(t)
	d := deploy(t, 2, url)
	drive(t, d, 8, Options{Tolerance: redisTolerance}, &History{}, func(h *History) {
		time.Sleep(phase())
		for range rounds(1, 3) {
			start := time.Now()
			breakIt(rs)
			time.Sleep(phase())
			fix(rs)
			h.Inject(name, start, time.Now())
			time.Sleep(phase())
		}
	})
}

// rounds is short in the short form and n in the long form.
func rounds(short, n int) int {
	if long() {
		return n
	}
	return short
}

// TestBoltKill kills latch serve with SIGKILL at random points under write
// load and restarts it on the same file: every acknowledged write must be
// there after the restart.
func TestBoltKill(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	d := deploy(t, 1, "bolt:"+filepath.Join(dir, "latch.db"))
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		for range rounds(3, 20) {
			time.Sleep(200*time.Millisecond + rand.N(phase()))
			start := time.Now()
			d.srv[0].Kill()
			back := time.Now()
			d.srv[0] = serveproc.Start(t, d.opts[0])
			h.Inject("latch serve kill -9", start, back)
		}
		time.Sleep(phase())
	})
}

// TestSIGTERMDrain stops one of two Redis replicas with SIGTERM under load
// and starts it again: every request in flight when the signal came is
// answered, and no answer is a 5xx other than 503.
//
// "In flight" means started at least drainMargin before the signal: a
// request sent within a moment of it can meet a keep-alive connection the
// draining server is closing as idle, or a listener's backlog as it
// closes (the HTTP/1.1 idle-close race; the server never read it). Those
// are counted in Report.Dropped and logged, not failed.
func TestSIGTERMDrain(t *testing.T) {
	skipShort(t)
	_, url := redisURL(t)
	d := deploy(t, 2, url)
	h := &History{}
	r := drive(t, d, 8, Options{Tolerance: redisTolerance}, h, func(h *History) {
		for range rounds(2, 10) {
			time.Sleep(phase())
			start := time.Now()
			d.srv[1].Stop()
			back := time.Now()
			d.srv[1] = serveproc.Start(t, d.opts[1])
			h.Inject("latch serve SIGTERM", start, back)
		}
		time.Sleep(phase())
	})
	inFlight, dropped := 0, 0
	for _, f := range h.Faults() {
		for _, op := range h.Ops() {
			if op.Replica != 1 || op.Start.After(f.Start) || op.End.Before(f.Start) {
				continue
			}
			inFlight++
			if !op.Answered() && !op.Refused && op.Start.Before(f.Start.Add(-drainMargin)) {
				dropped++
			}
		}
	}
	t.Logf("RESULT %s: %d requests in flight at the signals, %d of them dropped", t.Name(), inFlight, dropped)
	if dropped > 0 {
		t.Errorf("%d requests in flight at SIGTERM were dropped unanswered", dropped)
		dump(t, h, r)
	}
}

// drainMargin is generous because on a loaded machine the server may not
// have read a request for tens of milliseconds: the long form once saw a
// create sent 58 ms before the signal cut with EOF on a keep-alive
// connection the server still counted as idle.
const drainMargin = 250 * time.Millisecond

// dump logs the operations of the sessions named in r's violations and
// the unanswered ones: kinds, replicas, statuses, times; never a token.
func dump(t *testing.T, h *History, r *Report) {
	named := map[string]bool{}
	for _, v := range r.Violations {
		if _, rest, ok := strings.Cut(v, "session "); ok {
			id, _, _ := strings.Cut(rest, ":")
			named[id] = true
		}
	}
	t0 := time.Time{}
	for _, op := range h.Ops() {
		if t0.IsZero() {
			t0 = op.Start
		}
		if named[op.Session] || (!op.Answered() && !op.Refused) {
			t.Logf("  %s %-14s r%d expect=%d final=%v %v..%v %d %q %s", op.Session, op.Kind, op.Replica, op.Expect, op.Final,
				op.Start.Sub(t0).Round(time.Millisecond), op.End.Sub(t0).Round(time.Millisecond), op.Status, op.Code, op.Err)
		}
	}
	for _, f := range h.Faults() {
		t.Logf("  fault %s %v..%v", f.Name, f.Start.Sub(t0).Round(time.Millisecond), f.Back.Sub(t0).Round(time.Millisecond))
	}
}

// TestRedisSentinelFailover runs two replicas on a Sentinel-monitored
// master with one Redis replica, kills the master under load and waits
// for the Sentinel to promote the replica: recovery counts from the
// promotion.
func TestRedisSentinelFailover(t *testing.T) {
	skipShort(t)
	master := testredis.StartServer(t)
	replica := testredis.StartReplica(t, master)
	sen := testredis.StartSentinel(t, master, replica)
	d := deploy(t, 2, "redis-sentinel://"+sen.Addr()+"/"+testredis.SentinelMaster+"?timeout=500ms")
	drive(t, d, 8, Options{Tolerance: redisTolerance}, &History{}, func(h *History) {
		time.Sleep(phase())
		start := time.Now()
		master.Kill()
		sen.WaitMaster(t, replica.Addr(), 30*time.Second)
		h.Inject("redis sentinel failover", start, time.Now())
		time.Sleep(phase())
	})
}
