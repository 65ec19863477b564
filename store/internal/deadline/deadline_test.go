package deadline

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestShared: calls share a deadline context that gives each at least the
// timeout and at most the timeout plus a grain, and that fires.
func TestShared(t *testing.T) {
	var d Deadlines
	d.Init(80 * time.Millisecond)
	grain := time.Duration(d.grain)
	before := time.Now()
	ctx := d.get()
	dl, ok := ctx.Deadline()
	if !ok || dl.Before(before.Add(d.timeout)) || dl.After(time.Now().Add(d.timeout+grain)) {
		t.Errorf("Deadline = %v, %v; want within [now + timeout, now + timeout + grain]", dl, ok)
	}
	// A later call gets a deadline at least the timeout from its own start:
	// the same context while that holds, else a new one.
	for range 100 {
		start := time.Now()
		c := d.get()
		if dl, _ := c.Deadline(); dl.Before(start.Add(d.timeout)) {
			t.Fatalf("a call got %v, less than the timeout", dl.Sub(start))
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done never closed after the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
	if c := d.get(); c == ctx || c.Err() != nil {
		t.Error("get handed out a context past its hand-out time")
	}
}

// TestBound: Bound keeps a caller's earlier deadline, its values and its
// cancellation at the start of a call.
func TestBound(t *testing.T) {
	var d Deadlines
	d.Init(time.Hour)
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")

	if got := d.Bound(context.Background()); got != d.get() {
		t.Error("context.Background is not bounded by the shared deadline")
	}
	c := d.Bound(parent)
	if dl, ok := c.Deadline(); !ok || time.Until(dl) < d.timeout-time.Minute {
		t.Errorf("Deadline = %v, %v; want about the timeout from now", dl, ok)
	}
	if c.Value(key{}) != "v" {
		t.Error("Value does not reach the parent")
	}
	if c.Done() == nil || c.Err() != nil {
		t.Error("a bounded context has no Done channel, or is done")
	}
	near, cancel := context.WithTimeout(parent, time.Minute)
	defer cancel()
	if d.Bound(near) != near {
		t.Error("a context with an earlier deadline was wrapped")
	}
	gone, cancel := context.WithCancel(parent)
	cancel()
	if c := d.Bound(gone); !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("a cancelled context bounds to Err %v, want Canceled", c.Err())
	}
}

// TestAfterFunc: context.AfterFunc on a bounded context runs when the
// shared deadline passes, and starts no goroutine to wait for it.
func TestAfterFunc(t *testing.T) {
	var d Deadlines
	d.Init(50 * time.Millisecond)
	ctx := d.Bound(context.WithValue(context.Background(), struct{}{}, 1))
	before := runtime.NumGoroutine()
	fired := make(chan struct{})
	stops := make([]func() bool, 100)
	for i := range stops {
		stops[i] = context.AfterFunc(ctx, func() {})
	}
	if n := runtime.NumGoroutine(); n > before+10 {
		t.Errorf("100 AfterFuncs started %d goroutines", n-before)
	}
	for _, stop := range stops {
		if !stop() {
			t.Fatal("stop after registration failed")
		}
	}
	context.AfterFunc(ctx, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFunc never ran after the deadline")
	}
}
