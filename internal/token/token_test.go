package token

import (
	"crypto/rand"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/latch-sessions/latch/store"
)

func newToken(t testing.TB, k Kind) (string, store.ID, Secret) {
	id, err := store.NewID("alice", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Encode(k, id, s), id, s
}

func TestRoundTrip(t *testing.T) {
	for _, k := range []Kind{Session, Refresh} {
		tok, id, s := newToken(t, k)
		if len(tok) != Len || !strings.HasPrefix(tok, k.prefix()) {
			t.Fatalf("bad shape %d", len(tok))
		}
		gid, gs, err := Parse(k, tok)
		if err != nil || gid != id || gs != s {
			t.Fatalf("round trip failed: %v", err)
		}
		other := Refresh
		if k == Refresh {
			other = Session
		}
		if _, _, err := Parse(other, tok); err != ErrMalformed {
			t.Fatalf("kind %d parsed as %d", k, other)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tok, _, _ := newToken(t, Session)
	cases := map[string]string{
		"empty":     "",
		"short":     tok[:Len-4],
		"long":      tok + "AAAA",
		"bad char":  tok[:10] + "!" + tok[11:],
		"padding":   tok[:Len-1] + "=",
		"plus":      tok[:10] + "+" + tok[11:],
		"no prefix": "xxx_" + tok[4:],
		"zero id":   Encode(Session, store.ID{}, Secret{1}),
	}
	for i := 4; i < Len; i += 7 { // every flipped character breaks the checksum
		b := []byte(tok)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		cases["flip"+string(rune('0'+i%10))+string(rune('a'+i/10))] = string(b)
	}
	for name, c := range cases {
		if _, _, err := Parse(Session, c); err != ErrMalformed {
			t.Errorf("%s: accepted", name)
		}
	}
	// decode tests the characters once at the end: a character outside
	// the alphabet anywhere, the first and the last included, is refused.
	for i := prefixLen; i < Len; i++ {
		for _, c := range []byte{'!', '=', '+', '/', '.', 0, 0x80, 0xff} {
			b := []byte(tok)
			b[i] = c
			if _, _, err := Parse(Session, string(b)); err != ErrMalformed {
				t.Errorf("byte %#x at %d: accepted", c, i)
			}
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	tok, _, _ := newToken(t, Session)
	if n := testing.AllocsPerRun(100, func() { Parse(Session, tok) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

func TestHashDomainSeparation(t *testing.T) {
	s := Secret{7}
	if Hash(Session, s) == Hash(Refresh, s) {
		t.Fatal("session and refresh hashes of one secret collide")
	}
	if !Equal(Hash(Session, s), Hash(Session, s)) || Equal(Hash(Session, s), Hash(Session, Secret{8})) {
		t.Fatal("Equal is wrong")
	}
}

func TestNextRefreshKeyed(t *testing.T) {
	k1, k2 := [32]byte{1}, [32]byte{2}
	p := Secret{9}
	if NextRefresh(&k1, p) != NextRefresh(&k1, p) {
		t.Fatal("not deterministic")
	}
	if NextRefresh(&k1, p) == NextRefresh(&k2, p) || NextRefresh(&k1, p) == p {
		t.Fatal("successor does not depend on the family key")
	}
}

func FuzzParse(f *testing.F) {
	tok, _, _ := newToken(f, Session)
	rt, _, _ := newToken(f, Refresh)
	f.Add(tok)
	f.Add(rt)
	f.Add("lts_")
	f.Add(tok[:40])
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range []Kind{Session, Refresh} {
			id, sec, err := Parse(k, s)
			if err != nil {
				continue
			}
			if Encode(k, id, sec) != s {
				t.Fatalf("accepted a non-canonical token")
			}
		}
	})
}

func BenchmarkParseHash(b *testing.B) {
	tok, _, _ := newToken(b, Session)
	b.ReportAllocs()
	for b.Loop() {
		_, s, _ := Parse(Session, tok)
		Hash(Session, s)
	}
}

func TestChecksumIsCRC32C(t *testing.T) {
	p := []byte("some payload")
	want := crc32.Update(crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), []byte(RefreshPrefix)), crc32.MakeTable(crc32.Castagnoli), p)
	if got := checksum(Refresh, p); got != want {
		t.Fatalf("checksum %x, want %x", got, want)
	}
}
