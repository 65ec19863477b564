package accesstoken

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package free of net/http (the core latch
// package imports it and must stay HTTP-free) and of any module outside the
// standard library other than latch's store interface (and the leaf
// helpers internal to it).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.Standard}} {{.ImportPath}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		std, path, _ := strings.Cut(line, " ")
		if path == "net/http" {
			t.Errorf("accesstoken depends on net/http")
		}
		if std != "true" && path != "github.com/latch-sessions/latch/accesstoken" && path != "github.com/latch-sessions/latch/store" &&
			!strings.HasPrefix(path, "github.com/latch-sessions/latch/store/internal/") {
			t.Errorf("accesstoken depends on %s", path)
		}
	}
}
