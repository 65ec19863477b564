package storetest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// refStore is a deliberately simple, correct store: one mutex, linear
// scans. With a flaw set it breaks the contract in exactly one way, so the
// tests below prove that the suite catches each defect a real backend has
// been seen to have.
type refStore struct {
	flaw string

	mu   sync.Mutex
	recs map[store.ID]*store.Record

	writes atomic.Int64 // completed writes, for the "sweep-deadlock" flaw
}

// The flaws, each named after the store it imitates.
const (
	flawWrongTag      = "wrong-tag"       // accepts IDs without their subject's tag (pgstore's template did)
	flawZeroIDNoMatch = "zero-id-nomatch" // refuses a zero ID with an error matching no sentinel
	flawMicroseconds  = "microseconds"    // keeps times as TIMESTAMP(6) does
	flawCtxErr        = "ctx-err"         // a done context gives ErrUnavailable without ctx.Err()
	flawBounds        = "no-bounds"       // keeps fields of any length (unbounded text columns)
	flawTruncateUA    = "truncate-ua"     // VARCHAR(255) user agent: truncates silently
	flawBlob          = "blob"            // Data in a MySQL BLOB: 65,535 bytes, then "Data too long"
	flawSweepDeadlock = "sweep-deadlock"  // Sweep fails when a write raced it (an unretried InnoDB deadlock)
	flawSweepStale    = "sweep-stale"     // Sweep deletes what it found due earlier, without re-checking
	flawEvictAtNow    = "evict-at-now"    // eviction records the store's clock, not rec.CreatedAt
	flawDeadNewCounts = "dead-new-counts" // a new record dead at its CreatedAt still counts toward max
)

func newRefStore(flaw string) *refStore {
	return &refStore{flaw: flaw, recs: map[store.ID]*store.Record{}}
}

func (s *refStore) done(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		if s.flaw == flawCtxErr {
			return fmt.Errorf("ref: %w", store.ErrUnavailable)
		}
		return fmt.Errorf("ref: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

func (s *refStore) validate(r *store.Record) error {
	switch s.flaw {
	case flawWrongTag:
		if r != nil && !r.ID.IsZero() && r.ID.Tag() != store.SubjectTag(r.Subject) {
			return nil
		}
	case flawZeroIDNoMatch:
		if r != nil && r.ID.IsZero() {
			return errors.New("ref: create: zero session ID")
		}
	case flawBounds, flawTruncateUA, flawBlob:
		if r == nil || r.ID.IsZero() || store.ValidSubject(r.Subject) != nil || r.ID.Tag() != store.SubjectTag(r.Subject) {
			return store.Validate(r)
		}
		if s.flaw == flawBlob && (len(r.Data) > 65535 || len(r.Claims) > 65535) {
			return fmt.Errorf("ref: %w: Error 1406: Data too long for column 'data'", store.ErrUnavailable)
		}
		return nil
	}
	return store.Validate(r)
}

// keep is the copy the store holds: what its columns would make of r.
func (s *refStore) keep(r *store.Record) *store.Record {
	c := r.Clone()
	if s.flaw == flawMicroseconds {
		for _, t := range []*time.Time{&c.CreatedAt, &c.AuthTime, &c.LastSeenAt, &c.IdleExpiresAt, &c.ExpiresAt, &c.RevokedAt, &c.Refresh.RotatedAt} {
			*t = t.Truncate(time.Microsecond)
		}
	}
	if s.flaw == flawTruncateUA && len(c.UserAgent) > 255 {
		c.UserAgent = c.UserAgent[:255]
	}
	return c
}

func (s *refStore) wrote() { s.writes.Add(1) }

func (s *refStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.recs[id]; r != nil {
		return r, nil
	}
	return nil, store.ErrNotFound
}

func (s *refStore) Create(ctx context.Context, rec *store.Record, limit int) ([]store.ID, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	if err := s.validate(rec); err != nil {
		return nil, err
	}
	defer s.wrote()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs[rec.ID] != nil {
		return nil, store.ErrExists
	}
	c := s.keep(rec)
	c.Version = 1
	s.recs[c.ID] = c
	if limit <= 0 {
		return nil, nil
	}
	var others []*store.Record
	for _, o := range s.recs {
		if o != c && o.Subject == c.Subject && o.Live(c.CreatedAt) {
			others = append(others, o)
		}
	}
	keep := limit
	if c.Live(c.CreatedAt) || s.flaw == flawDeadNewCounts {
		keep--
	}
	if len(others) <= keep {
		return nil, nil
	}
	slices.SortFunc(others, byRecency)
	at := c.CreatedAt
	if s.flaw == flawEvictAtNow {
		at = time.Now()
	}
	var ev []store.ID
	for _, o := range others[max(keep, 0):] {
		s.revoke(o, store.ReasonEvicted, at)
		ev = append(ev, o.ID)
	}
	return ev, nil
}

// byRecency orders most recently seen first, then most recently created.
func byRecency(a, b *store.Record) int {
	if c := b.LastSeenAt.Compare(a.LastSeenAt); c != 0 {
		return c
	}
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return bytes.Compare(b.ID[:], a.ID[:])
}

func (s *refStore) revoke(o *store.Record, reason string, at time.Time) {
	c := o.Clone()
	c.RevokedAt, c.RevokeReason = at, reason
	c.Version++
	s.recs[c.ID] = s.keep(c)
}

func (s *refStore) Update(ctx context.Context, rec *store.Record) error {
	if err := s.done(ctx); err != nil {
		return err
	}
	if err := s.validate(rec); err != nil {
		return err
	}
	defer s.wrote()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.recs[rec.ID]
	switch {
	case old == nil:
		return store.ErrNotFound
	case old.Revoked() || old.Version != rec.Version:
		return store.ErrConflict
	}
	c := s.keep(rec)
	c.Subject, c.Version = old.Subject, old.Version+1
	s.recs[c.ID] = c
	return nil
}

func (s *refStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	defer s.wrote()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.recs[r.ID]
	switch {
	case old == nil:
		return nil, store.ErrNotFound
	case old.Revoked() || old.Refresh.Current != r.Expect:
		return old, store.ErrConflict
	}
	c := old.Clone()
	c.Version++
	c.Refresh, c.LastSeenAt, c.IdleExpiresAt = r.Next, r.LastSeenAt, r.IdleExpiresAt
	c = s.keep(c)
	s.recs[c.ID] = c
	return c, nil
}

func (s *refStore) validReason(reason string, at time.Time) error {
	if s.flaw == flawBounds {
		return nil
	}
	return store.ValidReason(reason, at)
}

func (s *refStore) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	if err := s.done(ctx); err != nil {
		return err
	}
	if err := s.validReason(reason, at); err != nil {
		return err
	}
	defer s.wrote()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.recs[id]
	if old == nil {
		return store.ErrNotFound
	}
	if !old.Revoked() {
		s.revoke(old, reason, at)
	}
	return nil
}

func (s *refStore) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	if err := s.validReason(reason, at); err != nil {
		return nil, err
	}
	defer s.wrote()
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []store.ID
	for _, o := range s.recs {
		if o.Subject == subject && o.ID != except && !o.Revoked() {
			s.revoke(o, reason, at)
			ids = append(ids, o.ID)
		}
	}
	return ids, nil
}

