package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

func TestDeadlineAndLive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	idle, abs := t0.Add(30*time.Minute), t0.Add(24*time.Hour)
	for _, tc := range []struct {
		name      string
		idle, abs time.Time
		revoked   time.Time
		now       time.Time
		deadline  time.Time
		live      bool
	}{
		{"idle first, before it", idle, abs, time.Time{}, idle.Add(-1), idle, true},
		{"idle first, at it", idle, abs, time.Time{}, idle, idle, false},
		{"idle first, after it", idle, abs, time.Time{}, idle.Add(1), idle, false},
		{"absolute first, before it", abs.Add(time.Hour), abs, time.Time{}, abs.Add(-1), abs, true},
		{"absolute first, at it", abs.Add(time.Hour), abs, time.Time{}, abs, abs, false},
		{"equal deadlines", abs, abs, time.Time{}, abs.Add(-1), abs, true},
		{"revoked before deadline", idle, abs, t0, t0.Add(-time.Hour), idle, false},
		{"revoked in the future still revoked", idle, abs, idle.Add(time.Hour), t0, idle, false},
		{"zero deadlines", time.Time{}, time.Time{}, time.Time{}, t0, time.Time{}, false},
		{"zero idle is the earlier", time.Time{}, abs, time.Time{}, t0, time.Time{}, false},
		{"other zone", idle.In(time.FixedZone("X", -7*3600)), abs, time.Time{}, idle.Add(-1), idle, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &store.Record{IdleExpiresAt: tc.idle, ExpiresAt: tc.abs, RevokedAt: tc.revoked}
			if got := r.Deadline(); !got.Equal(tc.deadline) {
				t.Errorf("Deadline() = %v, want %v", got, tc.deadline)
			}
			if got := r.Live(tc.now); got != tc.live {
				t.Errorf("Live() = %v, want %v", got, tc.live)
			}
			if got := r.Revoked(); got != !tc.revoked.IsZero() {
				t.Errorf("Revoked() = %v", got)
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	r := fullRecord(t)
	c := r.Clone()
	if !equalRecords(c, r) {
		t.Fatal("Clone differs from the original")
	}
	c.Data[0], c.Claims[0] = 'X', 'X'
	c.VerifierHash[0]++
	c.Refresh.Current[0]++
	c.AMR[0] = "X"
	c.JKT[0]++
	if r.Data[0] == 'X' || r.Claims[0] == 'X' || r.VerifierHash == c.VerifierHash || r.Refresh.Current == c.Refresh.Current ||
		r.AMR[0] == "X" || r.JKT == c.JKT {
		t.Error("modifying a clone modified the original")
	}
	if (&store.Record{}).Clone().Data != nil {
		t.Error("Clone of nil Data is not nil")
	}
}

type pinger struct {
	store.Store
	err error
}

func (p pinger) Ping(context.Context) error { return p.err }

func TestPing(t *testing.T) {
	boom := errors.New("boom")
	if err := store.Ping(t.Context(), pinger{err: boom}); err != boom {
		t.Errorf("Ping of a Pinger: %v, want its error", err)
	}
	var plain struct{ store.Store }
	if err := store.Ping(t.Context(), plain); err != nil {
		t.Errorf("Ping of a store without Pinger: %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := store.Ping(ctx, plain); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with a cancelled context: %v", err)
	}
}
