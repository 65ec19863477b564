package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/latch-sessions/latch/store"
)

var limitTests = []test{
	{
		name:   "Limits/AuthContext",
		clause: "A store keeps exactly an ACR of up to MaxACRLen bytes, up to MaxAMRValues AMR values of up to MaxAMRValueLen bytes each, and a JKT, through Create, Update, RotateRefresh and Revoke (which change none of them).",
		run: func(t *T) {
			r := t.record(t.subject("acr"), t.now)
			r.ACR = strings.Repeat("a", store.MaxACRLen)
			r.AMR = nil
			for i := range store.MaxAMRValues {
				r.AMR = append(r.AMR, strings.Repeat(string(rune('a'+i)), store.MaxAMRValueLen))
			}
			r.AMR[0] = "!#$%&'()*+,-./09:;<=>?@AZ[]^_`{|}~"[:store.MaxAMRValueLen]
			t.create(r)
			want := with(r, 1)
			t.wantSame("Get of a record with the largest ACR and AMR", t.get(r.ID), want)
			if got := t.list(r.Subject, t.now); len(got) == 1 {
				t.wantSame("List of a record with the largest ACR and AMR", got[0], want)
			} else {
				t.Errorf("List returned %d records, want 1", len(got))
			}
			// Renewal-like Update: new ACR and AMR, JKT kept.
			upd := want.Clone()
			upd.ACR, upd.AMR = "urn:latch:acr:mfa", []string{"pwd", "hwk"}
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update: %v", err)
			}
			want = with(upd, 2)
			t.wantSame("Get after Update of ACR and AMR", t.get(r.ID), want)
			next := want.Refresh
			next.Previous, next.Current = want.Refresh.Current, store.Hash{9}
			next.RotatedAt, next.Generation = t.now.Add(time.Second), want.Refresh.Generation+1
			got, err := t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: want.Refresh.Current, Next: next,
				LastSeenAt: t.now.Add(time.Second), IdleExpiresAt: t.now.Add(time.Hour)})
			if err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
			if got.ACR != want.ACR || !slices.Equal(got.AMR, want.AMR) || got.JKT != want.JKT {
				t.Errorf("RotateRefresh changed ACR, AMR or JKT")
			}
			if g := t.get(r.ID); g.ACR != want.ACR || !slices.Equal(g.AMR, want.AMR) || g.JKT != want.JKT {
				t.Errorf("Get after RotateRefresh: ACR, AMR or JKT changed")
			}
			if err := t.s.Revoke(t.ctx, r.ID, store.ReasonLogout, t.now.Add(2*time.Second)); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if g, err := t.s.Get(t.ctx, r.ID); err == nil && (g.ACR != want.ACR || !slices.Equal(g.AMR, want.AMR) || g.JKT != want.JKT) {
				t.Errorf("the tombstone of a revoked record lost its ACR, AMR or JKT")
			}
		},
	},
	{
		name:   "Limits/LargeValues",
		clause: "A store keeps, byte for byte, Data and Claims of up to MaxValueLen (65,536) bytes each. SQL stores use column types that hold them: PostgreSQL bytea, MySQL/MariaDB MEDIUMBLOB (a BLOB holds only 65,535).",
		run: func(t *T) {
			r := t.record(t.subject("big"), t.now)
			r.Data = jsonOfLen(store.MaxValueLen, 'd')
			r.Claims = jsonOfLen(store.MaxValueLen, 'c')
			t.create(r)
			want := with(r, 1)
			t.wantSame("Get of a record with Data and Claims of MaxValueLen bytes", t.get(r.ID), want)
			if got := t.list(r.Subject, t.now); len(got) == 1 {
				t.wantSame("List of a record with Data and Claims of MaxValueLen bytes", got[0], want)
			} else {
				t.Errorf("List returned %d records, want 1", len(got))
			}
			upd := want.Clone()
			upd.Data = jsonOfLen(store.MaxValueLen, 'e')
			if err := t.s.Update(t.ctx, upd); err != nil {
				t.Fatalf("Update with Data of MaxValueLen bytes: %v", err)
			}
			t.wantSame("Get after Update with Data of MaxValueLen bytes", t.get(r.ID), with(upd, 2))
		},
	},
	{
		name:   "Limits/Subjects",
		clause: "Subject is the user (or client) the session belongs to; opaque string, 1–256 (MaxSubjectLen) bytes. Every store can list a subject's live sessions and revoke them all.",
		run: func(t *T) {
			subs := []string{
				"a", // 1 byte; also a prefix of the next ones
				"ab",
				"a:",
				"{a}",
				"user@example.com",
				"*?[]{}:; \"'\\/%_\t",
				longSubject(t.subject("long") + "-"),
				"ü",
			}
			for _, s := range subs {
				if len(s) < 1 || len(s) > store.MaxSubjectLen {
					t.T.Fatalf("storetest: bad test subject of %d bytes", len(s))
				}
			}
			if len(subs[6]) != store.MaxSubjectLen {
				t.T.Fatalf("storetest: long subject is %d bytes", len(subs[6]))
			}
			made := map[string][]store.ID{}
			for _, s := range subs {
				for i := range 2 {
					r := t.record(s, t.now.Add(time.Duration(i)*time.Second))
					t.create(r)
					made[s] = append(made[s], r.ID)
					if got := t.get(r.ID); got.Subject != s {
						t.Errorf("Get returned a record whose Subject differs from the %d-byte subject stored", len(s))
					}
				}
			}
			for _, s := range subs {
				if got := t.listIDs(s, t.now); !sameIDs(got, made[s]) {
					t.Errorf("List of a %d-byte subject (%q…) returned %d sessions, want its own 2", len(s), prefix(s), len(got))
				}
			}
			for _, s := range []string{subs[0], subs[6]} {
				ids, err := t.s.RevokeSubject(t.ctx, s, store.ID{}, store.ReasonRevokeAll, t.now)
				if err != nil {
					t.Fatalf("RevokeSubject: %v", err)
				}
				if !sameIDs(ids, made[s]) {
					t.Errorf("RevokeSubject of a %d-byte subject returned %d IDs, want its own 2", len(s), len(ids))
				}
			}
			for _, s := range subs[1:6] {
				if got := t.listIDs(s, t.now); len(got) != 2 {
					t.Errorf("after revoking other subjects, List of %q returned %d sessions, want 2", s, len(got))
				}
			}
		},
	},
}

