package faults

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/serveproc"
)

// TestBoltDiskFull runs latch serve on a bbolt file in a small tmpfs of the
// test's own, lets the write load fill it, then grows the tmpfs (the disk
// is freed): while it is full every error must be 503, acknowledged writes
// must survive, and the server must recover by itself. Needs root (mount).
func TestBoltDiskFull(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).CombinedOutput()
	serveproc.Require(t, err == nil, "mounting a tmpfs needs root: "+string(out))
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	d := deploy(t, 1, "bolt:"+filepath.Join(dir, "latch.db"))
	drive(t, d, 8, Options{}, &History{}, func(h *History) {
		deadline := time.Now().Add(60 * time.Second)
		for !full(dir) {
			if time.Now().After(deadline) {
				t.Errorf("the load did not fill the tmpfs in 60 s: the fault never happened")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		time.Sleep(phase())
		if out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput(); err != nil {
			t.Fatalf("grow the tmpfs: %v: %s", err, out)
		}
		h.Inject("bbolt disk full", start, time.Now())
		time.Sleep(phase())
	})
}

// full reports whether the file system at dir has under 64 KiB free.
func full(dir string) bool {
	var s syscall.Statfs_t
	return syscall.Statfs(dir, &s) == nil && s.Bavail*uint64(s.Bsize) < 64<<10
}
