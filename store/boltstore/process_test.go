package boltstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// The tests in this file re-execute the test binary as a child process
// running TestHelperProcess, selected by these environment variables.
const (
	envHelper = "LATCH_BOLTSTORE_HELPER" // "write" or "hold"
	envPath   = "LATCH_BOLTSTORE_PATH"
)

// helper starts the test binary as a child in mode on path, with its
// stdout piped to the returned reader and its stdin to the writer.
func helper(t *testing.T, mode, path string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envPath+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout), stdin
}

// TestHelperProcess is not a test: it is the child process of
// TestCrashKill9 and TestLockedByOtherProcess.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	// Never outlive a parent that failed to kill us.
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	s, err := Open(os.Getenv(envPath), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		os.Exit(2)
	}
	switch mode {
	case "hold":
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
		s.Close()
		os.Exit(0)
	case "write":
		helperWrite(s)
	}
	os.Exit(2)
}

// helperWrite writes from several goroutines until killed, printing each
// acknowledged write after the call returned nil:
//
//	created <id>
//	updated <id> <version>
//	revoked <id>
func helperWrite(s *Store) {
	ctx := context.Background()
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := newRecord(nopTB{}, fmt.Sprintf("crash-%d", i%7), time.Now())
				r.Data = []byte(strings.Repeat("x", 100*(i%20)))
				if _, err := s.Create(ctx, r, 0); err != nil {
					fmt.Fprintln(os.Stderr, "helper: create:", err)
					os.Exit(2)
				}
				ack("created %v", r.ID)
				switch i % 4 {
				case 1:
					u := r.Clone()
					u.Version = 1
					u.LastSeenAt = u.LastSeenAt.Add(time.Second)
					u.IdleExpiresAt = u.IdleExpiresAt.Add(time.Second)
					if err := s.Update(ctx, u); err != nil {
						fmt.Fprintln(os.Stderr, "helper: update:", err)
						os.Exit(2)
					}
					ack("updated %v 2", r.ID)
				case 2:
					if err := s.Revoke(ctx, r.ID, store.ReasonLogout, time.Now()); err != nil {
						fmt.Fprintln(os.Stderr, "helper: revoke:", err)
						os.Exit(2)
					}
					ack("revoked %v", r.ID)
				}
			}
		})
	}
	wg.Wait()
}

// nopTB lets helperWrite use newRecord outside a test.
type nopTB struct{ testing.TB }

func (nopTB) Helper()               {}
func (nopTB) Fatal(args ...any)     { fmt.Fprintln(os.Stderr, args...); os.Exit(2) }
func (nopTB) Fatalf(string, ...any) { os.Exit(2) }

// TestCrashKill9: every write a child process acknowledged before it was
// killed with SIGKILL is in the file after reopening, and the file passes
// bbolt's consistency check and latch's index invariants.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "latch-data", "latch.db")
	cmd, lines, _ := helper(t, "write", path)

	created := map[store.ID]bool{}
	updated := map[store.ID]bool{}
	revoked := map[store.ID]bool{}
	parse := func(line string) {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("unexpected helper output %q", line)
		}
		id, err := store.ParseID(f[1])
		if err != nil {
			t.Fatalf("unexpected helper output %q", line)
		}
		switch f[0] {
		case "created":
			created[id] = true
		case "updated":
			updated[id] = true
		case "revoked":
			revoked[id] = true
		default:
			t.Fatalf("unexpected helper output %q", line)
		}
	}
	for len(created) < 300 && lines.Scan() {
		parse(lines.Text())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	// Lines already in the pipe were acknowledged before the kill too.
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "created ") || strings.HasPrefix(line, "updated ") || strings.HasPrefix(line, "revoked ") {
			parse(line)
		}
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.String() != "signal: killed" {
		t.Fatalf("helper ended with %v before it was killed", err)
	}
	if len(created) < 300 {
		t.Fatalf("helper acknowledged only %d creates", len(created))
	}
	t.Logf("child acknowledged %d creates, %d updates, %d revokes before SIGKILL", len(created), len(updated), len(revoked))

	s, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	if err := checkDB(s.db); err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	ctx := t.Context()
	for id := range created {
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged create lost after kill -9: %v", err)
		}
		if updated[id] && r.Version < 2 {
			t.Errorf("acknowledged update lost after kill -9: version %d", r.Version)
		}
		if revoked[id] && !r.Revoked() {
			t.Errorf("acknowledged revoke lost after kill -9")
		}
	}
	// The store still works.
	r := newRecord(t, "after-crash", time.Now())
	if _, err := s.Create(ctx, r, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(ctx, time.Now().Add(48*time.Hour)); err != nil || n == 0 {
		t.Errorf("Sweep after crash = %d, %v", n, err)
	}
	if err := checkDB(s.db); err != nil {
		t.Error(err)
	}
}

// TestLockedByOtherProcess: while a child process has the file open, Open
// fails fast with ErrLocked naming the path; once the child is gone it
// succeeds.
func TestLockedByOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "latch.db")
	cmd, lines, stdin := helper(t, "hold", path)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("helper did not start: %q %v", lines.Text(), lines.Err())
	}

	done := make(chan error, 1)
	go func() {
		s, err := Open(path, &Options{LockTimeout: 200 * time.Millisecond})
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a hang, not a slow machine
		t.Fatal("Open of a locked file did not return")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a file held by another process: %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "in use by another process") {
		t.Errorf("error %q does not say the file %s is in use by another process", msg, path)
	}

	stdin.Close() // the helper closes the store and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	s, err := Open(path, &Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	s.Close()
}
