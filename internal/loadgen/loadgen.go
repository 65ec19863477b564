// Package loadgen drives a running latch server over HTTP and reports
// throughput and latency percentiles per operation. It backs `latch bench`.
//
// Every request loop is bounded by a duration and stops by itself; it sends
// traffic only to the server it is given.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one kind of request the generator sends.
type Op string

const (
	VerifySession Op = "verify-session" // POST /v1/sessions/verify {session_token}
	VerifyAccess  Op = "verify-access"  // POST /v1/sessions/verify {access_token}
	Refresh       Op = "refresh"        // POST /v1/refresh, each worker follows its own rotation chain; sent with the API key like a relaying backend, so the per-client rate limit does not apply
	Create        Op = "create"         // POST /v1/sessions
	Bare          Op = "bare"           // POST to a bare handler: the baseline
)

// Config describes a run.
type Config struct {
	Server      string        // base URL, e.g. http://127.0.0.1:8080
	APIKey      string        // back-channel key; never printed
	Connections int           // concurrent connections (default 64)
	Duration    time.Duration // per operation (default 10s)
	Warmup      time.Duration // discarded before measuring (default 1s)
	// BareRequest is the body Bare sends (default {"session_token":"x"}):
	// set it to the body of the operation a bare handler stands in for
	// (Probe), so both read the same request.
	BareRequest []byte
}

// Sizes are the body sizes of one request and its answer.
type Sizes struct{ Request, Response int }

// Probe sends one request of op to cfg.Server, as a worker of Run does
// (after the worker's own setup, such as creating a session), and returns
// the sizes of its body and its answer's: what a bare handler compared
// with op must read and write (PaddedHandler).
func Probe(ctx context.Context, cfg Config, op Op) (Sizes, error) {
	g := &gen{cfg: cfg, client: newClient(1), sizes: new(Sizes)}
	defer g.client.CloseIdleConnections()
	w, err := g.worker(ctx, op)
	if err != nil {
		return Sizes{}, err
	}
	if _, err := w(); err != nil {
		return Sizes{}, err
	}
	return *g.sizes, nil
}

// Result is the outcome of one operation's run.
type Result struct {
	Op       Op
	Requests int64
	Errors   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// OpsPerSec is the rate of successful requests.
func (r Result) OpsPerSec() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%-15s %10.0f ops/s  p50 %8s  p99 %8s  errors %d", r.Op, r.OpsPerSec(), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors)
}

