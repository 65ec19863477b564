package latch

import (
	"encoding/json"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store"
)

// Session is a read-only view of a session record as it was when the
// Manager returned it. It holds no secret: the session's tokens are not
// recoverable from it. A Session is safe for concurrent reads.
type Session struct {
	rec *store.Record
}

// ID returns the session's public handle ("ses_…"): safe to show and log.
func (s *Session) ID() string { return s.rec.ID.String() }

// Subject returns the user (or client) the session belongs to.
func (s *Session) Subject() string { return s.rec.Subject }

// Version increases on every write; pass it back to UpdateData as an
// If-Match precondition.
func (s *Session) Version() uint64 { return s.rec.Version }

// CreatedAt is when the session was created.
func (s *Session) CreatedAt() time.Time { return s.rec.CreatedAt }

// AuthTime is when the user last proved who they are (login or
// re-authenticated renewal).
func (s *Session) AuthTime() time.Time { return s.rec.AuthTime }

// ACR is the authentication context class the user authenticated with at
// AuthTime, or "" (RFC 9470).
func (s *Session) ACR() string { return s.rec.ACR }

// AMR lists the authentication methods used at AuthTime (RFC 8176, e.g.
// "pwd", "otp"), or nil. The returned slice is shared: do not modify it.
func (s *Session) AMR() []string { return s.rec.AMR }

// JKT is the RFC 7638 thumbprint (base64url) of the DPoP key the session
// is bound to, or "" for an unbound session.
func (s *Session) JKT() string {
	if s.rec.JKT == ([32]byte{}) {
		return ""
	}
	return dpop.EncodeThumbprint(s.rec.JKT)
}

// LastSeenAt is the last recorded activity, accurate to the touch interval.
func (s *Session) LastSeenAt() time.Time { return s.rec.LastSeenAt }

// IdleExpiresAt is when the session ends unless it is used before then.
// Pages can show it to warn the user before it runs out.
func (s *Session) IdleExpiresAt() time.Time { return s.rec.IdleExpiresAt }

// ExpiresAt is the absolute deadline; it never moves.
func (s *Session) ExpiresAt() time.Time { return s.rec.ExpiresAt }

// Deadline is the earlier of IdleExpiresAt and ExpiresAt.
func (s *Session) Deadline() time.Time { return s.rec.Deadline() }

// IP and UserAgent are the client metadata last recorded for the session.
func (s *Session) IP() string        { return s.rec.IP }
func (s *Session) UserAgent() string { return s.rec.UserAgent }

// Data returns the application data, a JSON object, or nil. The returned
// slice is shared: do not modify it.
func (s *Session) Data() json.RawMessage { return s.rec.Data }

// Claims returns the claims copied into access tokens, a JSON object, or nil.
// The returned slice is shared: do not modify it.
func (s *Session) Claims() json.RawMessage { return s.rec.Claims }

// Value returns the raw JSON of the top-level member key of Data, without
// decoding the whole object and without allocating.
func (s *Session) Value(key string) (json.RawMessage, bool) {
	v, ok := lookup(s.rec.Data, key)
	return json.RawMessage(v), ok
}

// StringValue returns the top-level string member key of Data. It
// allocates only the returned string unless the value contains escapes.
func (s *Session) StringValue(key string) (string, bool) {
	v, ok := lookup(s.rec.Data, key)
	if !ok || len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if end, escaped := scanString(v, 0); end == len(v) && !escaped {
		return string(v[1 : len(v)-1]), true
	}
	var out string
	if err := json.Unmarshal(v, &out); err != nil {
		return "", false
	}
	return out, true
}

// lookup finds the top-level member key in the JSON object obj, which the
// Manager validated when it was stored. Malformed input yields false.
func lookup(obj []byte, key string) ([]byte, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	// The last of duplicate members wins, as in encoding/json and
	// JSON.parse, so Value never disagrees with a client that decodes Data.
	var found []byte
	ok, escapedKeys := false, false
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		kEnd, escaped := scanString(obj, i)
		if kEnd < 0 {
			return nil, false
		}
		escapedKeys = escapedKeys || escaped
		match := !escaped && string(obj[i+1:kEnd-1]) == key
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		i = skipSpace(obj, i+1)
		vEnd := scanValue(obj, i)
		if vEnd < 0 {
			return nil, false
		}
		if match {
			found, ok = obj[i:vEnd], true
		}
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == '}' {
			if escapedKeys {
				// A key with escapes may spell key too: let encoding/json
				// decide (rare, and it allocates).
				var m map[string]json.RawMessage
				if json.Unmarshal(obj, &m) != nil {
					return nil, false
				}
				found, ok = m[key]
			}
			return found, ok
		}
		if i >= len(obj) || obj[i] != ',' {
			return nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] == '"'.
func scanString(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, false
}

// scanValue returns the index just past the JSON value starting at b[i].
func scanValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := scanString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// views hands out one *Session per record: a Session is a read-only view
// of a record, and records are shared and never changed once a store
// returns them, so callers that get the same record may share the view. A
// validation that finds its record's view allocates nothing (stores that
// keep decoded records, such as redisstore's cache, return the same record
// while it does not change), and the garbage collector's cycles are what
// an allocation per request costs on a small heap. A direct-mapped table:
// a collision only costs the allocation. It holds at most len(slots)
// records from being freed (a record holds the hash of its secret, never
// the secret).
type views struct {
	slots [1024]atomic.Pointer[Session]
}

// of returns a view of rec, shared with other callers of the same record.
func (v *views) of(rec *store.Record) *Session {
	if v == nil {
		return &Session{rec: rec}
	}
	slot := &v.slots[(uint64(uintptr(unsafe.Pointer(rec)))*0x9e3779b97f4a7c15)>>54]
	if s := slot.Load(); s != nil && s.rec == rec {
		return s
	}
	s := &Session{rec: rec}
	slot.Store(s)
	return s
}
