// Package python runs the latch_sessions unittest suite (clients/python)
// against a real latch serve built from this repository, so the README's one
// test command covers the Python package too.
package python

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/internal/serveproc"
)

// python is the interpreter that sees Debian's python3-* packages; the
// python3 first on PATH may be another one. LATCH_PYTHON overrides it.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("LATCH_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	_, err := exec.LookPath(py)
	serveproc.Require(t, err == nil, "no Python interpreter at "+py+" (install python3, or set LATCH_PYTHON)")
	out, err := exec.Command(py, "-c", "import sys; print(sys.version_info >= (3, 11))").Output()
	serveproc.Require(t, err == nil && strings.TrimSpace(string(out)) == "True", py+" is not Python 3.11 or later")
	return py
}

// Each module is its own subtest: a framework the machine lacks skips (or,
// under LATCH_REQUIRE_INTEGRATION=1, fails) only its adapter's tests.
var modules = []string{"test_client", "test_csrf", "test_flask", "test_asgi", "test_django", "test_cache", "test_examples", "test_dpop", "test_stepup", "test_websocket"}

func TestPython(t *testing.T) {
	if testing.Short() {
		t.Skip("runs latch serve and the Python test suite")
	}
	py := python(t)
	bin := serveproc.Binary(t)
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules {
		t.Run(m, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "tests", m+".py")); err != nil {
				t.Skip("no tests/" + m + ".py")
			}
			s := serveproc.Start(t, serveproc.Options{})
			secrets := filepath.Join(t.TempDir(), "tokens")
			cmd := exec.Command(py, "-m", "unittest", "-v", "tests."+m)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), s.Env()...)
			cmd.Env = append(cmd.Env, "LATCH_BIN="+bin, "LATCH_TEST_TOKENS="+secrets,
				"PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python -m unittest tests.%s: %v\n%s", m, err, out)
			}
			t.Logf("%s", out)
			if strings.Contains(string(out), "skipped") && !strings.Contains(string(out), " ok") {
				t.Skipf("every test skipped:\n%s", out)
			}
			// Every token the tests saw must be absent from latch's own output.
			f, err := os.Open(secrets)
			if err != nil {
				return // no test recorded a token
			}
			defer f.Close()
			logs := s.Output()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if tok := sc.Text(); tok != "" && strings.Contains(logs, tok) {
					t.Errorf("latch serve's output contains a token the client handled")
				}
			}
		})
	}
}
