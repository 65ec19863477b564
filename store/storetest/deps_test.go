package storetest

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps keeps the layout true: the suite depends only on the store
// contract and the standard library, never on a concrete store, so every
// backend can import it.
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") && imp != "github.com/latch-sessions/latch/store" {
			t.Errorf("storetest imports %s; it may import only package store and the standard library", imp)
		}
		if imp == "net/http" {
			t.Errorf("storetest imports net/http")
		}
	}
}
