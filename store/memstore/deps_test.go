package memstore

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps keeps the layout true: memstore depends only on the store
// contract, the stores' shared in-process event log and the standard
// library, not on latch, net/http or other stores.
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") && imp != "github.com/latch-sessions/latch/store" && imp != "github.com/latch-sessions/latch/store/internal/eventbus" {
			t.Errorf("memstore imports %s; it may import only package store, store/internal/eventbus and the standard library", imp)
		}
		if imp == "net/http" || imp == "testing" {
			t.Errorf("memstore imports %s", imp)
		}
	}
}
