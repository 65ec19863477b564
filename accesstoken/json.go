package accesstoken

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A minimal, strict RFC 8259 JSON scanner for the two small objects of a JWS
// (header and claims). It never allocates unless a string contains escapes,
// and rejects everything encoding/json would reject plus lone surrogates and
// invalid UTF-8.

const maxDepth = 32

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string at s.i (which must be '"') and returns its raw content
// between the quotes and whether it contains escapes.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	if !s.consume('"') {
		return nil, false, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(raw) {
				return nil, false, false
			}
			return raw, esc, true
		case c == '\\':
			esc = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return nil, false, false
				}
				r, ok := s.hex4At(s.i + 1)
				if !ok {
					return nil, false, false
				}
				s.i += 5
				// Surrogates must come as a high-low pair.
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || s.i+6 > len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
						return nil, false, false
					}
					r2, ok := s.hex4At(s.i + 2)
					if !ok || r2 < 0xdc00 || r2 > 0xdfff {
						return nil, false, false
					}
					s.i += 6
				}
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			if c >= 0x80 {
				ascii = false
			}
			s.i++
		}
	}
	return nil, false, false
}

func (s *scanner) hex4At(i int) (rune, bool) {
	var r rune
	for _, h := range s.b[i : i+4] {
		d := unhex(h)
		if d < 0 {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// unescape appends the decoded form of a raw string (already validated by
// str) to dst. It reports false for lone surrogates.
func unescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		i++
		switch raw[i] {
		case '"', '\\', '/':
			dst = append(dst, raw[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+7 > len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
					return nil, false
				}
				r2 := hex4(raw[i+3:])
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, false
				}
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
		}
		i++
	}
	return dst, true
}

func hex4(b []byte) rune {
	return rune(unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3]))
}

// name reads a member name and the following colon, returning the decoded
// name. buf is scratch space for names with escapes.
func (s *scanner) name(buf []byte) (name, raw []byte, ok bool) {
	raw, esc, ok := s.str()
	if !ok {
		return nil, nil, false
	}
	name = raw
	if esc {
		if name, ok = unescape(buf[:0], raw); !ok {
			return nil, nil, false
		}
	}
	s.ws()
	if !s.consume(':') {
		return nil, nil, false
	}
	s.ws()
	return name, raw, true
}

// stringValue reads a string value and returns it decoded.
func (s *scanner) stringValue(buf []byte) ([]byte, bool) {
	raw, esc, ok := s.str()
	if !ok {
		return nil, false
	}
	if !esc {
		return raw, true
	}
	return unescape(buf[:0], raw)
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	s.consume('-')
	if s.consume('0') {
	} else if s.digits() == 0 {
		return nil, false
	}
	if s.consume('.') && s.digits() == 0 {
		return nil, false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if !s.consume('+') {
			s.consume('-')
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skip validates and skips any JSON value.
func (s *scanner) skip(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '{':
		if depth >= maxDepth {
			return false
		}
		s.i++
		s.ws()
		if s.consume('}') {
			return true
		}
		for {
			s.ws()
			if _, _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if !s.consume(':') {
				return false
			}
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.consume('}') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case c == '[':
		if depth >= maxDepth {
			return false
		}
		s.i++
		s.ws()
		if s.consume(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.consume(']') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case c == '-' || ('0' <= c && c <= '9'):
		_, ok := s.number()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// maxNumericDate is 9999-12-31T23:59:59Z.
const maxNumericDate = 253402300799

// numericDate parses a NumericDate (RFC 7519: seconds since the epoch,
// possibly fractional) into seconds and nanoseconds.
func numericDate(num []byte) (sec, nsec int64, ok bool) {
	if len(num) == 0 {
		return 0, 0, false
	}
	if len(num) <= 12 {
		var v int64
		integer := true
		for _, c := range num {
			if c < '0' || c > '9' {
				integer = false
				break
			}
			v = v*10 + int64(c-'0')
		}
		if integer {
			return v, 0, v <= maxNumericDate
		}
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || f < 0 || f > maxNumericDate || math.IsNaN(f) {
		return 0, 0, false
	}
	whole := math.Floor(f)
	return int64(whole), int64((f - whole) * 1e9), true
}

// appendString appends s as a JSON string. It reports false if s is not
// valid UTF-8.
func appendString(dst []byte, s string) ([]byte, bool) {
	const hexdigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, false
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}
