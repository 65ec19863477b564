package main

import (
	"context"
	"errors"
	"fmt"
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
		fmt.Fprintln(u.stdout, res)
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
		line := res.String()
		if base > 0 {
			line += fmt.Sprintf("  (%.0f%% of bare)", 100*res.OpsPerSec()/base)
		}
		fmt.Fprintln(u.stdout, line)
	}
	return nil
}
