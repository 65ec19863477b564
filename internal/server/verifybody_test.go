package server

import (
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// decodeBothWays decodes body with the hand-written decoder and with
// encoding/json (as readJSON does). Wherever the hand-written one accepts
// a body, encoding/json must accept it too and give the same request.
func decodeBothWays(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	var got verifyRequest
	fast = decodeVerifyRequest(body, &got)
	if !fast {
		return false
	}
	var want verifyRequest
	if err := decodeJSON(bytes.NewBuffer(body), &want); err != nil {
		t.Fatalf("the fast decoder accepts %q, encoding/json refuses it: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nfast decoder  %#v\nencoding/json %#v", body, got, want)
	}
	if (got.MaxAge == nil) != (want.MaxAge == nil) || (got.MaxAge != nil && *got.MaxAge != *want.MaxAge) {
		t.Fatalf("%q: max_age differs", body)
	}
	return true
}

// The bodies clients send take the fast path; their decoding is
// encoding/json's.
func TestDecodeVerifyRequestFastPath(t *testing.T) {
	for _, body := range []string{
		`{"session_token":"lts_abc"}`,
		`{"access_token":"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"}`,
		` { "session_token" : "lts_abc" , "ip" : "192.0.2.1", "user_agent":"Mozilla/5.0 (X11; Linux x86_64)" } ` + "\n",
		"{\t\"session_token\":\r\n\"lts_abc\"}",
		`{"session_token":"lts_abc","max_age":300,"acr_values":["urn:a","urn:b"]}`,
		`{"session_token":"lts_abc","max_age":0}`,
		`{"session_token":"lts_abc","max_age":-5}`,
		`{"session_token":"lts_abc","max_age":-0}`,
		`{"session_token":"lts_abc","max_age":999999999999999999}`,
		`{"session_token":"lts_abc","acr_values":[]}`,
		`{"session_token":"lts_abc","acr_values":[ "x" ]}`,
		`{"access_token":"a.b.c","dpop":{"proof":"p.q.r","htm":"GET","htu":"https://app.test/x"}}`,
		`{"access_token":"a.b.c","dpop":{}}`,
		`{"user_agent":"Ünïcødé ☃ agent"}`,
		`{"ip":""}`,
		`{}`,
		`{"session_token":"` + "\x7f" + `"}`,
	} {
		if !decodeBothWays(t, []byte(body)) {
			t.Errorf("%q did not take the fast path", body)
		}
	}
}

// Everything outside the fast path's subset goes to encoding/json, so
// that its acceptance, its result and its refusals stay exactly as they
// were.
func TestDecodeVerifyRequestLeavesTheRestToEncodingJSON(t *testing.T) {
	for _, body := range []string{
		// Accepted by encoding/json, with results the fast path does not
		// reproduce: case-insensitive names, escapes, null, repeats.
		`{"Session_Token":"lts_abc"}`,
		`{"session_token":"lts\u005fabc"}`,
		`{"session\u005ftoken":"lts_abc"}`,
		`{"session_token":"a\"b"}`,
		`{"session_token":null}`,
		`{"max_age":null}`,
		`{"acr_values":null}`,
		`{"acr_values":["a",null]}`,
		`{"dpop":null}`,
		`{"session_token":"a","session_token":"b"}`,
		`{"dpop":{"proof":"a"},"dpop":{"htm":"b"}}`,
		`{"dpop":{"proof":"a","proof":"b"}}`,
		`{"user_agent":"` + "\xff" + `"}`,
		`{"max_age":1000000000000000000}`,
		// Refused by encoding/json: the problem documents stay its own.
		`{"session_token":"lts_abc"`,
		`{"session_token":"lts_abc"} {}`,
		`{"session_token":"lts_abc"} x`,
		`{"session_token":"lts_abc",}`,
		`{"session_token":7}`,
		`{"session_token":"a` + "\n" + `b"}`,
		`{"max_age":"60"}`,
		`{"max_age":1.0}`,
		`{"max_age":1e3}`,
		`{"max_age":01}`,
		`{"max_age":-}`,
		`{"max_age":99999999999999999999}`,
		`{"acr_values":"urn:a"}`,
		`{"acr_values":[1]}`,
		`{"acr_values":["a",]}`,
		`{"admin":true}`,
		`{"dpop":{"proof":"a","jwk":{}}}`,
		`{"dpop":"proof"}`,
		`{"session_token":"a" "ip":"b"}`,
		`{"session_token":"a",,"ip":"b"}`,
		`{,}`,
		`{"a"}`,
		`{`,
		``,
		`null`,
		`[]`,
		"\ufeff{}",
	} {
		if decodeBothWays(t, []byte(body)) {
			t.Errorf("%q took the fast path", body)
		}
	}
}

// FuzzDecodeVerifyRequest: wherever the fast decoder accepts a body,
// encoding/json accepts it and decodes the same request.
//
//	go test -run '^$' -fuzz FuzzDecodeVerifyRequest -fuzztime 60s ./internal/server/
func FuzzDecodeVerifyRequest(f *testing.F) {
	for _, s := range []string{
		`{"session_token":"lts_abc"}`,
		`{"access_token":"a.b.c","dpop":{"proof":"p","htm":"POST","htu":"https://x.test/"}}`,
		`{"session_token":"x","ip":"::1","user_agent":"ua ☃","max_age":60,"acr_values":["a","b"]}`,
		` {"max_age":-0 , "acr_values":[ ]}` + "\r\n",
		`{"session_token":"a","session_token":"b"}`,
		`{"Session_token":"a\u0041"}`,
		`{"max_age":1e3}`,
		`{"dpop":{}}`,
		"{\"user_agent\":\"\xed\xa0\x80\"}",
		strings.Repeat(" ", 10) + `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeBothWays(t, body)
	})
}

// header is Header.Get for canonical keys.
func TestHeaderIsGet(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Add("Authorization", "Bearer a")
	h.Add("Authorization", "Bearer b")
	h["Cache-Control"] = []string{""}
	h["X-Empty"] = nil
	for _, k := range []string{"Content-Type", "Authorization", "Cache-Control", "X-Empty", "Etag"} {
		if got, want := header(h, k), h.Get(k); got != want {
			t.Errorf("header(%q) = %q, Get = %q", k, got, want)
		}
	}
}
