// Package node_test runs the Node.js package's tests (node --test) against
// a real latch serve built from this repository, so that the repository's
// one test command, go test ./..., covers clients/node and clients/browser.
package node_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/internal/browsertest"
	"github.com/latch-sessions/latch/internal/serveproc"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store/memstore"
)

// requireNode skips (or fails under LATCH_REQUIRE_INTEGRATION=1) unless
// node, npm and this package's node_modules are there.
func requireNode(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs node --test against latch serve")
	}
	node, err := exec.LookPath("node")
	serveproc.Require(t, err == nil, "the Node.js tests need node (Node >= 20): apt-get install nodejs npm")
	out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0] >= 20").Output()
	serveproc.Require(t, err == nil && strings.TrimSpace(string(out)) == "true", "the Node.js tests need Node >= 20")
	_, err = os.Stat(filepath.Join("node_modules", "express"))
	serveproc.Require(t, err == nil, "the Node.js tests need their dependencies: (cd clients/node && npm ci)")
	return node
}

// latchhttpCookies returns the Set-Cookie values latchhttp sends at login
// and logout, with the token replaced by TOKEN, for the Node tests to
// compare byte for byte with what the Express middleware sends.
func latchhttpCookies(t *testing.T) (login, logout string) {
	m, err := latch.New(latch.Config{Store: memstore.New(), Observer: latch.DiscardObserver})
	if err != nil {
		t.Fatal(err)
	}
	s, err := latchhttp.New(m, latchhttp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			if _, err := s.Login(w, r, latch.NewSession{Subject: "alice"}); err != nil {
				t.Error(err)
			}
		case "/logout":
			if err := s.Logout(w, r); err != nil {
				t.Error(err)
			}
		}
	}))
	do := func(path, cookie string) string {
		req := httptest.NewRequest("GET", "https://example.com"+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Header().Get("Set-Cookie")
	}
	set := do("/login", "")
	tok := strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], latchhttp.DefaultCookieName+"=")
	// Max-Age counts the seconds to the absolute deadline: compared as N.
	login = regexp.MustCompile(`; Max-Age=\d+`).ReplaceAllString(strings.Replace(set, tok, "TOKEN", 1), "; Max-Age=N")
	logout = do("/logout", latchhttp.DefaultCookieName+"="+tok)
	return login, logout
}

func TestNode(t *testing.T) {
	node := requireNode(t)
	login, logout := latchhttpCookies(t)
	s := serveproc.Start(t, serveproc.Options{Args: []string{"--log-level", "debug"}})
	env := append(os.Environ(), s.Env()...)
	env = append(env,
		"LATCH_BIN="+serveproc.Binary(t),
		"LATCH_EXPECT_LOGIN_COOKIE="+login,
		"LATCH_EXPECT_LOGOUT_COOKIE="+logout,
		"LATCH_CHROMIUM="+browsertest.Path(),
		// The challenges the Express middleware must send byte for byte
		// as latchhttp (RequireRecentAuth, RequireSession with DPoP).
		"LATCH_EXPECT_STEPUP_MAXAGE="+latch.AuthRequirement{MaxAge: 300 * time.Second}.Challenge(),
		"LATCH_EXPECT_STEPUP_ACR="+latch.AuthRequirement{ACRValues: []string{"mfa", "hwk"}}.Challenge(),
		"LATCH_EXPECT_STEPUP_BOTH="+latch.AuthRequirement{MaxAge: 300 * time.Second, ACRValues: []string{"mfa"}}.Challenge(),
		"LATCH_EXPECT_DPOP_REPLAY="+dpop.Challenge(&dpop.Error{Reason: dpop.ReasonReplay}),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"--test", "--test-concurrency=1", "--test-reporter=spec"}
	if f := os.Getenv("LATCH_NODE_TESTS"); f != "" {
		args = append(args, strings.Fields(f)...)
	} else {
		files, _ := filepath.Glob(filepath.Join("test", "*.test.js"))
		args = append(args, files...)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = env
	// Its own process group: the latch servers, redis-servers and Chromium
	// the tests start go with it, even if node is killed mid-test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of a failed test, if any
	}
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("node --test failed: %v", err)
	}
	// Neither the server nor the tests may print a token or the API key.
	for _, leak := range []*regexp.Regexp{regexp.MustCompile(`lt[sr]_[A-Za-z0-9_-]{20,}`), regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.eyJ`)} {
		if m := leak.FindString(s.Output()); m != "" {
			t.Errorf("latch serve's output contains a token: %.12s…", m)
		}
		if m := leak.FindString(string(out)); m != "" {
			t.Errorf("the Node tests printed a token: %.12s…", m)
		}
	}
	if strings.Contains(s.Output(), s.APIKey) || strings.Contains(string(out), s.APIKey) {
		t.Error("the API key was printed")
	}
}