// jsonOfLen returns a JSON object of exactly n bytes.
func jsonOfLen(n int, fill byte) []byte {
	b := make([]byte, 0, n)
	b = append(b, `{"v":"`...)
	b = append(b, bytes.Repeat([]byte{fill}, n-len(b)-2)...)
	return append(b, `"}`...)
}

// longSubject pads p with multi-byte characters to exactly MaxSubjectLen
// bytes of valid UTF-8.
func longSubject(p string) string {
	var b strings.Builder
	b.WriteString(p)
	for i := 0; ; i++ {
		r := []rune("é🔑ü日")[i%4]
		if b.Len()+utf8.RuneLen(r) > store.MaxSubjectLen {
			break
		}
		b.WriteRune(r)
	}
	for b.Len() < store.MaxSubjectLen {
		b.WriteByte('x')
	}
	return b.String()
}

func prefix(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

var errorTests = []test{
	{
		name:   "Context/Cancelled",
		clause: "A call whose context is already done fails with an error that matches both ErrUnavailable and ctx.Err() (context.Canceled or context.DeadlineExceeded) and changes nothing.",
		run: func(t *T) {
			sub := t.subject("ctx")
			r := t.record(sub, t.now)
			t.create(r)
			stored := t.get(r.ID).Clone()

			cancelled, cancel := context.WithCancel(t.ctx)
			cancel()
			expired, cancel2 := context.WithDeadline(t.ctx, time.Now().Add(-time.Second))
			defer cancel2()
			check := func(op string, ctx context.Context, err error) {
				t.Helper()
				if !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("%s with a done context: got error %v, want one matching ErrUnavailable", op, err)
				}
				if !errors.Is(err, ctx.Err()) {
					t.Errorf("%s with a done context: error %v does not also match %v", op, err, ctx.Err())
				}
			}
			for _, ctx := range []context.Context{cancelled, expired} {
				got, err := t.s.Get(ctx, r.ID)
				check("Get", ctx, err)
				if got != nil {
					t.Errorf("Get with a done context returned a record")
				}
				fresh := t.record(sub, t.now)
				_, err = t.s.Create(ctx, fresh, 1)
				check("Create", ctx, err)
				upd := stored.Clone()
				upd.Data = []byte(`{"cancelled":true}`)
				check("Update", ctx, t.s.Update(ctx, upd))
				next := store.Refresh{Current: store.Hash{4}, Previous: r.Refresh.Current}
				_, err = t.s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: t.now, IdleExpiresAt: t.now.Add(time.Hour)})
				check("RotateRefresh", ctx, err)
				check("Revoke", ctx, t.s.Revoke(ctx, r.ID, store.ReasonLogout, t.now))
				_, err = t.s.RevokeSubject(ctx, sub, store.ID{}, store.ReasonRevokeAll, t.now)
				check("RevokeSubject", ctx, err)
				rs, err := t.s.List(ctx, sub, t.now)
				check("List", ctx, err)
				if len(rs) != 0 {
					t.Errorf("List with a done context returned records")
				}
				if sw, ok := t.s.(store.Sweeper); ok {
					_, err := sw.Sweep(ctx, t.now.AddDate(100, 0, 0))
					check("Sweep", ctx, err)
				}
				if ks, ok := t.s.(store.KeyStore); ok {
					_, _, err := ks.LoadKeyring(ctx)
					check("LoadKeyring", ctx, err)
					check("SaveKeyring", ctx, ks.SaveKeyring(ctx, []byte("keyring"), 0))
				}
				if p, ok := t.s.(store.Pinger); ok {
					check("Ping", ctx, p.Ping(ctx))
				}

				// Nothing changed.
				if _, err := t.s.Get(t.ctx, fresh.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Create with a done context stored the record (Get: %v)", err)
				}
			}
			t.wantSame("Get after writes with a done context", t.get(r.ID), stored)
			if ids := t.listIDs(sub, t.now); len(ids) != 1 {
				t.Errorf("List after writes with a done context returned %d sessions, want 1", len(ids))
			}
			if ks, ok := t.s.(store.KeyStore); ok {
				if blob, v, err := ks.LoadKeyring(t.ctx); err != nil || v != 0 || len(blob) != 0 {
					t.Errorf("SaveKeyring with a done context saved a keyring (version %d, error %v)", v, err)
				}
			}
		},
	},
	{
		name:   "Errors/NoSecrets",
		clause: "Sentinel errors; stores wrap them with %w to add detail, never with a token.",
		run: func(t *T) {
			sub := t.subject("secret")
			r := t.record(sub, t.now)
			t.create(r)
			var errs []error
			add := func(err error) {
				if err != nil {
					errs = append(errs, err)
				}
			}
			_, err := t.s.Create(t.ctx, r, 0)
			add(err)
			stale := r.Clone()
			stale.Version = 9
			add(t.s.Update(t.ctx, stale))
			missing := t.record(sub, t.now)
			missing.Version = 1
			add(t.s.Update(t.ctx, missing))
			next := store.Refresh{Current: store.Hash{6}, Key: missing.Refresh.Key}
			_, err = t.s.RotateRefresh(t.ctx, store.Rotation{ID: r.ID, Expect: missing.Refresh.Current, Next: next, LastSeenAt: t.now, IdleExpiresAt: t.now.Add(time.Hour)})
			add(err)
			_, err = t.s.RotateRefresh(t.ctx, store.Rotation{ID: missing.ID, Expect: r.Refresh.Current, Next: next, LastSeenAt: t.now, IdleExpiresAt: t.now.Add(time.Hour)})
			add(err)
			ctx, cancel := context.WithCancel(t.ctx)
			cancel()
			_, err = t.s.Create(ctx, missing, 0)
			add(err)
			add(t.s.Update(ctx, r))
			_, err = t.s.RotateRefresh(ctx, store.Rotation{ID: r.ID, Expect: r.Refresh.Current, Next: next})
			add(err)
			if len(errs) < 8 {
				t.Errorf("only %d of 8 refused operations returned an error", len(errs))
			}
			secrets := [][]byte{r.VerifierHash[:], r.CSRFSecret[:], r.Refresh.Key[:], r.Refresh.Current[:],
				missing.VerifierHash[:], missing.CSRFSecret[:], missing.Refresh.Key[:], missing.Refresh.Current[:]}
			for _, err := range errs {
				msg := err.Error()
				for _, s := range secrets {
					for _, enc := range encodings(s) {
						if strings.Contains(msg, enc) {
							t.Errorf("an error message contains a secret hash or key: %s…", msg[:min(len(msg), 20)])
						}
					}
				}
			}
		},
	},
}

