package server

import (
	"unicode/utf8"
)

// verifyRequest is the body of POST /v1/sessions/verify.
type verifyRequest struct {
	SessionToken string `json:"session_token"`
	AccessToken  string `json:"access_token"`
	IP           string `json:"ip"`
	UserAgent    string `json:"user_agent"`
	// Step-up (RFC 9470): what the caller's action demands.
	MaxAge    *int64   `json:"max_age"`
	ACRValues []string `json:"acr_values"`
	// The proof that must accompany a DPoP-bound access token.
	DPoP *dpopRelay `json:"dpop"`
}

// decodeVerifyRequest decodes the verify bodies clients send, which
// encoding/json spent about a sixth of a verify's CPU on (BENCHMARKS.md,
// issue 15). It accepts only a strict subset of what encoding/json
// accepts into a verifyRequest, and then gives the same result
// (FuzzDecodeVerifyRequest): each member at most once, its name exactly as
// documented, strings without escapes or control characters and valid
// UTF-8, max_age an integer literal, no null, nothing after the object but
// whitespace. Anything else — including every body encoding/json refuses
// — reports false, and the caller decodes b with encoding/json, so
// refusals and their problem documents are exactly encoding/json's.
func decodeVerifyRequest(b []byte, req *verifyRequest) bool {
	p := vparser{b: b}
	if !p.object(func(name []byte) bool { return p.verifyMember(name, req) }) {
		return false
	}
	p.space()
	return p.i == len(p.b)
}

// Members of a verify body, as bits of vparser.seen: a repeated member is
// left to encoding/json (which keeps the last, and merges objects).
const (
	seenSessionToken = 1 << iota
	seenAccessToken
	seenIP
	seenUserAgent
	seenMaxAge
	seenACRValues
	seenDPoP
	seenProof
	seenHTM
	seenHTU
)

// vparser reads JSON from b at i, for decodeVerifyRequest.
type vparser struct {
	b    []byte
	i    int
	seen int
}

func (p *vparser) verifyMember(name []byte, req *verifyRequest) bool {
	switch string(name) {
	case "session_token":
		return p.once(seenSessionToken) && p.str(&req.SessionToken)
	case "access_token":
		return p.once(seenAccessToken) && p.str(&req.AccessToken)
	case "ip":
		return p.once(seenIP) && p.str(&req.IP)
	case "user_agent":
		return p.once(seenUserAgent) && p.str(&req.UserAgent)
	case "max_age":
		if !p.once(seenMaxAge) {
			return false
		}
		n, ok := p.int64()
		if ok {
			req.MaxAge = &n
		}
		return ok
	case "acr_values":
		return p.once(seenACRValues) && p.strings(&req.ACRValues)
	case "dpop":
		if !p.once(seenDPoP) {
			return false
		}
		d := new(dpopRelay)
		req.DPoP = d
		return p.object(func(name []byte) bool {
			switch string(name) {
			case "proof":
				return p.once(seenProof) && p.str(&d.Proof)
			case "htm":
				return p.once(seenHTM) && p.str(&d.HTM)
			case "htu":
				return p.once(seenHTU) && p.str(&d.HTU)
			}
			return false
		})
	}
	return false
}

func (p *vparser) once(bit int) bool {
	if p.seen&bit != 0 {
		return false
	}
	p.seen |= bit
	return true
}

// space skips JSON whitespace.
func (p *vparser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips whitespace and reports whether the next byte is c, consuming
// it if so.
func (p *vparser) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"name": value, …}, handing each name to member, which
// reads the value after the colon.
func (p *vparser) object(member func(name []byte) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	for {
		p.space()
		name, ok := p.raw()
		if !ok || !p.next(':') {
			return false
		}
		p.space()
		if !member(name) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// raw reads a string with nothing to unescape and returns its bytes: no
// backslash, no control character, valid UTF-8 (encoding/json would
// replace invalid bytes with U+FFFD).
func (p *vparser) raw() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (p *vparser) str(dst *string) bool {
	s, ok := p.raw()
	if ok {
		*dst = string(s)
	}
	return ok
}

// strings reads an array of strings; [] is an empty, non-nil slice, as
// encoding/json gives.
func (p *vparser) strings(dst *[]string) bool {
	if !p.next('[') {
		return false
	}
	out := []string{}
	if p.next(']') {
		*dst = out
		return true
	}
	for {
		p.space()
		var s string
		if !p.str(&s) {
			return false
		}
		out = append(out, s)
		if p.next(']') {
			*dst = out
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// int64 reads an integer literal as JSON writes it (-?(0|[1-9][0-9]*))
// of at most 18 digits, so it cannot overflow; a fraction or exponent is
// left to encoding/json, which refuses it for an int64.
func (p *vparser) int64() (int64, bool) {
	i, neg := p.i, false
	if i < len(p.b) && p.b[i] == '-' {
		neg = true
		i++
	}
	start := i
	var n int64
	for i < len(p.b) && p.b[i] >= '0' && p.b[i] <= '9' {
		n = n*10 + int64(p.b[i]-'0')
		i++
	}
	switch d := i - start; {
	case d == 0 || d > 18, d > 1 && p.b[start] == '0':
		return 0, false
	}
	if i < len(p.b) {
		switch p.b[i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	p.i = i
	if neg {
		n = -n
	}
	return n, true
}
