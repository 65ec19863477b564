package store_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/latch-sessions/latch/store"
)

func TestIDRoundTrip(t *testing.T) {
	for _, subject := range []string{"a", "alice", strings.Repeat("ü", 128)} {
		id, err := store.NewID(subject, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if id.Tag() != store.SubjectTag(subject) {
			t.Errorf("NewID(%q).Tag() = %#x, want SubjectTag %#x", subject, id.Tag(), store.SubjectTag(subject))
		}
		s := id.String()
		if !strings.HasPrefix(s, store.IDPrefix) || len(s) != 28 {
			t.Errorf("String() = %q, want %q + 24 characters", s, store.IDPrefix)
		}
		got, err := store.ParseID(s)
		if err != nil || got != id {
			t.Errorf("ParseID(String()) = %v, %v; want the ID back", got, err)
		}
		// As text, in JSON.
		j, err := json.Marshal(map[string]store.ID{"sid": id})
		if err != nil || !bytes.Contains(j, []byte(`"`+s+`"`)) {
			t.Errorf("json.Marshal = %s, %v; want the text form", j, err)
		}
		var back map[string]store.ID
		if err := json.Unmarshal(j, &back); err != nil || back["sid"] != id {
			t.Errorf("json.Unmarshal: %v, %v", back, err)
		}
	}
}

func TestNewIDFreshAndTagged(t *testing.T) {
	a, _ := store.NewID("alice", rand.Reader)
	b, _ := store.NewID("alice", rand.Reader)
	c, _ := store.NewID("bob", rand.Reader)
	if a == b {
		t.Error("two NewID calls returned the same ID")
	}
	if a.Tag() != b.Tag() {
		t.Error("two IDs of one subject carry different tags")
	}
	if a.Tag() == c.Tag() {
		t.Log("alice and bob share a tag (possible, 1 in 65536)")
	}
	if a.IsZero() || !(store.ID{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestNewIDShortRandom(t *testing.T) {
	for name, r := range map[string]interface{ Read([]byte) (int, error) }{
		"short":   bytes.NewReader(make([]byte, 15)),
		"failing": iotest.ErrReader(errors.New("no entropy")),
	} {
		id, err := store.NewID("alice", r)
		if err == nil || !id.IsZero() {
			t.Errorf("%s reader: NewID = %v, %v; want the zero ID and an error", name, id, err)
		}
	}
}

func TestParseIDErrors(t *testing.T) {
	valid, _ := store.NewID("alice", rand.Reader)
	v := valid.String()
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"prefix only", "ses_"},
		{"no prefix", v[4:]},
		{"other prefix", "lts_" + v[4:]},
		{"upper-case prefix", "SES_" + v[4:]},
		{"dash prefix", "ses-" + v[4:]},
		{"one short", v[:len(v)-1]},
		{"one long", v + "A"},
		{"padded", v[:len(v)-1] + "="},
		{"std alphabet +", v[:len(v)-1] + "+"},
		{"std alphabet /", v[:len(v)-1] + "/"},
		{"space", v[:len(v)-1] + " "},
		{"newline inside", v[:10] + "\n" + v[11:]},
		{"CR inside", v[:10] + "\r" + v[11:]},
		{"NUL", v[:len(v)-1] + "\x00"},
		{"non-ASCII", v[:len(v)-2] + "é"},
		{"zero ID", "ses_" + strings.Repeat("A", 24)},
		{"session token", "lts_" + strings.Repeat("A", 67)},
		{"leading space", " " + v[:len(v)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := store.ParseID(tc.in)
			if !errors.Is(err, store.ErrBadID) {
				t.Errorf("ParseID: %v, want ErrBadID", err)
			}
			if !id.IsZero() {
				t.Errorf("ParseID returned a non-zero ID with an error")
			}
			if err != nil && len(tc.in) > 4 && strings.Contains(err.Error(), tc.in[4:]) {
				t.Errorf("the error echoes its input")
			}
			var u store.ID
			if err := u.UnmarshalText([]byte(tc.in)); !errors.Is(err, store.ErrBadID) || !u.IsZero() {
				t.Errorf("UnmarshalText: %v, want ErrBadID and no change", err)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"alice", "bob", "ü"} {
		id, _ := store.NewID(s, rand.Reader)
		f.Add(id.String())
	}
	f.Add("ses_AAECAwQFBgcICQoLDA0ODxAR")
	f.Add("ses_" + strings.Repeat("A", 24))
	f.Add("ses_" + strings.Repeat("_", 24))
	f.Add("ses_\n" + strings.Repeat("A", 23))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := store.ParseID(s)
		if err != nil {
			if !errors.Is(err, store.ErrBadID) || !id.IsZero() {
				t.Fatalf("ParseID: %v with ID %v", err, id)
			}
			return
		}
		if id.IsZero() {
			t.Fatal("ParseID accepted the zero ID")
		}
		if got := id.String(); got != s {
			t.Fatalf("ParseID(%q).String() = %q: two texts for one ID", s, got)
		}
		// And from bytes: any non-zero 18 bytes round-trip through text.
		var raw store.ID
		copy(raw[:], s)
		if !raw.IsZero() {
			if back, err := store.ParseID(raw.String()); err != nil || back != raw {
				t.Fatalf("ParseID(String()) of raw bytes: %v, %v", back, err)
			}
		}
	})
}
