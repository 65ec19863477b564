package storetest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// blobStore is the reference store keeping every record also as
// store.Record.MarshalBinary bytes, which its reads decode: bytes a
// Corrupter can reach. With noChecksum it decodes them as the codec's
// versions without a checksum do, the flaw RunCorruption must catch.
type blobStore struct {
	*refStore
	noChecksum bool
	mu         sync.Mutex
	raw        map[store.ID][]byte
}

func newBlobStore(noChecksum bool) *blobStore {
	return &blobStore{refStore: newRefStore(""), noChecksum: noChecksum, raw: map[store.ID][]byte{}}
}

// sync re-encodes the records of ids from the reference store.
func (s *blobStore) sync(ids ...store.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		r, err := s.refStore.Get(context.Background(), id)
		if err != nil {
			delete(s.raw, id)
			continue
		}
		b, err := r.MarshalBinary()
		if err != nil {
			panic(err)
		}
		s.raw[id] = b
	}
}

func (s *blobStore) decode(id store.ID) (*store.Record, error) {
	s.mu.Lock()
	b := append([]byte(nil), s.raw[id]...)
	s.mu.Unlock()
	if len(b) == 0 {
		return nil, store.ErrNotFound
	}
	if s.noChecksum && len(b) > 4 && (b[0] == 3 || b[0] == 4) {
		b[0] -= 2 // versions 3 and 4 are 1 and 2 with a checksum
		b = b[:len(b)-4]
	}
	var r store.Record
	if err := r.UnmarshalBinary(b); err != nil || r.ID != id {
		return nil, fmt.Errorf("blobstore: %w: %w", store.ErrUnavailable, store.ErrCorrupt)
	}
	return &r, nil
}

func (s *blobStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	if _, err := s.refStore.Get(ctx, id); err != nil {
		return nil, err
	}
	return s.decode(id)
}

func (s *blobStore) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	ids, err := s.refStore.Create(ctx, rec, max)
	s.sync(append(ids, rec.ID)...)
	return ids, err
}

func (s *blobStore) Update(ctx context.Context, rec *store.Record) error {
	err := s.refStore.Update(ctx, rec)
	s.sync(rec.ID)
	return err
}

func (s *blobStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	got, err := s.refStore.RotateRefresh(ctx, r)
	s.sync(r.ID)
	return got, err
}

func (s *blobStore) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	err := s.refStore.Revoke(ctx, id, reason, at)
	s.sync(id)
	return err
}

func (s *blobStore) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	ids, err := s.refStore.RevokeSubject(ctx, subject, except, reason, at)
	s.sync(ids...)
	return ids, err
}

func (s *blobStore) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	rs, err := s.refStore.List(ctx, subject, now)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Record, 0, len(rs))
	for _, r := range rs {
		d, err := s.decode(r.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// blobBytes is the Corrupter of a blobStore.
type blobBytes struct{}

func (blobBytes) Size(_ *testing.T, st store.Store, id store.ID) int {
	s := st.(*blobStore)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.raw[id])
}

func (blobBytes) Flip(_ *testing.T, st store.Store, id store.ID, i int, mask byte) {
	s := st.(*blobStore)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw[id][i] ^= mask
}

// TestCorruptionClause: a store whose records carry the codec's checksum
// passes RunCorruption.
func TestCorruptionClause(t *testing.T) {
	storetest.RunCorruption(t, func(*testing.T) store.Store { return newBlobStore(false) }, blobBytes{})
}

// TestCorruptionFlawed runs RunCorruption against the store that ignores
// the checksum; TestCorruptionClauseCatchesFlaw runs it in a child process.
func TestCorruptionFlawed(t *testing.T) {
	if os.Getenv(flawEnv) != "no-checksum" {
		t.Skip("run by TestCorruptionClauseCatchesFlaw")
	}
	storetest.RunCorruption(t, func(*testing.T) store.Store { return newBlobStore(true) }, blobBytes{})
}

// TestCorruptionClauseCatchesFlaw: RunCorruption fails a store that reads
// damaged bytes as a session.
func TestCorruptionClauseCatchesFlaw(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the clause in a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCorruptionFlawed$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), flawEnv+"=no-checksum")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL: TestCorruptionFlawed/DamageDetected") {
		t.Fatalf("a store without checksums passed RunCorruption (%v)\n%s", err, tail(out))
	}
}
