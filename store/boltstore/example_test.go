package boltstore_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/latch-sessions/latch/store/boltstore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "latch-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Creates latch-data/ (0700) and latch.db (0600); fsync on every commit.
	s, err := boltstore.Open(filepath.Join(dir, "latch-data", "latch.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The file is locked: a second Open fails fast instead of hanging.
	_, err = boltstore.Open(s.Path(), &boltstore.Options{LockTimeout: 100 * time.Millisecond})
	fmt.Println(errors.Is(err, boltstore.ErrLocked))
	// Output: true
}
