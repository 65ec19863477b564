package soak

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const metricsText = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_inuse_bytes 2.203648e+06
# TYPE latch_store_operation_duration_seconds histogram
latch_store_operation_duration_seconds_bucket{operation="get",result="ok",le="0.001"} 40
latch_store_operation_duration_seconds_bucket{operation="get",result="ok",le="0.01"} 80
latch_store_operation_duration_seconds_bucket{operation="get",result="ok",le="+Inf"} 80
latch_store_operation_duration_seconds_sum{operation="get",result="ok"} 0.2
latch_store_operation_duration_seconds_count{operation="get",result="ok"} 80
latch_store_operation_duration_seconds_bucket{operation="update",result="conflict",le="0.001"} 10
latch_store_operation_duration_seconds_bucket{operation="update",result="conflict",le="0.01"} 20
latch_store_operation_duration_seconds_bucket{operation="update",result="conflict",le="+Inf"} 20
latch_http_request_duration_seconds_bucket{route="POST /v1/refresh",code="200",le="0.001"} 999
`

func TestParseMetricsSumsTheStoreHistogram(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	if m.goroutines != 42 || m.heapInuse != 2203648 {
		t.Errorf("goroutines %v and heap in use %v, want 42 and 2203648", m.goroutines, m.heapInuse)
	}
	// Summed over operation and result; the HTTP histogram left out.
	want := histogram{{0.001, 50}, {0.01, 100}, {inf(), 100}}
	if fmt.Sprint(m.store) != fmt.Sprint(want) {
		t.Errorf("store histogram %v, want %v", m.store, want)
	}
	if got := m.store.quantile(0.5); got != time.Millisecond {
		t.Errorf("p50 %v, want 1ms (the top of the first bucket, which holds exactly half)", got)
	}
	// 99th of 100 lies 49/50 of the way through (1 ms, 10 ms].
	if got, want := m.store.quantile(0.99), seconds(0.001+0.009*49.0/50); got != want {
		t.Errorf("p99 %v, want %v", got, want)
	}
}

func TestParseMetricsWithoutGoroutinesIsAnError(t *testing.T) {
	if _, err := parseMetrics(strings.NewReader("process_open_fds 3\n")); err == nil {
		t.Error("metrics without go_goroutines parsed: the chart would show a flat zero")
	}
}

func TestHistogramIntervalQuantiles(t *testing.T) {
	prev := histogram{{0.001, 50}, {0.01, 100}, {inf(), 100}}
	now := histogram{{0.001, 50}, {0.01, 100}, {inf(), 110}} // ten slow operations since
	d := now.minus(prev)
	if d.total() != 10 {
		t.Fatalf("interval total %v, want 10", d.total())
	}
	if got := d.quantile(0.5); got != 10*time.Millisecond {
		t.Errorf("all in +Inf: p50 %v, want the largest finite bound, 10ms", got)
	}
	if got := (histogram{}).quantile(0.99); got != 0 {
		t.Errorf("empty histogram: %v, want 0", got)
	}
}

// TestSamplerReadsThisProcess reads the test's own process and proves the
// readings move with what it does: 40 more open files are counted, and
// 64 MiB written to a fresh allocation show in RssAnon.
func TestSamplerReadsThisProcess(t *testing.T) {
	requireProc(t)
	srv := goroutineMetrics(t)
	s := NewSampler(os.Getpid(), srv.URL)
	before, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for i := range 40 {
		f, err := os.Create(filepath.Join(t.TempDir(), fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	mem := touch(64 << 20)
	after, err := s.Sample(context.Background())
	runtime.KeepAlive(mem)
	if err != nil {
		t.Fatal(err)
	}
	if after.FDs-before.FDs < 40 {
		t.Errorf("open files %d → %d after opening 40", before.FDs, after.FDs)
	}
	if after.RSSAnon-before.RSSAnon < 48<<20 || after.RSS < after.RSSAnon {
		t.Errorf("RssAnon %s → %s (RSS %s) after writing 64 MiB", mib(float64(before.RSSAnon)), mib(float64(after.RSSAnon)), mib(float64(after.RSS)))
	}
	if after.Goroutines <= 0 {
		t.Errorf("goroutines %d", after.Goroutines)
	}
}

// TestJudgeCatchesAPlantedLeak samples this process while it leaks
// memory, goroutines and open files at a steady rate, as a leaking server
// would, and requires the verdict to name all three; the same sampling
// without the leak must pass. The verdict is trusted on the soak's runs
// only because it fails this one.
func TestJudgeCatchesAPlantedLeak(t *testing.T) {
	requireProc(t)
	b := Bounds{RSSGrowth: 8 << 20, RSSGrowthFraction: 0.10, GoroutineGrowth: 10, FDGrowth: 10}
	run := func(leak bool) Verdict {
		srv := goroutineMetrics(t)
		s := NewSampler(os.Getpid(), srv.URL)
		stop := make(chan struct{})
		var kept [][]byte
		var files []*os.File
		defer func() {
			close(stop)
			for _, f := range files {
				f.Close()
			}
		}()
		var samples []Sample
		for i := range 30 {
			if leak {
				kept = append(kept, touch(4<<20))
				go func() { <-stop }()
				f, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			smp, err := s.Sample(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The verdict fits against sample times: space them evenly
			// (synthetic times, so a loaded machine's pauses do not bend the line).
			smp.At = time.Unix(0, 0).Add(time.Duration(i) * time.Second)
			samples = append(samples, smp)
		}
		runtime.KeepAlive(kept)
		return Judge(samples, b)
	}
	leaky := run(true)
	t.Logf("leaking: %v", &leaky)
	for _, what := range []string{"RssAnon rose", "goroutines rose", "open files rose"} {
		if !strings.Contains(strings.Join(leaky.Problems, "\n"), what) {
			t.Errorf("the verdict missed the planted leak (%q): %q", what, leaky.Problems)
		}
	}
	flat := run(false)
	t.Logf("flat: %v", &flat)
	if !flat.OK() {
		t.Errorf("no leak, yet: %q", flat.Problems)
	}
}

// goroutineMetrics serves go_goroutines for this process, as latch serve's
// /metrics does for its own.
func goroutineMetrics(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// touch allocates n bytes and writes every page, so they are resident.
func touch(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}
