package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/latch-sessions/latch/internal/testredis"
	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/storetest"
)

// rawValue is a Corrupter on the record key's value, with the store's own
// client as the raw client: GET, flip, SET with the key's TTL kept.
type rawValue struct{}

func (rawValue) value(t *testing.T, s *tracked, id store.ID) []byte {
	t.Helper()
	v, err := s.client.Do(context.Background(), s.client.B().Get().Key(s.recordKey(id)).Build()).AsBytes()
	if err != nil {
		t.Fatalf("raw GET: %v", err)
	}
	return v
}

func (r rawValue) Size(t *testing.T, st store.Store, id store.ID) int {
	return len(r.value(t, st.(*tracked), id))
}

func (r rawValue) Flip(t *testing.T, st store.Store, id store.ID, i int, mask byte) {
	s := st.(*tracked)
	v := r.value(t, s, id)
	v[i] ^= mask
	setRaw(t, s, id, v)
}

func setRaw(t *testing.T, s *tracked, id store.ID, v []byte) {
	t.Helper()
	if err := s.client.Do(context.Background(), s.client.B().Set().Key(s.recordKey(id)).Value(string(v)).Keepttl().Build()).Error(); err != nil {
		t.Fatalf("raw SET: %v", err)
	}
}

func TestCorruptionDetected(t *testing.T) {
	storetest.RunCorruption(t, func(t *testing.T) store.Store {
		return standalone(t, func(o *Options) { o.DisableCache = true })
	}, rawValue{})
}

// legacyValue is v, a sealed value, as a binary older than the seal wrote
// it: format 1, no seal.
func legacyValue(t *testing.T, v []byte) []byte {
	t.Helper()
	if v[0] != valueSealed {
		t.Fatalf("value of format %d, want %d", v[0], valueSealed)
	}
	l := append([]byte{valueLegacy}, v[1:len(v)-sealLen]...)
	return l
}

// TestLegacyValuesStillWork: values written before the seal (a rolling
// upgrade, or a store that has not been written since) read back as they
// were, and every script works on them and seals what it writes.
func TestLegacyValuesStillWork(t *testing.T) {
	s := standalone(t, func(o *Options) { o.DisableCache = true })
	ctx := t.Context()
	now := time.Now().UTC()
	subject := "legacy-" + testPrefix()
	mk := func() *store.Record {
		r := newRecord(t, subject, now)
		r.ACR, r.AMR, r.IP = "urn:latch:acr:mfa", []string{"pwd", "otp"}, "192.0.2.1"
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		setRaw(t, s, r.ID, legacyValue(t, rawValue{}.value(t, s, r.ID)))
		return r
	}
	sealed := func(what string, id store.ID) {
		t.Helper()
		if v := (rawValue{}).value(t, s, id); v[0] != valueSealed {
			t.Errorf("%s: value of format %d after a write, want sealed (%d)", what, v[0], valueSealed)
		}
	}

	a := mk()
	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatalf("Get of a legacy value: %v", err)
	}
	if got.ACR != a.ACR || got.IP != a.IP || got.Refresh.Current != a.Refresh.Current || got.Version != 1 {
		t.Fatal("a legacy value read back changed")
	}
	if rs, err := s.List(ctx, subject, now); err != nil || len(rs) != 1 {
		t.Fatalf("List with a legacy value: %d records, %v", len(rs), err)
	}

	// Each script on a legacy value: rotate, update, revoke, revoke-all,
	// and eviction by create.
	rot := store.Rotation{ID: a.ID, Expect: a.Refresh.Current, Next: store.Refresh{Key: a.Refresh.Key, Previous: a.Refresh.Current, RotatedAt: now, Generation: 1},
		LastSeenAt: now, IdleExpiresAt: now.Add(time.Hour)}
	rot.Next.Current[0] = 9
	if r, err := s.RotateRefresh(ctx, rot); err != nil || r.Refresh.Current != rot.Next.Current || r.ACR != a.ACR {
		t.Fatalf("RotateRefresh of a legacy value: %v", err)
	}
	sealed("RotateRefresh", a.ID)

	b := mk()
	up := b.Clone()
	up.Version, up.IP = 1, "192.0.2.2"
	if err := s.Update(ctx, up); err != nil {
		t.Fatalf("Update of a legacy value: %v", err)
	}
	sealed("Update", b.ID)

	c := mk()
	if err := s.Revoke(ctx, c.ID, store.ReasonLogout, now); err != nil {
		t.Fatalf("Revoke of a legacy value: %v", err)
	}
	sealed("Revoke", c.ID)
	if r, err := s.Get(ctx, c.ID); err != nil || !r.Revoked() || r.RevokeReason != store.ReasonLogout {
		t.Fatalf("revoked legacy value: %v", err)
	}

	d := mk()
	if ids, err := s.RevokeSubject(ctx, subject, a.ID, store.ReasonRevokeAll, now); err != nil || len(ids) != 2 {
		t.Fatalf("RevokeSubject over legacy values: %v revoked, %v", ids, err)
	}
	sealed("RevokeSubject", d.ID)

	if err := s.Revoke(ctx, a.ID, store.ReasonLogout, now); err != nil {
		t.Fatal(err)
	}
	e := mk() // the one live session
	f := newRecord(t, subject, now.Add(time.Second))
	if ev, err := s.Create(ctx, f, 1); err != nil || len(ev) != 1 || ev[0] != e.ID {
		t.Fatalf("eviction of a legacy value: %v, %v", ev, err)
	}
	sealed("eviction", e.ID)
	if r, err := s.Get(ctx, e.ID); err != nil || r.RevokeReason != store.ReasonEvicted {
		t.Fatalf("evicted legacy value: %v", err)
	}
}

