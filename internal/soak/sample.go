// Package soak is latch's soak: mixed load at a steady rate on a real
// `latch serve` for a long time (an hour by hand, a minute or two in CI)
// while the server's memory, goroutines, open files, store latency and the
// machine's load average are sampled every few seconds. It judges whether
// they stayed flat ([Judge]) and draws them as SVG charts ([ResourceChart],
// [LatencyChart]).
//
// The load and its checker are internal/faults': every operation is
// recorded and checked afterwards (0 wrongly accepted, 0 acknowledged
// writes lost), so a leak that only shows after an hour and a wrong answer
// that only shows after an hour are both caught. The test in this package
// runs the soak on bbolt and on Redis; RELIABILITY.md has the figures and
// the charts of the hour-long runs.
//
// Linux only: the server's memory and files are read from /proc.
package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading of the server and the machine, and what happened
// in the interval since the previous reading.
type Sample struct {
	At         time.Time
	RSS        int64 // resident set, bytes (VmRSS)
	RSSAnon    int64 // its anonymous part, bytes (RssAnon): the heap and stacks, without mapped files such as bbolt's
	FDs        int   // open file descriptors
	Goroutines int   // the server's go_goroutines
	HeapInuse  int64 // the server's go_memstats_heap_inuse_bytes: the Go heap's spans in use, which RssAnon holds along with stacks and freed pages not yet returned
	Load1      float64

	// Over the interval ending at At:
	Interval           time.Duration // since the previous sample (set by [AddRequests]; 0 for the first)
	StoreOps           int64         // store operations the server timed
	StoreP50, StoreP99 time.Duration // their latency, estimated from the server's histogram
	Requests           int           // requests the load finished (see [AddRequests])
	Errors             int           // of which not 2xx/4xx answers (5xx or no answer)
	ReqP50, ReqP99     time.Duration // their latency as the client saw it
}

// Sampler reads one server process. Create it with [NewSampler].
type Sampler struct {
	pid        int
	metricsURL string
	client     *http.Client
	prev       histogram // the store histogram at the previous reading
}

// NewSampler samples the process pid, whose Prometheus metrics are served
// at metricsURL (latch serve's /metrics).
func NewSampler(pid int, metricsURL string) *Sampler {
	return &Sampler{pid: pid, metricsURL: metricsURL, client: &http.Client{Timeout: 5 * time.Second}}
}

// Sample takes one reading. The store latency covers the operations since
// the previous call (since the process started, on the first).
func (s *Sampler) Sample(ctx context.Context) (Sample, error) {
	smp := Sample{At: time.Now()}
	var err error
	if smp.RSS, smp.RSSAnon, err = memory(s.pid); err != nil {
		return smp, err
	}
	if smp.FDs, err = openFiles(s.pid); err != nil {
		return smp, err
	}
	smp.Load1, _ = loadAverage() // not a property of the server: a reading missing is not an error
	m, err := s.scrape(ctx)
	if err != nil {
		return smp, err
	}
	smp.Goroutines = int(m.goroutines)
	smp.HeapInuse = int64(m.heapInuse)
	d := m.store.minus(s.prev)
	s.prev = m.store
	smp.StoreOps = int64(d.total())
	smp.StoreP50, smp.StoreP99 = d.quantile(0.50), d.quantile(0.99)
	return smp, nil
}

// Run samples every interval until ctx ends and returns the readings. A
// reading that fails (the server busy past the scrape timeout) is left
// out; err reports the last failure if every reading failed.
func (s *Sampler) Run(ctx context.Context, every time.Duration) ([]Sample, error) {
	var out []Sample
	var last error
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if len(out) == 0 {
				return nil, last
			}
			return out, nil
		case <-t.C:
		}
		smp, err := s.Sample(ctx)
		if err != nil {
			if ctx.Err() == nil {
				last = err
			}
			continue
		}
		out = append(out, smp)
	}
}

// memory reads VmRSS and RssAnon from /proc/pid/status.
func memory(pid int) (rss, anon int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var gotRSS, gotAnon bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "RssAnon") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("soak: /proc/%d/status %s: %v", pid, k, err)
		}
		if k == "VmRSS" {
			rss, gotRSS = kb<<10, true
		} else {
			anon, gotAnon = kb<<10, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !gotRSS || !gotAnon {
		return 0, 0, fmt.Errorf("soak: /proc/%d/status has no VmRSS or RssAnon", pid)
	}
	return rss, anon, nil
}

func openFiles(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es), err
}

func loadAverage() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("soak: empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

// scraped is what the soak reads from a server's /metrics.
type scraped struct {
	goroutines float64
	heapInuse  float64
	store      histogram // latch_store_operation_duration_seconds, summed over operation and result
}

const storeHistogram = "latch_store_operation_duration_seconds_bucket"

func (s *Sampler) scrape(ctx context.Context) (scraped, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return scraped{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return scraped{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return scraped{}, fmt.Errorf("soak: GET %s: %s", s.metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the two things the soak needs from the Prometheus
// text format. A missing go_goroutines is an error: the chart would show a
// flat zero.
func parseMetrics(r io.Reader) (scraped, error) {
	var m scraped
	found := false
	buckets := map[float64]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, value := line[:i], line[i+1:]
		switch {
		case name == "go_goroutines":
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return m, fmt.Errorf("soak: go_goroutines %q: %v", value, err)
			}
			m.goroutines, found = v, true
		case name == "go_memstats_heap_inuse_bytes":
			m.heapInuse, _ = strconv.ParseFloat(value, 64) // only charted: a bad value draws as zero
		case strings.HasPrefix(name, storeHistogram+"{"):
			le, ok := label(name[len(storeHistogram):], "le")
			if !ok {
				continue
			}
			bound, err1 := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
			v, err2 := strconv.ParseFloat(value, 64)
			if err1 != nil || err2 != nil {
				return m, fmt.Errorf("soak: bad %s line", storeHistogram)
			}
			buckets[bound] += v
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if !found {
		return m, fmt.Errorf("soak: no go_goroutines in the metrics")
	}
	for b, c := range buckets {
		m.store = append(m.store, bucket{b, c})
	}
	slices.SortFunc(m.store, func(a, b bucket) int { return cmpFloat(a.le, b.le) })
	return m, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// label finds name="value" in a {…} label set.
func label(set, name string) (string, bool) {
	i := strings.Index(set, name+`="`)
	if i < 0 || (i > 0 && set[i-1] != '{' && set[i-1] != ',') {
		return "", false
	}
	rest := set[i+len(name)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// histogram is a cumulative Prometheus histogram, sorted by le, the last
// bucket +Inf.
type histogram []bucket

type bucket struct{ le, count float64 }

// minus is h's counts since prev (an earlier reading of the same
// histogram); a bucket prev lacks counts from zero.
func (h histogram) minus(prev histogram) histogram {
	out := make(histogram, len(h))
	for i, b := range h {
		out[i] = b
		for _, p := range prev {
			if p.le == b.le {
				out[i].count = b.count - p.count
			}
		}
	}
	return out
}

func (h histogram) total() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].count
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linear within the bucket that holds it, the largest finite bound
// if it falls in +Inf. 0 when the histogram is empty.
func (h histogram) quantile(q float64) time.Duration {
	total := h.total()
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range h {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return seconds(lower)
			}
			in := b.count - below
			if in <= 0 {
				return seconds(b.le)
			}
			return seconds(lower + (b.le-lower)*(rank-below)/in)
		}
		lower, below = b.le, b.count
	}
	return seconds(lower)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
