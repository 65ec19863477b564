package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/latch-sessions/latch"
)

// The session view of a verify answer is written by hand: encoding/json
// spent a third of a verify's CPU and 14 of its allocations on it (the
// five timestamps' MarshalJSON above all; BENCHMARKS.md, issue 15). The
// output is byte for byte what encode gives for sessionResponse{viewOf(s)}
// (TestAppendSessionMatchesEncodingJSON, FuzzAppendSession).

// appendSessionResponse appends {"session":…[,"csrf_token":…]} and a
// newline, as encode does. With csrf set, the token is a fresh one from
// mgr (base64url: nothing to escape).
func appendSessionResponse(buf *bytes.Buffer, s *latch.Session, mgr *latch.Manager, csrf bool) error {
	b := buf.AvailableBuffer()
	b = append(b, `{"session":{"id":`...)
	b = appendJSONString(b, s.ID())
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, s.Subject())
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, s.CreatedAt())
	b = append(b, `,"auth_time":`...)
	b = appendJSONTime(b, s.AuthTime())
	if acr := s.ACR(); acr != "" {
		b = append(b, `,"acr":`...)
		b = appendJSONString(b, acr)
	}
	if amr := s.AMR(); len(amr) > 0 {
		b = append(b, `,"amr":[`...)
		for i, v := range amr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
		b = append(b, ']')
	}
	b = append(b, `,"last_seen_at":`...)
	b = appendJSONTime(b, s.LastSeenAt())
	b = append(b, `,"idle_expires_at":`...)
	b = appendJSONTime(b, s.IdleExpiresAt())
	b = append(b, `,"expires_at":`...)
	b = appendJSONTime(b, s.ExpiresAt())
	b = append(b, `,"ip":`...)
	b = appendJSONString(b, s.IP())
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, s.UserAgent())
	b = append(b, `,"data":`...)
	buf.Write(b)
	// Raw JSON members are compacted, as encoding/json does with a
	// json.RawMessage; invalid JSON is an error, not a broken answer.
	if err := compactOrEmpty(buf, s.Data()); err != nil {
		return err
	}
	buf.WriteString(`,"claims":`)
	if err := compactOrEmpty(buf, s.Claims()); err != nil {
		return err
	}
	b = buf.AvailableBuffer()
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, s.Version(), 10)
	b = append(b, '}')
	if csrf {
		b = append(b, `,"csrf_token":"`...)
		var err error
		if b, err = mgr.AppendCSRFToken(b, s); err != nil {
			return err
		}
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	buf.Write(b)
	return nil
}

func compactOrEmpty(buf *bytes.Buffer, raw []byte) error {
	if len(raw) == 0 {
		raw = emptyObject
	}
	return json.Compact(buf, raw)
}

func appendJSONTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString quotes v as encoding/json does without HTML escaping.
// Printable ASCII other than `"` and `\` is copied; anything else (rare in
// IDs, subjects, addresses and user agents) goes through encoding/json.
func appendJSONString(b []byte, v string) []byte {
	for i := range len(v) {
		if c := v[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			var buf bytes.Buffer
			encode(&buf, v) // a string always encodes
			return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
		}
	}
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// writeSession answers with the session view of s and, if csrf is set, a
// fresh CSRF token for it. The body is built before any header is set, so
// a failure (no randomness) is still a clean problem document.
func (s *Server) writeSession(w http.ResponseWriter, status int, sess *latch.Session, csrf bool) error {
	buf := getBuffer()
	defer putBuffer(buf)
	if err := appendSessionResponse(buf, sess, s.mgr, csrf); err != nil {
		return err
	}
	writeBody(w, status, buf.Bytes())
	return nil
}

// setVerifyHeaders sets a verify answer's ETag and its Cache-Control
// ("private, max-age=N", docs/protocol.md, section 4) from one string and
// one two-element array instead of Header.Set's four allocations. Each
// value slice has capacity 1, so an Add elsewhere copies it.
func setVerifyHeaders(h http.Header, version uint64, maxAge int64) {
	var a [64]byte
	b := append(a[:0], '"')
	b = strconv.AppendUint(b, version, 10)
	b = append(b, '"')
	n := len(b)
	b = append(b, "private, max-age="...)
	b = strconv.AppendInt(b, maxAge, 10)
	v := string(b)
	vals := new([2]string)
	vals[0], vals[1] = v[:n], v[n:]
	h["Etag"] = vals[0:1:1]
	h["Cache-Control"] = vals[1:2:2]
}