func (s *refStore) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	if err := s.done(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Record
	for _, o := range s.recs {
		if o.Subject == subject && o.Live(now) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, byRecency)
	return out, nil
}

func (s *refStore) Sweep(ctx context.Context, now time.Time) (int, error) {
	if err := s.done(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	var due []store.ID
	for id, o := range s.recs {
		if !o.Deadline().After(now) {
			due = append(due, id)
		}
	}
	s.mu.Unlock()
	before := s.writes.Load()
	if s.flaw == flawSweepStale {
		// The window between finding and deleting, in which writes that
		// move deadlines land.
		for end := time.Now().Add(20 * time.Millisecond); s.writes.Load() < before+8 && time.Now().Before(end); {
			time.Sleep(100 * time.Microsecond)
		}
	}
	n := 0
	for _, id := range due {
		runtime.Gosched()
		if s.flaw == flawSweepDeadlock && s.writes.Load() != before {
			return n, fmt.Errorf("ref: sweep: %w: Error 1213: Deadlock found when trying to get lock", store.ErrUnavailable)
		}
		s.mu.Lock()
		if o := s.recs[id]; o != nil && (s.flaw == flawSweepStale || !o.Deadline().After(now)) {
			delete(s.recs, id)
			n++
		}
		s.mu.Unlock()
	}
	return n, nil
}

// TestReferenceStore: the unflawed reference store passes the whole suite,
// so each failure below is the flaw's doing.
func TestReferenceStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newRefStore("") })
}

const flawEnv = "LATCH_STORETEST_FLAW"

// TestFlawedStore runs the suite against the store with the flaw named in
// the environment; TestSuiteCatchesFlaws runs it in a child process.
func TestFlawedStore(t *testing.T) {
	flaw := os.Getenv(flawEnv)
	if flaw == "" {
		t.Skip("run by TestSuiteCatchesFlaws with " + flawEnv + " set")
	}
	storetest.Run(t, func(t *testing.T) store.Store { return newRefStore(flaw) })
}

// TestSuiteCatchesFlaws proves each clause that was added after a real
// store passed without it: the suite run against a store with one flaw
// fails, and in (at least) the clause written for that flaw.
func TestSuiteCatchesFlaws(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	for _, tc := range []struct {
		flaw   string
		clause string // a subtest that must fail
	}{
		{flawWrongTag, "Create/Invalid"},
		{flawZeroIDNoMatch, "Create/Invalid"},
		{flawMicroseconds, "Times/Nanoseconds"},
		{flawCtxErr, "Context/Cancelled"},
		{flawBounds, "Create/Invalid"},
		{flawTruncateUA, "Limits/FieldBounds"},
		{flawBlob, "Limits/LargeValues"},
		{flawSweepDeadlock, "Sweep/RacingWrites"},
		{flawSweepStale, "Sweep/RacingWrites"},
		{flawEvictAtNow, "Times/Nanoseconds"},
		{flawEvictAtNow, "Create/MaxEvictionDeadNewRecord"},
		{flawDeadNewCounts, "Create/MaxEvictionDeadNewRecord"},
	} {
		t.Run(tc.flaw+"/"+tc.clause, func(t *testing.T) {
			// A race clause catches a racy flaw when the race happens,
			// which is likely in one run, not certain: allow a few.
			runs := 1
			if strings.Contains(tc.clause, "Racing") {
				runs = 5
			}
			var failed []string
			var out []byte
			for range runs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestFlawedStore$", "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), flawEnv+"="+tc.flaw)
				var err error
				out, err = cmd.CombinedOutput()
				failed = failed[:0]
				for line := range strings.Lines(string(out)) {
					if name, ok := strings.CutPrefix(strings.TrimSpace(line), "--- FAIL: TestFlawedStore/"); ok {
						failed = append(failed, strings.Fields(name)[0])
					}
				}
				if err != nil && slices.Contains(failed, tc.clause) {
					t.Logf("flaw %q fails %v", tc.flaw, failed)
					return
				}
			}
			t.Fatalf("flaw %q: subtest %s did not fail in %d runs (failed: %v)\n%s", tc.flaw, tc.clause, runs, failed, tail(out))
		})
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