// TestScriptsRefuseDamagedValues: a script never rewrites a value whose
// seal fails (its new seal would launder the damage): the write fails with
// ErrUnavailable and the damaged value stays as it was.
func TestScriptsRefuseDamagedValues(t *testing.T) {
	s := standalone(t, func(o *Options) { o.DisableCache = true })
	ctx := t.Context()
	now := time.Now().UTC()
	subject := "damaged-" + testPrefix()
	r := newRecord(t, subject, now)
	r.UserAgent = "curl/8"
	if _, err := s.Create(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	v := rawValue{}.value(t, s, r.ID)
	v[len(v)-sealLen-3] ^= 0x20 // a byte of the user agent
	setRaw(t, s, r.ID, v)

	rot := store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: store.Refresh{Key: r.Refresh.Key, Previous: r.Refresh.Current, RotatedAt: now, Generation: 1},
		LastSeenAt: now, IdleExpiresAt: now.Add(time.Hour)}
	up := r.Clone()
	up.Version = 1
	for name, op := range map[string]func() error{
		"RotateRefresh": func() error { _, err := s.RotateRefresh(ctx, rot); return err },
		"Update":        func() error { return s.Update(ctx, up) },
		"Revoke":        func() error { return s.Revoke(ctx, r.ID, store.ReasonAdmin, now) },
	} {
		if err := op(); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s of a damaged value: %v, want ErrUnavailable and ErrCorrupt", name, err)
		}
	}
	if ids, err := s.RevokeSubject(ctx, subject, store.ID{}, store.ReasonAdmin, now); err != nil || len(ids) != 0 {
		t.Errorf("RevokeSubject over a damaged value: revoked %v, %v; want it left alone", ids, err)
	}
	f := newRecord(t, subject, now.Add(time.Second))
	if ev, err := s.Create(ctx, f, 1); err != nil || len(ev) != 0 {
		t.Errorf("Create with eviction beside a damaged value: evicted %v, %v; want it left alone", ev, err)
	}
	if got := (rawValue{}).value(t, s, r.ID); string(got) != string(v) {
		t.Error("a script rewrote a damaged value")
	}
	if _, err := s.Get(ctx, r.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get of the damaged value: %v", err)
	}
}

// TestUnsealedForRollingUpgrade: a store with Options.Unsealed (seal=false)
// writes only format 1 values, which binaries older than the seal read,
// through every write path (Go's and the scripts'), and still checks the
// seals of sealed values it reads.
func TestUnsealedForRollingUpgrade(t *testing.T) {
	s := openURL(t, "redis://"+testredis.Addr(t)+"?cache=false&seal=false")
	ctx := t.Context()
	now := time.Now().UTC()
	subject := "unsealed-" + testPrefix()
	format := func(what string, id store.ID) {
		t.Helper()
		if v := (rawValue{}).value(t, s, id); v[0] != valueLegacy {
			t.Errorf("%s: value of format %d, want %d", what, v[0], valueLegacy)
		}
	}
	mk := func() *store.Record {
		r := newRecord(t, subject, now)
		if _, err := s.Create(ctx, r, 0); err != nil {
			t.Fatal(err)
		}
		format("Create", r.ID)
		return r
	}
	a := mk()
	rot := store.Rotation{ID: a.ID, Expect: a.Refresh.Current, Next: store.Refresh{Key: a.Refresh.Key, Previous: a.Refresh.Current, RotatedAt: now, Generation: 1},
		LastSeenAt: now, IdleExpiresAt: now.Add(time.Hour)}
	if _, err := s.RotateRefresh(ctx, rot); err != nil {
		t.Fatal(err)
	}
	format("RotateRefresh", a.ID)
	up, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	up = up.Clone()
	up.IP = "192.0.2.3"
	if err := s.Update(ctx, up); err != nil {
		t.Fatal(err)
	}
	format("Update", a.ID)
	if err := s.Revoke(ctx, a.ID, store.ReasonLogout, now); err != nil {
		t.Fatal(err)
	}
	format("Revoke", a.ID)
	b := mk()
	if _, err := s.RevokeSubject(ctx, subject, store.ID{}, store.ReasonRevokeAll, now); err != nil {
		t.Fatal(err)
	}
	format("RevokeSubject", b.ID)
	c := mk()
	if ev, err := s.Create(ctx, newRecord(t, subject, now.Add(time.Second)), 1); err != nil || len(ev) != 1 || ev[0] != c.ID {
		t.Fatalf("eviction: %v, %v", ev, err)
	}
	format("eviction", c.ID)

	// A sealed value (another replica's) is still checked.
	sealed := standalone(t, func(o *Options) { o.DisableCache = true; o.Prefix = s.prefix })
	d := newRecord(t, subject, now)
	if _, err := sealed.Create(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	v := (rawValue{}).value(t, s, d.ID)
	v[len(v)-1] ^= 1
	setRaw(t, s, d.ID, v)
	if _, err := s.Get(ctx, d.ID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a damaged sealed value through the unsealed store: %v", err)
	}
}
