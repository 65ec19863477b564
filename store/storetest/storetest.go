// Package storetest is the conformance suite for implementations of
// [store.Store], in the spirit of testing/fstest.TestFS and
// log/slog/slogtest.Run.
//
// A backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return mystore.New(...) })
//	}
//
// [Run] starts one named subtest per clause of the contract documented in
// package store; a failure message quotes the clause it checks. Optional
// capabilities ([store.Sweeper], [store.KeyStore], [store.Pinger]) are probed
// only when the store implements them; a store without [store.Sweeper] is
// taken to expire records natively (Redis TTL) and is checked with real
// deadlines a second or two ahead, polled for at most ten seconds.
//
// The suite is itself tested: a small, correct reference store passes it,
// and the same store with one deliberate flaw each — IDs without their
// subject's tag, microsecond times, a done context not matching ctx.Err(),
// unbounded or silently truncated fields, a BLOB-sized Data column, a Sweep
// that fails or deletes stale rows when writes race it, eviction times from
// the store's clock — fails the clause written for it (flawed_test.go).
//
// [RunCorruption] is a separate entry point for stores whose stored bytes a
// test can reach with a raw client ([Corrupter]): damaged records must fail
// closed.
//
// newStore is called once per subtest and must return an empty store:
// Sweep counts and the keyring checks assume nothing else is stored. (The
// suite still uses random subjects, so leftovers of an earlier run do not
// disturb the other subtests.) Records carry deadlines relative to the real
// clock, so stores with native TTL keep them for the duration of a subtest.
// The suite runs its subtests sequentially; several of them start up to 50
// goroutines against one store.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Run runs the conformance suite against the stores newStore returns, one
// fresh store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	for _, tc := range suite {
		t.Run(tc.name, func(tt *testing.T) {
			s := newStore(tt)
			if s == nil {
				tt.Fatal("storetest: newStore returned nil")
			}
			tc.run(&T{
				T:      tt,
				clause: tc.clause,
				s:      s,
				ctx:    tt.Context(),
				// Nanoseconds that are not a whole microsecond: every
				// time the suite stores catches a store that keeps
				// microseconds (TIMESTAMP(6)) or milliseconds.
				now: time.Now().UTC().Truncate(time.Microsecond).Add(321),
			})
		})
	}
}

// test is one clause of the contract and the check that enforces it.
type test struct {
	name   string
	clause string
	run    func(t *T)
}

// suite lists every subtest in the order Run starts them.
var suite = slices.Concat(crudTests, validityTests, versionTests, concurrencyTests, revokeTests, listTests, expiryTests, sweepRaceTests, limitTests, errorTests, optionalTests, replayTests, eventTests)

// T is the state of one subtest. Errorf and Fatalf append the contract
// clause the subtest checks.
type T struct {
	*testing.T
	clause string
	s      store.Store
	ctx    context.Context
	now    time.Time // the subtest's "now": the real clock at its start, in UTC
}

// Errorf reports a failure with the clause it violates.
func (t *T) Errorf(format string, args ...any) {
	t.Helper()
	t.T.Errorf("%s\n\tcontract: %s", fmt.Sprintf(format, args...), t.clause)
}

// Fatalf reports a failure with the clause it violates and stops the subtest.
func (t *T) Fatalf(format string, args ...any) {
	t.Helper()
	t.T.Fatalf("%s\n\tcontract: %s", fmt.Sprintf(format, args...), t.clause)
}

// subject returns a fresh random subject, so runs against a shared backend
// do not see each other's sessions.
func (t *T) subject(name string) string {
	return fmt.Sprintf("storetest-%s-%s", name, rand.Text()[:10])
}

// record returns a realistic record of subject created at created: a random
// ID carrying the subject's tag, random secret hashes, a 30-minute idle and
// a 24-hour absolute deadline. Version is set to a value stores must ignore.
func (t *T) record(subject string, created time.Time) *store.Record {
	t.Helper()
	id, err := store.NewID(subject, rand.Reader)
	if err != nil {
		t.T.Fatalf("storetest: NewID: %v", err)
	}
	r := &store.Record{
		ID:            id,
		Subject:       subject,
		Version:       42,
		CreatedAt:     created,
		AuthTime:      created.Add(-time.Second),
		LastSeenAt:    created,
		IdleExpiresAt: created.Add(30 * time.Minute),
		ExpiresAt:     created.Add(24 * time.Hour),
		IP:            "192.0.2.7",
		UserAgent:     "Mozilla/5.0 (X11; Linux x86_64) storetest",
		Data:          []byte(`{"cart":3,"theme":"dark"}`),
		Claims:        []byte(`{"role":"user"}`),
		ACR:           "urn:latch:acr:pwd",
		AMR:           []string{"pwd", "otp"},
	}
	rand.Read(r.JKT[:])
	rand.Read(r.VerifierHash[:])
	rand.Read(r.CSRFSecret[:])
	rand.Read(r.Refresh.Key[:])
	rand.Read(r.Refresh.Current[:])
	return r
}

