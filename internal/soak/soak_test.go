package soak

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/faults"
	"github.com/latch-sessions/latch/internal/serveproc"
	"github.com/latch-sessions/latch/internal/testredis"
)

// soakConfig is one run's shape. The short form (go test ./..., CI) runs
// a minute per store; LATCH_SOAK=1h asks for the long form:
//
//	LATCH_SOAK=1h LATCH_SOAK_OUT=$PWD/docs/soak go test -count=1 -v -run TestSoak -timeout 0 ./internal/soak/
type soakConfig struct {
	duration time.Duration // of the load, per store (both stores run at once)
	rate     int           // requests per second per store
	workers  int
	every    time.Duration // sampling interval
	out      string        // directory the charts are written to
}

func config(t *testing.T) soakConfig {
	c := soakConfig{duration: time.Minute, rate: 200, workers: 8}
	if v := os.Getenv("LATCH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			t.Fatalf("LATCH_SOAK=%q: want a duration of at least 30s, such as 1h", v)
		}
		c.duration = d
	}
	if v := os.Getenv("LATCH_SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("LATCH_SOAK_RATE=%q: want requests per second per store, such as 200", v)
		}
		c.rate = n
	}
	c.every = min(max(c.duration/360, time.Second), 10*time.Second).Round(time.Second)
	c.out = os.Getenv("LATCH_SOAK_OUT")
	return c
}

// bounds is what flat means for a run of d: after the warm-up (a sixth of
// the run, 10 s to 5 min) the fitted rise of RssAnon stays under
// 8 MiB + 10 % and that of goroutines and open files under 10 each.
func bounds(d time.Duration) Bounds {
	return Bounds{Warmup: min(max(d/6, 10*time.Second), 5*time.Minute),
		RSSGrowth: 8 << 20, RSSGrowthFraction: 0.10, GoroutineGrowth: 10, FDGrowth: 10}
}

// requireProc skips t where the server's memory and files cannot be read
// (no /proc: not Linux).
func requireProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("the soak reads /proc, which this system lacks: %v", err)
	}
}

// returnSlack is how far above the pre-load baseline goroutines and open
// files may stay once the load's connections are closed.
const returnSlack = 5

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs latch serve under a minute of load per store")
	}
	requireProc(t)
	c := config(t)
	t.Logf("soak: %v per store at %d requests/s, %d workers, a sample every %v", c.duration, c.rate, c.workers, c.every)
	t.Run("bbolt", func(t *testing.T) {
		t.Parallel()
		soak(t, c, "bbolt", "bolt:"+filepath.Join(t.TempDir(), "latch.db"), 0)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rs := testredis.StartServer(t) // a private one: other tests flush the shared Redis
		// A single replica reads its own writes: the staleness bound of
		// the Redis store's cache (250 ms across replicas, RELIABILITY.md)
		// is the tolerance only to keep the checker's rules the same.
		storeURL := "redis://" + rs.Addr()
		if q := os.Getenv("LATCH_SOAK_REDIS_QUERY"); q != "" {
			storeURL += "?" + q // store options, e.g. cache_size=1048576 for caches that fill within the warm-up
		}
		soak(t, c, "redis", storeURL, 250*time.Millisecond)
	})
}

func soak(t *testing.T, c soakConfig, name, storeURL string, tolerance time.Duration) {
	var kek [32]byte
	crand.Read(kek[:])
	// Sessions outlive the run, so the final read-back finds every one
	// the load left live.
	idle := (2*c.duration + 10*time.Minute).Round(time.Minute)
	srv := serveproc.Start(t, serveproc.Options{Store: storeURL,
		Args: []string{"--idle-timeout", idle.String()},
		Env:  []string{"LATCH_KEK=" + base64.StdEncoding.EncodeToString(kek[:])}})
	sampler := NewSampler(srv.PID(), srv.URL+"/metrics")
	h := &faults.History{}
	l := faults.NewLoad([]string{srv.URL}, srv.APIKey, h)
	tick := time.NewTicker(time.Second / time.Duration(c.rate))
	defer tick.Stop()
	l.Pace = func(ctx context.Context) {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	runLoad := func(d time.Duration) (stop func()) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		done := make(chan struct{})
		go func() { l.Run(ctx, c.workers); close(done) }()
		return func() { cancel(); <-done }
	}

	// Prime the store's connection pool and the server's caches, then
	// take the baseline with the load's connections closed.
	runLoad(3 * time.Second)()
	l.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	base, err := sampler.Sample(context.Background())
	for try := 0; err != nil && try < 5; try++ { // a scrape can time out on a loaded machine
		time.Sleep(time.Second)
		base, err = sampler.Sample(context.Background())
	}
	if err != nil {
		t.Fatalf("baseline sample: %v", err)
	}
	t.Logf("%s baseline: RSS %s, RssAnon %s, %d goroutines, %d open files", name, mib(float64(base.RSS)), mib(float64(base.RSSAnon)), base.Goroutines, base.FDs)

	start := time.Now()
	stopLoad := runLoad(c.duration)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	samples, err := sampler.Run(ctx, c.every)
	cancel()
	stopLoad()
	loadEnd := time.Now()
	if err != nil {
		t.Fatalf("sampling: %v", err)
	}
	samples = append([]Sample{base}, samples...)
	during := len(samples)

	// Load stopped: the goroutines and files of its connections must go.
	l.CloseIdleConnections()
	var after Sample
	var back error
	for deadline := time.Now().Add(time.Minute); ; {
		time.Sleep(time.Second)
		smp, err := sampler.Sample(context.Background())
		switch {
		case err == nil:
			after = smp
			samples = append(samples, after)
			back = Returned(base, after, returnSlack)
		case time.Now().After(deadline):
			t.Fatalf("sample after the load: %v", err)
		default:
			continue // a scrape slower than its timeout on a loaded machine: try again
		}
		if back == nil || time.Now().After(deadline) {
			break
		}
	}
	settle := time.Since(loadEnd)

	AddRequests(samples, h.Ops())
	l.Pace = nil // the read-back goes as fast as the server answers
	l.Reread(context.Background())
	r := faults.Check(h, faults.Options{Tolerance: tolerance})

	v := Judge(samples[:during], bounds(c.duration))
	var opts string
	if u, err := url.Parse(storeURL); err == nil {
		opts = u.RawQuery
	}
	rec := &record{Name: name, Options: opts, Duration: c.duration, Rate: c.rate, Samples: samples,
		Marks: map[string]time.Time{"warm-up ends": start.Add(bounds(c.duration).Warmup), "load stops": loadEnd}}
	out := c.out
	if out == "" {
		out = t.TempDir()
	}
	if err := rec.write(out); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s charts in %s", name, out)

	t.Logf("RESULT %s load: %s", name, loadSummary(h.Ops(), samples[1:during], start, loadEnd))
	t.Logf("RESULT %s resources: %v; after the load (%v): %d goroutines, %d open files", name, &v, settle.Round(time.Second), after.Goroutines, after.FDs)
	t.Logf("RESULT %s checker: %v", name, r)
	for _, p := range v.Problems {
		t.Errorf("%s: %s", name, p)
	}
	if back != nil {
		t.Errorf("%s: goroutines or files did not return to the baseline within a minute: %v", name, back)
	}
	if !r.OK() {
		t.Errorf("%s: the checker found %d violations, first ones: %q", name, len(r.Violations), r.Violations)
	}
	if r.Sessions == 0 || r.Revocations == 0 || r.Rotations == 0 {
		t.Errorf("%s: the load exercised too little to check anything: %v", name, r)
	}
}

