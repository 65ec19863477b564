package redisstore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/store"
)

// FuzzParseURL: parseURL never panics, refuses with errURL, and what it
// accepts names a known deployment with at least one address.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379", "redis://u:p%40ss@h:1234/2", "rediss://h:6380?db=4", "redis://[::1]:7000",
		"redis-sentinel://s1,s2:5000/mymaster", "redis-sentinel://u:p@s1:26379/mymaster/5",
		"redis-sentinel://s1:26379?master=m&db=1", "redis-cluster://a:7000,b:7001,c", "rediss-cluster://u:p@a:7000,b:7001",
		"redis://h?cache_staleness=250ms&pool=4", "redis://", "redis://:@", "redis://h:0/-1", "redis://h/%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var o Options
		tg, err := parseURL(raw, &o)
		if err != nil {
			if !errors.Is(err, errURL) {
				t.Fatalf("parseURL(%q): %v, want errURL", raw, err)
			}
			return
		}
		switch tg.kind {
		case "single", "sentinel", "cluster":
		default:
			t.Fatalf("parseURL(%q): kind %q", raw, tg.kind)
		}
		if len(tg.addrs) == 0 {
			t.Fatalf("parseURL(%q): no address", raw)
		}
		for _, a := range tg.addrs {
			if a == "" || strings.ContainsAny(a, ",/?#@") {
				t.Fatalf("parseURL(%q): address %q", raw, a)
			}
		}
	})
}

// FuzzDecodeValue: the Redis record value decoder never panics on
// arbitrary bytes, refuses with errCorrupt, and what it decodes encodes
// back to a value that decodes to the same record.
func FuzzDecodeValue(f *testing.F) {
	now := time.Date(2026, 12, 1, 15, 0, 0, 123, time.UTC)
	r := newRecord(f, "user-1", now)
	f.Add(encodeValue(nil, r, 1))
	r.ACR, r.AMR, r.JKT[0] = "urn:latch:acr:mfa", []string{"pwd", "otp"}, 7
	r.RevokedAt, r.RevokeReason, r.Refresh.Previous[0] = now, "admin", 1
	f.Add(encodeValue(nil, r, 9))
	f.Add([]byte{valueSealed})
	f.Add([]byte{valueLegacy})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeValue(r.ID, b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeValue: %v, want errCorrupt", err)
			}
			return
		}
		if got.ID != r.ID {
			t.Fatalf("decoded record has ID %v, want the key's %v", got.ID, r.ID)
		}
		again, err := decodeValue(r.ID, encodeValue(nil, got, got.Version))
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v", err)
		}
		a, errA := got.MarshalBinary()
		c, errC := again.MarshalBinary()
		if errA != nil || errC != nil || !bytes.Equal(a, c) {
			t.Fatalf("decode(encode(r)) != r (%v, %v)", errA, errC)
		}
	})
}

// FuzzDecodeEvent: the decoder of event messages (what the scripts and
// Publish send on the event channel, which anyone with access to the
// server can also publish on) never panics, refuses with errBadEvent, and
// what it decodes encodes back to the same event.
func FuzzDecodeEvent(f *testing.F) {
	s := &Store{prefix: DefaultPrefix}
	id, err := store.NewID("alice", rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	kp := s.slotPrefix(id.Tag())
	at := be64(time.Date(2026, 12, 1, 16, 0, 0, 5, time.UTC))
	f.Add(encodeEvent("ab12-1.1", "session.revoked", kp, member(id), "alice", "", "logout", at, ""))
	f.Add(encodeEvent("ab12-2.1", "subject.revoked", kp, "", "alice", member(id), "revoke-all", at, ""))
	f.Add(encodeEvent("ab12-3.1", "keys.changed", "", "", "", "", "", at, "kid-1"))
	f.Add("\x01")
	f.Fuzz(func(t *testing.T, msg string) {
		e, err := s.decodeEvent(msg)
		if err != nil {
			if !errors.Is(err, errBadEvent) && !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeEvent: %v, want errBadEvent", err)
			}
			return
		}
		if e.ID == "" || e.Type == "" {
			t.Fatalf("decoded %+v", e)
		}
		var ekp, m, x string
		if !e.SessionID.IsZero() || !e.Except.IsZero() {
			tag := e.SessionID.Tag()
			if e.SessionID.IsZero() {
				tag = e.Except.Tag()
			}
			ekp = s.slotPrefix(tag)
		}
		if !e.SessionID.IsZero() {
			m = member(e.SessionID)
		}
		if !e.Except.IsZero() {
			x = member(e.Except)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(e.At.UnixNano()))
		again, err := s.decodeEvent(encodeEvent(e.ID, e.Type, ekp, m, e.Subject, x, e.Reason, string(b[:]), e.KeyID))
		if err != nil || again != e {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", e, again, err)
		}
	})
}
