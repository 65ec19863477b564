package dpop_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package free of net/http (it is called from
// the core and from HTTP layers alike) and of modules outside the standard
// library other than latch's accesstoken and store.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.Standard}} {{.ImportPath}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		std, path, _ := strings.Cut(line, " ")
		if path == "net/http" {
			t.Errorf("dpop depends on net/http")
		}
		if std != "true" && !strings.HasPrefix(path, "github.com/latch-sessions/latch/") {
			t.Errorf("dpop depends on %s", path)
		}
	}
}
