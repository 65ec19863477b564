package main

import (
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
// operation. With --baseline it first drives a bare net/http handler the
// same way, in this process, and reports each operation against it.
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
	fs.Lookup("json").Usage = "print one JSON object per operation (op, ops_per_sec, requests, errors, p50_us, p99_us, and vs_bare with --baseline) instead of a text line"
	fs.IntVar(&conns, "connections", 64, "concurrent `connections`")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measuring time per operation")
	fs.StringVar(&ops, "ops", "verify-session,verify-access,refresh,create", "comma-separated `operations` to run")
	fs.BoolVar(&baseline, "baseline", false, "also drive a bare net/http handler started in this process, and print ratios against it")
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

	var base float64
	if baseline {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: loadgen.BareHandler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		res, err := loadgen.Run(ctx, loadgen.Config{Server: "http://" + ln.Addr().String(), Connections: conns, Duration: duration}, loadgen.Bare)
		srv.Close()
		if err != nil {
			return err
		}
		base = res.OpsPerSec()
		printResult(u, cf.json, res, 0)
	}
	for _, op := range strings.Split(ops, ",") {
		res, err := loadgen.Run(ctx, cfg, loadgen.Op(strings.TrimSpace(op)))
		if err != nil {
			var st *loadgen.ErrStatus
			if errors.As(err, &st) && st.Status == http.StatusUnauthorized {
				return errorf("the server refused the API key").hint("set LATCH_API_KEY to the key latch serve uses")
			}
			return err
		}
		printResult(u, cf.json, res, base)
	}
	return nil
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
}

// printResult prints res as a text line or, with asJSON, one JSON object;
// base is the bare handler's ops/s (0: not measured).
func printResult(u *ui, asJSON bool, res loadgen.Result, base float64) {
	if asJSON {
		r := benchResult{Op: res.Op, OpsPerSec: math.Round(res.OpsPerSec()), Requests: res.Requests, Errors: res.Errors,
			P50us: res.P50.Microseconds(), P99us: res.P99.Microseconds()}
		if base > 0 {
			r.VsBare = math.Round(1000*res.OpsPerSec()/base) / 1000
		}
		b, _ := json.Marshal(r)
		fmt.Fprintf(u.stdout, "%s\n", b)
		return
	}
	line := res.String()
	if base > 0 {
		line += fmt.Sprintf("  (%.0f%% of bare)", 100*res.OpsPerSec()/base)
	}
	fmt.Fprintln(u.stdout, line)
}
