package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/latch-sessions/latch/internal/server"
	"github.com/latch-sessions/latch/store/memstore"
)

const scriptAPIKey = "script-api-key-0123456789abcdefghijkl"

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"latch": func() { main() },
	})
}

// TestScripts runs the CLI scripts in testdata/script. Each script gets a
// latch server running in the test process on a free loopback port
// ($LATCH_SERVER, with $LATCH_API_KEY set), and two more free ports
// ($FREE_ADDR, $FREE_ADDR2) for scripts that start latch serve themselves.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: setupServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mksession": cmdMksession,
			"waithttp":  cmdWaitHTTP,
			"status":    cmdStatus,
		},
	})
}

func setupServer(env *testscript.Env) error {
	srv, err := server.New(context.Background(), server.Options{
		Store:  memstore.New(),
		APIKey: scriptAPIKey,
		KEK:    bytes.Repeat([]byte{1}, 32),
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	env.Defer(func() { hs.Close() })
	env.Setenv("LATCH_SERVER", "http://"+ln.Addr().String())
	env.Setenv("LATCH_API_KEY", scriptAPIKey)

	for _, name := range []string{"FREE_ADDR", "FREE_ADDR2"} {
		free, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		env.Setenv(name, free.Addr().String())
		defer free.Close() // both held until both are chosen, so they differ
	}
	return nil
}

// mksession SUBJECT VAR creates a session for SUBJECT on $LATCH_SERVER
// and stores its ID in $VAR.
func cmdMksession(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mksession subject var")
	}
	body := fmt.Sprintf(`{"subject":%q,"ip":"192.0.2.7","user_agent":"script"}`, args[0])
	req, _ := http.NewRequest("POST", ts.Getenv("LATCH_SERVER")+"/v1/sessions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+scriptAPIKey)
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	var out struct {
		Session struct{ ID string } `json:"session"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&out))
	if resp.StatusCode != http.StatusCreated || out.Session.ID == "" {
		ts.Fatalf("creating a session: %s", resp.Status)
	}
	ts.Setenv(args[1], out.Session.ID)
}

// waithttp URL polls URL until it answers 200.
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waithttp url")
	}
	for range 1000 {
		resp, err := http.Get(args[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Fatalf("%s never answered 200", args[0])
}

// status WANT METHOD URL [Header=value…] [+Header…] [-Header…] sends a
// request without a body and fails unless it is answered with status WANT,
// with each +Header and without each -Header.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: status want method url [header=value...] [+header...] [-header...]")
	}
	req, err := http.NewRequest(args[1], args[2], nil)
	ts.Check(err)
	var want, unwanted []string
	for _, h := range args[3:] {
		switch h[0] {
		case '+':
			want = append(want, h[1:])
		case '-':
			unwanted = append(unwanted, h[1:])
		default:
			k, v, _ := strings.Cut(h, "=")
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := fmt.Sprint(resp.StatusCode); got != args[0] {
		ts.Fatalf("%s %s answered %s, want %s", args[1], args[2], got, args[0])
	}
	for _, h := range want {
		if resp.Header.Get(h) == "" {
			ts.Fatalf("%s %s: the answer has no %s header", args[1], args[2], h)
		}
	}
	for _, h := range unwanted {
		if resp.Header.Get(h) != "" {
			ts.Fatalf("%s %s: the answer has a %s header", args[1], args[2], h)
		}
	}
}

func TestMainNoArgs(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage:") {
		t.Errorf("no arguments: exit %d, stderr %q", code, errb.String())
	}
	_ = os.Stderr
}
