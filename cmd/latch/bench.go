package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/latch-sessions/latch/internal/loadgen"
)

// benchCmd drives a running server and prints throughput and latency per
// operation. With --baseline, before each operation it drives a bare
// net/http handler in this process the same way, reading requests and
// writing answers of the operation's sizes, and reports the operation
// against it.
func benchCmd(ctx context.Context, u *ui, args []string) error {
	cmd := command{name: "bench", about: "Load a running latch server: ops/s and p50/p99 latency for verify, refresh and create."}
	var (
		cf       clientFlags
		conns    int
		duration time.Duration
		ops      string
		baseline bool
	)
	fs := newFlags(cmd)
	cf.register(fs)
	fs.Lookup("json").Usage = "print one JSON object per operation (op, ops_per_sec, requests, errors, p50_us, p99_us, and vs_bare with --baseline; a bare line has baseline_for, request_bytes, response_bytes) instead of a text line"
	fs.IntVar(&conns, "connections", 64, "concurrent `connections`")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measuring time per operation")
	fs.StringVar(&ops, "ops", "verify-session,verify-access,refresh,create", "comma-separated `operations` to run")
	fs.BoolVar(&baseline, "baseline", false, "before each operation, drive a bare net/http handler started in this process that reads and answers bodies of the operation's sizes, and print the ratio against it")
	pos, err := parse(u, cmd, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("latch bench takes no arguments").hint("usage: latch bench [--server URL] [--duration 10s] [--ops verify-session,refresh]")
	}
	if conns < 1 || conns > 10000 || duration <= 0 || duration > time.Hour {
		return usageErrorf("--connections must be 1..10000 and --duration between 0 and 1h")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	cfg := loadgen.Config{Server: c.base.String(), APIKey: c.apiKey, Connections: conns, Duration: duration}

	bare := map[loadgen.Sizes]float64{} // ops/s of the bare handler by sizes
	for _, op := range strings.Split(ops, ",") {
		op := loadgen.Op(strings.TrimSpace(op))
		var base float64
		if baseline {
			sz, err := loadgen.Probe(ctx, cfg, op)
			if err != nil {
				return benchErr(err)
			}
			var ok bool
			if base, ok = bare[sz]; !ok {
				if base, err = runBare(ctx, u, cf.json, conns, duration, sz, op); err != nil {
					return err
				}
				bare[sz] = base
			}
		}
		res, err := loadgen.Run(ctx, cfg, op)
		if err != nil {
			return benchErr(err)
		}
		printResult(u, cf.json, res, base, loadgen.Sizes{}, "")
	}
	return nil
}

// benchErr explains a refused API key.
func benchErr(err error) error {
	var st *loadgen.ErrStatus
	if errors.As(err, &st) && st.Status == http.StatusUnauthorized {
		return errorf("the server refused the API key").hint("set LATCH_API_KEY to the key latch serve uses")
	}
	return err
}

// runBare drives a bare net/http handler started in this process, which
// reads a request of sz.Request bytes and answers sz.Response bytes, the
// sizes of op's exchange: the baseline op is compared with. It prints the
// result and returns the handler's ops/s.
func runBare(ctx context.Context, u *ui, asJSON bool, conns int, duration time.Duration, sz loadgen.Sizes, op loadgen.Op) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: loadgen.PaddedHandler(sz.Response), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Server: "http://" + ln.Addr().String(), Connections: conns, Duration: duration,
		BareRequest: bytes.Repeat([]byte{'x'}, sz.Request),
	}, loadgen.Bare)
	if err != nil {
		return 0, err
	}
	printResult(u, asJSON, res, 0, sz, op)
	return res.OpsPerSec(), nil
}

// benchResult is one line of latch bench --json.
type benchResult struct {
	Op        loadgen.Op `json:"op"`
	OpsPerSec float64    `json:"ops_per_sec"`
	Requests  int64      `json:"requests"`
	Errors    int64      `json:"errors"`
	P50us     int64      `json:"p50_us"`
	P99us     int64      `json:"p99_us"`
	VsBare    float64    `json:"vs_bare,omitempty"` // ops/s as a fraction of the bare handler's
	// A bare line's: the sizes it reads and writes, the operation's.
	BaselineFor   loadgen.Op `json:"baseline_for,omitempty"`
	RequestBytes  int        `json:"request_bytes,omitempty"`
	ResponseBytes int        `json:"response_bytes,omitempty"`
}

// printResult prints res as a text line or, with asJSON, one JSON object;
// base is the bare handler's ops/s (0: not measured). A bare line (for
// set) names the operation whose sizes sz it was run with.
func printResult(u *ui, asJSON bool, res loadgen.Result, base float64, sz loadgen.Sizes, baselineFor loadgen.Op) {
	if asJSON {
		r := benchResult{Op: res.Op, OpsPerSec: math.Round(res.OpsPerSec()), Requests: res.Requests, Errors: res.Errors,
			P50us: res.P50.Microseconds(), P99us: res.P99.Microseconds(),
			BaselineFor: baselineFor, RequestBytes: sz.Request, ResponseBytes: sz.Response}
		if base > 0 {
			r.VsBare = math.Round(1000*res.OpsPerSec()/base) / 1000
		}
		b, _ := json.Marshal(r)
		fmt.Fprintf(u.stdout, "%s\n", b)
		return
	}
	line := res.String()
	if baselineFor != "" {
		line += fmt.Sprintf("  (%d-byte requests, %d-byte answers, as %s)", sz.Request, sz.Response, baselineFor)
	}
	if base > 0 {
		line += fmt.Sprintf("  (%.0f%% of bare)", 100*res.OpsPerSec()/base)
	}
	fmt.Fprintln(u.stdout, line)
}
