package latchhttp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps latchhttp free of concrete stores and of the routers and
// session libraries it is compared with: those live in tests, examples and
// the bench module.
func TestImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/latch-sessions/latch/latchhttp").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/latch-sessions/latch/store/",
			"github.com/go-chi/",
			"github.com/alexedwards/scs",
			"github.com/gorilla/",
		} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("latchhttp imports %s", dep)
			}
		}
	}
}