// create stores r with no eviction limit and fails the test on error.
func (t *T) create(r *store.Record) {
	t.Helper()
	if _, err := t.s.Create(t.ctx, r, 0); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

// get returns the stored record and fails the test on error.
func (t *T) get(id store.ID) *store.Record {
	t.Helper()
	r, err := t.s.Get(t.ctx, id)
	if err != nil {
		t.Fatalf("Get(%v): %v", id, err)
	}
	if r == nil {
		t.Fatalf("Get(%v) returned a nil record and no error", id)
	}
	if r.ID != id {
		t.Fatalf("Get(%v) returned the record of %v", id, r.ID)
	}
	return r
}

// list returns List(subject, now) and fails the test on error.
func (t *T) list(subject string, now time.Time) []*store.Record {
	t.Helper()
	rs, err := t.s.List(t.ctx, subject, now)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return rs
}

// listIDs returns the IDs List(subject, now) returns, in order.
func (t *T) listIDs(subject string, now time.Time) []store.ID {
	t.Helper()
	var ids []store.ID
	for _, r := range t.list(subject, now) {
		ids = append(ids, r.ID)
	}
	return ids
}

// wantErr fails unless err matches target.
func (t *T) wantErr(op string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one matching %v", op, err, target)
	}
}

// wantSame fails unless got holds the same data as want (times compared
// with Equal, nil and empty byte slices alike).
func (t *T) wantSame(what string, got, want *store.Record) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Errorf("%s: record differs from what was stored: %s", what, d)
	}
}

// diff names the fields in which a and b differ, without printing secrets.
func diff(a, b *store.Record) string {
	if a == nil || b == nil {
		if a == b {
			return ""
		}
		return fmt.Sprintf("one record is nil (got nil: %v, want nil: %v)", a == nil, b == nil)
	}
	var d []string
	field := func(name string, same bool) {
		if !same {
			d = append(d, name)
		}
	}
	field("ID", a.ID == b.ID)
	field("Subject", a.Subject == b.Subject)
	field(fmt.Sprintf("Version (%d, want %d)", a.Version, b.Version), a.Version == b.Version)
	field("VerifierHash", a.VerifierHash == b.VerifierHash)
	field("CSRFSecret", a.CSRFSecret == b.CSRFSecret)
	field("Refresh.Key", a.Refresh.Key == b.Refresh.Key)
	field("Refresh.Current", a.Refresh.Current == b.Refresh.Current)
	field("Refresh.Previous", a.Refresh.Previous == b.Refresh.Previous)
	field("Refresh.RotatedAt", a.Refresh.RotatedAt.Equal(b.Refresh.RotatedAt))
	field("Refresh.Generation", a.Refresh.Generation == b.Refresh.Generation)
	field("CreatedAt", a.CreatedAt.Equal(b.CreatedAt))
	field("AuthTime", a.AuthTime.Equal(b.AuthTime))
	field("LastSeenAt", a.LastSeenAt.Equal(b.LastSeenAt))
	field("IdleExpiresAt", a.IdleExpiresAt.Equal(b.IdleExpiresAt))
	field("ExpiresAt", a.ExpiresAt.Equal(b.ExpiresAt))
	field("RevokedAt", a.RevokedAt.Equal(b.RevokedAt))
	field(fmt.Sprintf("RevokeReason (%q, want %q)", a.RevokeReason, b.RevokeReason), a.RevokeReason == b.RevokeReason)
	field("IP", a.IP == b.IP)
	field("UserAgent", a.UserAgent == b.UserAgent)
	field(fmt.Sprintf("Data (%d bytes, want %d)", len(a.Data), len(b.Data)), bytes.Equal(a.Data, b.Data))
	field(fmt.Sprintf("Claims (%d bytes, want %d)", len(a.Claims), len(b.Claims)), bytes.Equal(a.Claims, b.Claims))
	field(fmt.Sprintf("ACR (%q, want %q)", a.ACR, b.ACR), a.ACR == b.ACR)
	field(fmt.Sprintf("AMR (%q, want %q)", a.AMR, b.AMR), slices.Equal(a.AMR, b.AMR))
	field("JKT", a.JKT == b.JKT)
	return strings.Join(d, ", ")
}

// with returns a copy of r as a store would hold it at version v.
func with(r *store.Record, v uint64) *store.Record {
	c := r.Clone()
	c.Version = v
	return c
}

// sameIDs reports whether a and b hold the same IDs in any order.
func sameIDs(a, b []store.ID) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y store.ID) int { return bytes.Compare(x[:], y[:]) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// short names a hash by its first bytes, for failure messages about
// refresh states (the suite's hashes are random, not secrets).
func short(h store.Hash) string { return hex.EncodeToString(h[:4]) }