// loadSummary is the load's achieved rate and latency, and the spread of
// the per-interval figures and of the load average, for RELIABILITY.md.
func loadSummary(ops []faults.Op, iv []Sample, start, end time.Time) string {
	d := end.Sub(start)
	var lat []time.Duration
	for i := range ops {
		if !ops[i].Final && !ops[i].Start.Before(start) {
			lat = append(lat, ops[i].End.Sub(ops[i].Start))
		}
	}
	n := len(lat)
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	var p99s, store99s []time.Duration
	var loads []float64
	for _, s := range iv {
		p99s = append(p99s, s.ReqP99)
		store99s = append(store99s, s.StoreP99)
		loads = append(loads, s.Load1)
	}
	slices.Sort(loads)
	load := "n/a"
	if len(loads) > 0 {
		load = strconv.FormatFloat(loads[0], 'f', 1, 64) + "–" + strconv.FormatFloat(loads[len(loads)/2], 'f', 1, 64) + "–" + strconv.FormatFloat(loads[len(loads)-1], 'f', 1, 64)
	}
	return "requests " + strconv.Itoa(n) + " (" + strconv.FormatFloat(float64(n)/d.Seconds(), 'f', 0, 64) + "/s); request p50 " + p50.Round(time.Microsecond).String() +
		", p99 " + p99.Round(time.Microsecond).String() + "; per-interval request p99 median " + percentile(p99s, 0.5).Round(time.Microsecond).String() +
		", max " + percentile(p99s, 1).Round(time.Microsecond).String() + "; per-interval store p99 median " + percentile(store99s, 0.5).Round(time.Microsecond).String() +
		", max " + percentile(store99s, 1).Round(time.Microsecond).String() + "; load average min–median–max " + load
}

// record is one store's run as the charts need it. It is written next to
// the charts as NAME-samples.json (not committed: RELIABILITY.md has the
// figures) so the charts can be redrawn without another hour of load.
type record struct {
	Name     string
	Options  string // the store URL's query, if any
	Duration time.Duration
	Rate     int
	Marks    map[string]time.Time
	Samples  []Sample
}

func (r *record) write(dir string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, r.Name+"-samples.json"), b, 0o644); err != nil {
		return err
	}
	return r.draw(dir)
}

func (r *record) draw(dir string) error {
	title := func(what string) string {
		store := r.Name
		if r.Options != "" {
			store += " (" + r.Options + ")"
		}
		return "latch serve on " + store + ": " + what + " (" + r.Duration.String() + " at " + strconv.Itoa(r.Rate) + " requests/s)"
	}
	for file, fig := range map[string]*Figure{
		r.Name + "-resources.svg": ResourceChart(title("memory, goroutines, open files"), r.Samples, r.Marks),
		r.Name + "-latency.svg":   LatencyChart(title("latency and throughput"), r.Samples, r.Marks),
	} {
		if err := os.WriteFile(filepath.Join(dir, file), fig.SVG(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestSoakRedraw redraws the charts of an earlier run from its
// NAME-samples.json files in LATCH_SOAK_REDRAW (a directory), after a
// change to the charts' code.
func TestSoakRedraw(t *testing.T) {
	dir := os.Getenv("LATCH_SOAK_REDRAW")
	if dir == "" {
		t.Skip("set LATCH_SOAK_REDRAW to a directory a soak wrote its samples to")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-samples.json"))
	if len(files) == 0 {
		t.Fatalf("no *-samples.json in %s", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := r.draw(dir); err != nil {
			t.Fatal(err)
		}
		var during []Sample
		for _, s := range r.Samples {
			if !s.At.After(r.Marks["load stops"]) {
				during = append(during, s)
			}
		}
		v := Judge(during, bounds(r.Duration))
		t.Logf("redrew %s's charts in %s; verdict: %v, problems %q", r.Name, dir, &v, v.Problems)
	}
}
