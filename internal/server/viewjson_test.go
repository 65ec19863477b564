package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/store/memstore"
)

// csrfMember matches the CSRF token member appendSessionResponse adds.
var csrfMember = regexp.MustCompile(`,"csrf_token":"([A-Za-z0-9_-]+)"}\n$`)

// checkAppendSession compares the hand-written session answer with
// encoding/json's for the session ns creates (if Create accepts it), with
// and without a CSRF token.
func checkAppendSession(t *testing.T, ns latch.NewSession) {
	t.Helper()
	mgr, err := latch.New(latch.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	is, err := mgr.Create(context.Background(), ns)
	if err != nil {
		t.Skip(err) // not a session latch would hold
	}
	sess := is.Session
	var want bytes.Buffer
	if err := encode(&want, sessionResponse{Session: viewOf(sess)}); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := appendSessionResponse(&got, sess, mgr, false); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("appendSessionResponse:\n got %s\nwant %s", got.Bytes(), want.Bytes())
	}
	got.Reset()
	if err := appendSessionResponse(&got, sess, mgr, true); err != nil {
		t.Fatal(err)
	}
	m := csrfMember.FindSubmatchIndex(got.Bytes())
	if m == nil {
		t.Fatalf("no csrf_token member at the end of %s", got.Bytes())
	}
	if tok := string(got.Bytes()[m[2]:m[3]]); !mgr.CheckCSRF(sess, tok) {
		t.Fatalf("csrf_token %q is not a CSRF token of the session", tok)
	}
	if rest := string(got.Bytes()[:m[0]]) + "}\n"; rest != want.String() {
		t.Fatalf("with a CSRF token:\n got %s\nwant %s", rest, want.Bytes())
	}
	var v map[string]any
	if err := json.Unmarshal(got.Bytes(), &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
}

func TestAppendSessionMatchesEncodingJSON(t *testing.T) {
	for name, ns := range map[string]latch.NewSession{
		"minimal": {Subject: "alice"},
		"full": {
			Subject: "u-42@example.com", Data: json.RawMessage(` { "cart" : [1, 2, {"x":"<&>"}], "n": 1.5e3 } `),
			Claims: json.RawMessage(`{"role":"admin"}`), Client: latch.Client{IP: "2001:db8::1", UserAgent: "Mozilla/5.0 (X11) \"quoted\" \\ <b>"},
			AuthTime: time.Now().Add(-time.Hour), ACR: "urn:acr:2fa", AMR: []string{"pwd", "otp"},
		},
		"unicode": {Subject: "zoë \u2028 \u2029 日本", Client: latch.Client{UserAgent: "a\tb\u007f\u0080"}},
	} {
		t.Run(name, func(t *testing.T) { checkAppendSession(t, ns) })
	}
}

func FuzzAppendSession(f *testing.F) {
	f.Add("alice", `{"a":1}`, "192.0.2.1", "curl/8 \"x\"", "pwd", "otp")
	f.Add("zoë\u2028", ` { "k" : [ 1 , "<>" ] } `, "", "\x01\xff", "", "")
	f.Fuzz(func(t *testing.T, subject, data, ip, ua, acr, amr string) {
		ns := latch.NewSession{Subject: subject, Client: latch.Client{IP: ip, UserAgent: ua}, ACR: acr}
		if data != "" {
			ns.Data = json.RawMessage(data)
		}
		if amr != "" {
			ns.AMR = []string{amr}
		}
		checkAppendSession(t, ns)
	})
}

// TestSetVerifyHeaders checks the verify headers against what Header.Set
// gives, and that the problem path still removes the ETag.
func TestSetVerifyHeaders(t *testing.T) {
	for _, c := range []struct {
		version uint64
		maxAge  int64
	}{{1, 0}, {42, 300}, {1<<64 - 1, 1<<63 - 1}} {
		got, want := http.Header{}, http.Header{}
		setVerifyHeaders(got, c.version, c.maxAge)
		want.Set("ETag", etag(c.version))
		want.Set("Cache-Control", "private, max-age="+strconv.FormatInt(c.maxAge, 10))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("setVerifyHeaders(%d, %d) = %v, want %v", c.version, c.maxAge, got, want)
		}
		got.Add("Cache-Control", "x") // must not write into the shared array
		if got.Get("ETag") != want.Get("ETag") {
			t.Fatal("Add on one header changed another")
		}
		got.Del("ETag")
		if got.Get("ETag") != "" {
			t.Fatal("Del(ETag) left the ETag")
		}
	}
}
