// Package serveproc runs a real `latch serve`, built from this repository,
// as a child process of a test: the client packages in other languages
// (clients/node, clients/python) are tested against it from Go test
// wrappers, so the repository keeps one test command.
//
// The binary is built once per test process. Each [Start] gets its own
// loopback port, data directory and API key, and the server is stopped
// (SIGTERM, then SIGKILL) when the test ends.
package serveproc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testutil"
)

var build struct {
	mu    sync.Mutex
	paths map[string]string // build tags -> binary
}

// Binary returns the path of a latch binary built from this repository's
// cmd/latch, building it on the first call. The binary lives in a temporary
// directory removed when the process exits normally; a crashed test may
// leave it in the OS temp directory.
func Binary(t testing.TB) string {
	t.Helper()
	return BinaryTags(t, "")
}

// BinaryTags is Binary built with -tags tags (e.g. "latchfaults", the
// fault-injection hooks); each set of tags is built once per process.
func BinaryTags(t testing.TB, tags string) string {
	t.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if p, ok := build.paths[tags]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "latch-serveproc-")
	if err != nil {
		t.Fatalf("serveproc: %v", err)
	}
	path := filepath.Join(dir, "latch")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", path, "./cmd/latch")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("serveproc: go build -tags %q ./cmd/latch: %v\n%s", tags, err, out)
	}
	if build.paths == nil {
		build.paths = map[string]string{}
	}
	build.paths[tags] = path
	return path
}

// moduleRoot is the repository root, found from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Options configure a server. The zero value runs the in-memory store.
type Options struct {
	// Store is the --store value; default "memory:".
	Store string
	// Args are extra flags, e.g. "--idle-timeout", "2m".
	Args []string
	// Env are extra environment variables (KEY=value).
	Env []string
	// APIKey is the back-channel key; default a fresh random one.
	APIKey string
	// Addr is the listen address; default a free loopback port. Tests
	// that restart a server on the same address set it.
	Addr string
	// Tags are build tags for the binary (BinaryTags); default none.
	Tags string
}

// Server is a running latch serve.
type Server struct {
	URL    string // http://127.0.0.1:port
	Addr   string // 127.0.0.1:port
	APIKey string
	Dir    string // working and data directory

	t    testing.TB
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{}
}

// Start runs latch serve for t and waits until /readyz answers 200.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := BinaryTags(t, o.Tags)
	if o.Store == "" {
		o.Store = "memory:"
	}
	if o.APIKey == "" {
		var b [32]byte
		rand.Read(b[:])
		o.APIKey = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if o.Addr == "" {
		o.Addr = FreeAddr(t)
	}
	s := &Server{URL: "http://" + o.Addr, Addr: o.Addr, APIKey: o.APIKey, Dir: t.TempDir(), t: t,
		out: &testutil.Buffer{}, done: make(chan struct{})}
	args := append([]string{"serve", "--addr", o.Addr, "--store", o.Store}, o.Args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.Dir
	s.cmd.Env = append(os.Environ(), "LATCH_API_KEY="+o.APIKey)
	s.cmd.Env = append(s.cmd.Env, o.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("serveproc: start latch serve: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Stop()
		t.Fatalf("serveproc: %v\nserver output:\n%s", err, s.out.String())
	}
	return s
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("latch serve exited before it was ready")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("latch serve at %s not ready after %v", s.URL, limit)
}

// PID is the server process's ID: the soak reads its memory and open
// files from /proc.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output returns everything the server wrote to stdout and stderr so far:
// tests scan it for leaked tokens.
func (s *Server) Output() string { return s.out.String() }

// Stop ends the server: SIGTERM, then SIGKILL after 5 s. It is safe to call
// more than once; Start registers it as a cleanup.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Kill ends the server with SIGKILL, as kill -9 does: no drain, no
// deferred cleanup. It waits until the process is gone. Start a new Server
// with the same Options (Addr, APIKey, Store) to restart it.
func (s *Server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serveproc: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Require skips t with why when ok is false, or fails it when
// LATCH_REQUIRE_INTEGRATION=1 (as in CI), where a missing dependency is an
// error.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("LATCH_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(why + " (LATCH_REQUIRE_INTEGRATION=1)")
	}
	t.Skip(why)
}

// Env returns the environment for a client test process talking to s:
// LATCH_URL and LATCH_API_KEY.
func (s *Server) Env() []string {
	return []string{"LATCH_URL=" + s.URL, "LATCH_API_KEY=" + s.APIKey}
}