// Run measures op against cfg.Server.
func Run(ctx context.Context, cfg Config, op Op) (Result, error) {
	if cfg.Connections <= 0 {
		cfg.Connections = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	} else if cfg.Warmup == 0 {
		cfg.Warmup = time.Second
	}
	g := &gen{cfg: cfg, client: newClient(cfg.Connections)}
	defer g.client.CloseIdleConnections()

	workers := make([]func() (bool, error), cfg.Connections)
	for i := range workers {
		w, err := g.worker(ctx, op)
		if err != nil {
			return Result{}, err
		}
		workers[i] = w
	}

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		okCount   atomic.Int64
		errCount  atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for !stop.Load() && ctx.Err() == nil {
				t0 := time.Now()
				ok, err := w()
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if ok {
					okCount.Add(1)
					local = append(local, d)
				} else {
					errCount.Add(1)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	sleep(ctx, cfg.Warmup)
	measuring.Store(true)
	start := time.Now()
	sleep(ctx, cfg.Duration)
	stop.Store(true)
	elapsed := time.Since(start)
	wg.Wait()

	res := Result{Op: op, Requests: okCount.Load(), Errors: errCount.Load(), Elapsed: elapsed}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[len(lat)*99/100]
	}
	if res.Requests == 0 && firstErr != nil {
		return res, firstErr
	}
	return res, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func newClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type gen struct {
	cfg    Config
	client *http.Client
	sizes  *Sizes // if set, post records the sizes of each exchange here
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// ErrStatus reports an unexpected HTTP status; it carries no body, since a
// body could hold a token.
type ErrStatus struct {
	Path   string
	Status int
}

func (e *ErrStatus) Error() string { return fmt.Sprintf("loadgen: %s answered %d", e.Path, e.Status) }

func (g *gen) post(ctx context.Context, path string, auth bool, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(g.cfg.Server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+g.cfg.APIKey)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		io.Copy(io.Discard, resp.Body)
		return &ErrStatus{Path: path, Status: resp.StatusCode}
	}
	var rd io.Reader = resp.Body
	if g.sizes != nil {
		cr := &countingReader{r: resp.Body}
		defer func() { *g.sizes = Sizes{Request: len(body), Response: cr.n} }()
		rd = cr
	}
	if out == nil {
		_, err = io.Copy(io.Discard, rd)
		return err
	}
	if err := json.NewDecoder(rd).Decode(out); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rd) // the rest (a newline) counts too
	return err
}

type created struct {
	SessionToken string `json:"session_token"`
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
}

var workerSeq atomic.Int64

func (g *gen) create(ctx context.Context) (created, error) {
	var c created
	subject := fmt.Sprintf("bench-%d", workerSeq.Add(1))
	err := g.post(ctx, "/v1/sessions", true, []byte(`{"subject":"`+subject+`","data":{"bench":true}}`), http.StatusCreated, &c)
	return c, err
}

// worker returns one connection's request function; it reports whether the
// request succeeded.
func (g *gen) worker(ctx context.Context, op Op) (func() (bool, error), error) {
	switch op {
	case Bare:
		body := g.cfg.BareRequest
		if body == nil {
			body = []byte(`{"session_token":"x"}`)
		}
		return func() (bool, error) {
			err := g.post(ctx, "/", false, body, http.StatusOK, nil)
			return err == nil, err
		}, nil
	case Create:
		return func() (bool, error) {
			_, err := g.create(ctx)
			return err == nil, err
		}, nil
	}
	c, err := g.create(ctx)
	if err != nil {
		return nil, fmt.Errorf("loadgen: creating a session to drive %s: %w", op, err)
	}
	switch op {
	case VerifySession:
		body, _ := json.Marshal(map[string]string{"session_token": c.SessionToken})
		return func() (bool, error) {
			err := g.post(ctx, "/v1/sessions/verify", true, body, http.StatusOK, nil)
			return err == nil, err
		}, nil
	case VerifyAccess:
		if c.AccessToken == "" {
			return nil, errors.New("loadgen: the server issued no access token")
		}
		body, _ := json.Marshal(map[string]string{"access_token": c.AccessToken})
		return func() (bool, error) {
			err := g.post(ctx, "/v1/sessions/verify", true, body, http.StatusOK, nil)
			return err == nil, err
		}, nil
	case Refresh:
		tok := c.RefreshToken
		return func() (bool, error) {
			body, _ := json.Marshal(map[string]string{"refresh_token": tok})
			var r created
			if err := g.post(ctx, "/v1/refresh", true, body, http.StatusOK, &r); err != nil {
				return false, err
			}
			tok = r.RefreshToken
			return true, nil
		}, nil
	}
	return nil, fmt.Errorf("loadgen: unknown operation %q", op)
}

// BareHandler answers like a minimal JSON endpoint: it reads the body and
// writes a small JSON object.
func BareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
}

// PaddedHandler is BareHandler answering a JSON object of n bytes
// ({"ok":true,"pad":"xx…"}, at least 20) with its Content-Length, as
// latch serve sends: the baseline an operation is compared with, the
// size of its answer (Probe).
func PaddedHandler(n int) http.Handler {
	const frame = `{"ok":true,"pad":""}`
	body := []byte(frame[:len(frame)-2] + strings.Repeat("x", max(0, n-len(frame))) + `"}`)
	clen := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", clen)
		w.Write(body)
	})
}
