package latch_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportRules keeps the architecture honest: each library package lists
// imports it must never gain, directly or transitively.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/latch-sessions/latch"
	stores := storePackages(t, mod)
	rules := map[string][]string{
		mod:            append([]string{"net/http", "testing", mod + "/latchhttp"}, stores...),
		mod + "/store": append([]string{mod, "net/http", "testing"}, stores...),
		// The SQL stores' shared helpers serve them; they depend on none.
		mod + "/store/internal/sqlstore": append([]string{mod, "net/http", "testing"}, stores...),
		mod + "/internal/token":          {mod, "net/http"},
		mod + "/accesstoken":             append([]string{mod, "net/http", mod + "/latchhttp"}, stores...),
		mod + "/latchhttp":               stores,
		mod + "/dpop":                    append([]string{mod, "net/http", mod + "/latchhttp"}, stores...),
	}
	for _, s := range stores {
		var others []string
		for _, o := range stores {
			if o != s {
				others = append(others, o)
			}
		}
		rules[s] = append([]string{mod, "net/http", mod + "/latchhttp"}, others...)
	}
	// The server is wiring: only the command may import it.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if imp == mod+"/internal/server" && f[0] != mod+"/cmd/latch" {
				t.Errorf("%s imports internal/server; only cmd/latch may", f[0])
			}
		}
	}
	for pkg, banned := range rules {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		for _, b := range banned {
			if deps[b] {
				t.Errorf("%s must not import %s (directly or indirectly)", pkg, b)
			}
		}
	}
}

// storePackages lists the concrete stores from the tree — every package
// store/NAME except the conformance suite — so a new backend is covered
// without anyone remembering to add it here.
func storePackages(t *testing.T, mod string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "./store/...").Output()
	if err != nil {
		t.Fatalf("go list ./store/...: %v", err)
	}
	var stores []string
	for _, p := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(p, mod+"/store/")
		if !ok || strings.Contains(name, "/") || name == "storetest" || name == "internal" {
			continue
		}
		stores = append(stores, p)
	}
	// The four the project started with, so a broken listing cannot pass
	// by finding nothing.
	for _, want := range []string{"memstore", "boltstore", "redisstore", "pgstore"} {
		if !slices.Contains(stores, mod+"/store/"+want) {
			t.Fatalf("store/%s is not among the stores found in the tree: %v", want, stores)
		}
	}
	return stores
}
