package latch

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/latch-sessions/latch/store"
)

func TestLookup(t *testing.T) {
	obj := []byte(` { "a" : 1, "b":"x\"y", "c":{"a":[1,{"z":"}"}]}, "d":[ "]" ], "e":null ,"k\u0065":true, "f":-1.5e3}`)
	for _, c := range []struct {
		key, want string
		ok        bool
	}{
		{"a", "1", true}, {"b", `"x\"y"`, true}, {"c", `{"a":[1,{"z":"}"}]}`, true},
		{"d", `[ "]" ]`, true}, {"e", "null", true}, {"f", "-1.5e3", true},
		{"z", "", false}, {"ke", "true", true}, // an escaped key is matched by its decoded name
	} {
		got, ok := lookup(obj, c.key)
		if ok != c.ok || string(got) != c.want {
			t.Errorf("lookup(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
		}
	}
	// Duplicate members: the last wins, as encoding/json and JSON.parse decide.
	if got, ok := lookup([]byte(`{"b":"","b":0}`), "b"); !ok || string(got) != "0" {
		t.Errorf(`lookup of a duplicate member = %q, %v; want "0", true`, got, ok)
	}
	for _, bad := range []string{"", "[]", "{", `{"a"}`, `{"a":}`, `{"a":1 "b":2}`, `{"a":"}`, `{"b":1,}`, `{"b":1`} {
		if _, ok := lookup([]byte(bad), "b"); ok {
			t.Errorf("lookup in %q succeeded", bad)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	obj := []byte(`{"user":"alice","role":"admin","n":3}`)
	if n := testing.AllocsPerRun(100, func() { lookup(obj, "n") }); n != 0 {
		t.Fatalf("lookup allocates %v", n)
	}
}

// FuzzLookup checks lookup against encoding/json on valid objects with
// unescaped keys, and that it never panics on anything.
func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,2,"]"]}}`), "b")
	f.Add([]byte(`{"a":"\\","b":2}`), "b")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		got, ok := lookup(obj, key)
		var m map[string]json.RawMessage
		if json.Unmarshal(obj, &m) != nil || !json.Valid([]byte(`"`+key+`"`)) {
			return
		}
		want, has := m[key]
		if has != ok {
			t.Fatalf("lookup(%q) ok=%v, encoding/json has=%v", key, ok, has)
		}
		if ok && has && !jsonEqual(got, want) {
			t.Fatalf("lookup(%q) = %s, want %s", key, got, want)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && string(mustMarshal(x)) == string(mustMarshal(y))
}

func mustMarshal(v any) []byte { b, _ := json.Marshal(v); return b }

// TestViewsFollowTheRecord: a view is shared only by callers of the very
// same record; a changed record (a new one, as every store write makes)
// gets its own view, also when it lands in the slot of an older one.
func TestViewsFollowTheRecord(t *testing.T) {
	v := new(views)
	a := &store.Record{Subject: "a"}
	if v.of(a) != v.of(a) {
		t.Fatal("two views of one record")
	}
	for i := range 5000 { // enough records to collide in every slot
		b := &store.Record{Subject: strconv.Itoa(i)}
		if s := v.of(b); s.rec != b || s.Subject() != b.Subject {
			t.Fatalf("record %d: a view of another record", i)
		}
	}
	if s := v.of(a); s.rec != a || s.Subject() != "a" {
		t.Fatal("a view of another record after collisions")
	}
	var none *views
	if s := none.of(a); s.rec != a {
		t.Fatal("a nil table's view is not of its record")
	}
}