// encodings returns the forms a secret might take in an error message.
func encodings(s []byte) []string {
	return []string{
		string(s),
		hex.EncodeToString(s),
		strings.ToUpper(hex.EncodeToString(s)),
		base64.StdEncoding.EncodeToString(s),
		base64.RawStdEncoding.EncodeToString(s),
		base64.URLEncoding.EncodeToString(s),
		base64.RawURLEncoding.EncodeToString(s),
	}
}

var optionalTests = []test{
	{
		name:   "KeyStore/CompareAndSwap",
		clause: "LoadKeyring returns the stored blob and its version, or (nil, 0, nil) if none has been saved. SaveKeyring stores blob as version expect+1 if the stored version is expect (0: none saved yet), and fails with ErrConflict otherwise.",
		run: func(t *T) {
			ks, ok := t.s.(store.KeyStore)
			if !ok {
				t.Skip("store does not implement store.KeyStore")
			}
			load := func(wantBlob []byte, wantV uint64) {
				t.Helper()
				blob, v, err := ks.LoadKeyring(t.ctx)
				if err != nil {
					t.Fatalf("LoadKeyring: %v", err)
				}
				if v != wantV || !bytes.Equal(blob, wantBlob) {
					t.Errorf("LoadKeyring returned version %d and %d bytes, want version %d and %d bytes", v, len(blob), wantV, len(wantBlob))
				}
				if kv, ok := t.s.(store.KeyringVersioner); ok {
					if v, err := kv.KeyringVersion(t.ctx); err != nil || v != wantV {
						t.Errorf("KeyringVersion = %d, %v; want %d, the version LoadKeyring returns", v, err, wantV)
					}
				}
			}
			load(nil, 0)
			v1 := []byte("keyring version one \x00\xff")
			arg := bytes.Clone(v1)
			if err := ks.SaveKeyring(t.ctx, arg, 0); err != nil {
				t.Fatalf("SaveKeyring(expect 0) into an empty store: %v", err)
			}
			arg[0] = 'X' // the caller's buffer is the caller's
			load(v1, 1)
			v2 := bytes.Repeat([]byte("two"), 10_000)
			t.wantErr("SaveKeyring with a stale expect", ks.SaveKeyring(t.ctx, v2, 0), store.ErrConflict)
			t.wantErr("SaveKeyring with an expect ahead of the stored version", ks.SaveKeyring(t.ctx, v2, 2), store.ErrConflict)
			load(v1, 1)
			if err := ks.SaveKeyring(t.ctx, v2, 1); err != nil {
				t.Fatalf("SaveKeyring(expect 1): %v", err)
			}
			load(v2, 2)

			// Racing savers: exactly one wins.
			const racers = 10
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range racers {
				wg.Go(func() {
					<-start
					errs[i] = ks.SaveKeyring(t.ctx, []byte{byte('a' + i)}, 2)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("two SaveKeyring calls with the same expect both succeeded")
				case err == nil:
					winner = i
				default:
					t.wantErr("a losing SaveKeyring", err, store.ErrConflict)
				}
			}
			if winner < 0 {
				t.Fatalf("no SaveKeyring of %d racers succeeded", racers)
			}
			load([]byte{byte('a' + winner)}, 3)
		},
	},
	{
		name:   "Pinger",
		clause: "Pinger is implemented by stores that can check their backend is reachable.",
		run: func(t *T) {
			p, ok := t.s.(store.Pinger)
			if !ok {
				t.Skip("store does not implement store.Pinger")
			}
			if err := p.Ping(t.ctx); err != nil {
				t.Errorf("Ping of a working store: %v", err)
			}
			if err := store.Ping(t.ctx, t.s); err != nil {
				t.Errorf("store.Ping of a working store: %v", err)
			}
		},
	},
}
