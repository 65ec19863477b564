package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"

	"github.com/latch-sessions/latch/accesstoken"
)

// A proof's header and claims are read by one of two decoders with the
// same result. The strict decoder is encoding/json's tokenizer with exact
// member names and no duplicates; it decides every proof. The fast
// decoder reads the form clients send — ASCII strings without escapes,
// each member once, known members with the expected types — without
// allocating, and gives up (ok = false) on anything else, which the strict
// decoder then reads. It never refuses, so it cannot be stricter or
// looser than the strict one; FuzzDecodersAgree checks that whatever it
// accepts, the strict decoder decodes to the same values.

// header is what latch reads of a proof's JOSE header.
type header struct {
	typ, alg []byte
	has      uint8 // hasTyp, hasAlg, hasJWK
	// The jwk: its members (fast decoder) or its JSON (strict decoder).
	jwk    accesstoken.PublicJWK
	jwkRaw []byte
}

const (
	hasTyp = 1 << iota
	hasAlg
	hasJWK
)

// key builds the jwk's verification key.
func (h *header) key() (*accesstoken.Key, error) {
	if h.jwkRaw != nil {
		return accesstoken.ParseJWK(h.jwkRaw)
	}
	return h.jwk.Key()
}

// claims are the proof's claims latch reads.
type claims struct {
	jti, htm, htu, ath, nonce []byte
	has                       uint8 // hasJTI, ...
	iatOK                     bool  // iat is a NumericDate latch accepts
	iatSec, iatNsec           int64
}

const (
	hasJTI = 1 << iota
	hasHTM
	hasHTU
	hasATH
	hasNonce
	hasIAT
)

// refusedHeaders are header parameters whose meaning latch does not
// implement (crit and its extensions) or that would name the key
// elsewhere than jwk.
var refusedHeaders = map[string]bool{"crit": true, "b64": true, "zip": true, "enc": true,
	"jku": true, "x5u": true, "x5c": true, "kid": true}

func decodeHeader(raw []byte, fast bool) (header, error) {
	var h header
	if fast && fastHeader(raw, &h) {
		return h, nil
	}
	return strictHeader(raw)
}

func decodeClaims(raw []byte, fast bool) (claims, error) {
	var c claims
	if fast && fastClaims(raw, &c) {
		return c, nil
	}
	return strictClaims(raw)
}

// strictHeader decodes a header with encoding/json.
func strictHeader(raw []byte) (header, error) {
	var h header
	m, err := strictObject(raw, refusedHeaders)
	if err != nil {
		return h, err
	}
	for name, dst := range map[string]*[]byte{"typ": &h.typ, "alg": &h.alg} {
		ok, err := str(m, name, dst)
		if err != nil {
			return h, refuse(ReasonMalformed)
		}
		if ok {
			h.has |= map[string]uint8{"typ": hasTyp, "alg": hasAlg}[name]
		}
	}
	if j, ok := m["jwk"]; ok {
		h.has |= hasJWK
		h.jwkRaw = j
	}
	return h, nil
}

// strictClaims decodes claims with encoding/json.
func strictClaims(raw []byte) (claims, error) {
	var c claims
	m, err := strictObject(raw, nil)
	if err != nil {
		return c, err
	}
	for _, f := range []struct {
		name string
		dst  *[]byte
		bit  uint8
	}{{"jti", &c.jti, hasJTI}, {"htm", &c.htm, hasHTM}, {"htu", &c.htu, hasHTU}, {"ath", &c.ath, hasATH}, {"nonce", &c.nonce, hasNonce}} {
		ok, err := str(m, f.name, f.dst)
		if err != nil {
			return c, refuse(ReasonMalformed)
		}
		if ok {
			c.has |= f.bit
		}
	}
	if rawIAT, ok := m["iat"]; ok {
		c.has |= hasIAT
		var iat float64
		if err := json.Unmarshal(rawIAT, &iat); err == nil && iat >= 0 && iat <= 1<<40 {
			sec, frac := math.Modf(iat)
			c.iatOK, c.iatSec, c.iatNsec = true, int64(sec), int64(frac*1e9)
		}
	}
	return c, nil
}

// str reads member name of m, which must be a string if present, into
// dst; it reports whether it is present.
func str(m map[string]json.RawMessage, name string, dst *[]byte) (bool, error) {
	raw, ok := m[name]
	if !ok {
		return false, nil
	}
	var v string
	if len(raw) == 0 || raw[0] != '"' {
		return false, errors.New("not a string")
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, err
	}
	*dst = []byte(v)
	return true, nil
}

// strictObject decodes the JSON object raw into its members (names
// compared exactly, unlike encoding/json's field matching), refusing
// anything but one JSON object, duplicate members, and the members named
// in refused.
func strictObject(raw []byte, refused map[string]bool) (map[string]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, refuse(ReasonMalformed)
	}
	m := map[string]json.RawMessage{}
	for d.More() {
		t, err := d.Token()
		name, ok := t.(string)
		if _, dup := m[name]; err != nil || !ok || dup {
			return nil, refuse(ReasonMalformed)
		}
		if refused[name] {
			return nil, refuse(ReasonHeader)
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, refuse(ReasonMalformed)
		}
		m[name] = v
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return nil, refuse(ReasonMalformed)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, refuse(ReasonMalformed) // anything but whitespace after the object
	}
	return m, nil
}

// fastHeader decodes the common form of a header into h, or reports false.
func fastHeader(raw []byte, h *header) bool {
	p := fparser{b: raw}
	return p.object(func(name []byte) bool {
		switch string(name) {
		case "typ":
			return p.once(&h.has, hasTyp) && p.str(&h.typ)
		case "alg":
			return p.once(&h.has, hasAlg) && p.str(&h.alg)
		case "jwk":
			start := p.i
			if !p.once(&h.has, hasJWK) || !p.jwk(&h.jwk) {
				return false
			}
			return p.i-start <= maxJWKSize // ParseJWK's limit
		}
		if refusedHeaders[string(name)] {
			return false // the strict decoder refuses it, in member order
		}
		return p.skip(0)
	}) && p.end()
}

// maxJWKSize is accesstoken.ParseJWK's limit on a JWK's JSON.
const maxJWKSize = 1024

// fastClaims decodes the common form of claims into c, or reports false.
func fastClaims(raw []byte, c *claims) bool {
	p := fparser{b: raw}
	return p.object(func(name []byte) bool {
		switch string(name) {
		case "jti":
			return p.once(&c.has, hasJTI) && p.str(&c.jti)
		case "htm":
			return p.once(&c.has, hasHTM) && p.str(&c.htm)
		case "htu":
			return p.once(&c.has, hasHTU) && p.str(&c.htu)
		case "ath":
			return p.once(&c.has, hasATH) && p.str(&c.ath)
		case "nonce":
			return p.once(&c.has, hasNonce) && p.str(&c.nonce)
		case "iat":
			if !p.once(&c.has, hasIAT) {
				return false
			}
			sec, ok := p.integer()
			c.iatOK, c.iatSec = ok, sec
			return ok
		}
		return p.skip(0)
	}) && p.end()
}

// jwkFields are the member names encoding/json matches (case-insensitively)
// to accesstoken's JWK fields; the fast decoder skips only other names.
var jwkFields = []string{"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// jwk decodes a public JWK's members, or reports false (private members,
// duplicates, names encoding/json would fold onto a field, non-strings).
func (p *fparser) jwk(j *accesstoken.PublicJWK) bool {
	var seen uint16
	var v []byte
	return p.object(func(name []byte) bool {
		field := -1
		for i, f := range jwkFields {
			if foldEqual(name, f) {
				field = i
				break
			}
		}
		switch {
		case field < 0:
			return p.skip(0)
		case field > 8 || string(name) != jwkFields[field] || seen&(1<<field) != 0 || !p.str(&v):
			return false // private, folded, repeated or not a string
		}
		seen |= 1 << field
		switch field {
		case 0:
			j.Kty = constant(v, "OKP", "EC", "RSA")
		case 1:
			j.Crv = constant(v, "Ed25519", "P-256")
		case 2:
			j.X = string(v)
		case 3:
			j.Y = string(v)
		case 4:
			j.N = string(v)
		case 5:
			j.E = string(v)
		case 7:
			j.Alg = constant(v, "EdDSA", "Ed25519", "ES256", "RS256")
		case 8:
			j.Use = constant(v, "sig")
		}
		return true // kid (6) is ignored, as ParseJWK ignores it
	})
}

// foldEqual is ASCII case-insensitive equality (the fast decoder's names
// are ASCII, and encoding/json folds ASCII names so).
func foldEqual(name []byte, f string) bool {
	if len(name) != len(f) {
		return false
	}
	for i := range len(f) {
		if name[i]|0x20 != f[i] { // f is lower-case letters
			return false
		}
	}
	return true
}

// constant returns v as one of known without allocating, or as a copy.
func constant(v []byte, known ...string) string {
	for _, k := range known {
		if string(v) == k {
			return k
		}
	}
	return string(v)
}

// fparser reads the simple JSON the fast decoder accepts from b at i.
// Every method reports false for anything it does not handle, never for
// an error only.
type fparser struct {
	b []byte
	i int
}

func (p *fparser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *fparser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *fparser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// maxMembers is how many members an object the fast decoder reads may
// have: it compares each name with the ones before.
const maxMembers = 16

// object reads an object, calling member for each member with the
// parser at its value; a repeated name gives up.
func (p *fparser) object(member func(name []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	var names [maxMembers][]byte
	for n := 0; ; n++ {
		var name []byte
		if n == maxMembers || !p.str(&name) || !p.byte(':') {
			return false
		}
		for _, seen := range names[:n] {
			if string(seen) == string(name) {
				return false
			}
		}
		names[n] = name
		p.space()
		if !member(name) {
			return false
		}
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// once sets bit in has, reporting false if it was set (a duplicate).
func (p *fparser) once(has *uint8, bit uint8) bool {
	if *has&bit != 0 {
		return false
	}
	*has |= bit
	return true
}

// str reads a string of printable ASCII without escapes into dst (a
// slice of b).
func (p *fparser) str(dst *[]byte) bool {
	if !p.byte('"') {
		return false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			*dst = p.b[start:p.i]
			p.i++
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return false
		}
	}
	return false
}

// integer reads a non-negative integer of at most 13 digits (a NumericDate
// in whole seconds, up to 1<<40 as the strict decoder allows).
func (p *fparser) integer() (int64, bool) {
	start := p.i
	var v int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int64(p.b[p.i]-'0')
		p.i++
		if p.i-start > 13 {
			return 0, false
		}
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.b[start] == '0') || v > 1<<40 {
		return 0, false
	}
	// A fraction or exponent is left to the strict decoder.
	return v, p.i == len(p.b) || (p.b[p.i] != '.' && p.b[p.i] != 'e' && p.b[p.i] != 'E')
}

// skip reads a value of a member latch ignores: a string as str accepts,
// a number, true, false, null, or an array or object of them, nested at
// most four deep.
func (p *fparser) skip(depth int) bool {
	if p.i >= len(p.b) || depth > 4 {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		var s []byte
		return p.str(&s)
	case c == '{':
		return p.object(func([]byte) bool { return p.skip(depth + 1) })
	case c == '[':
		p.i++
		if p.byte(']') {
			return true
		}
		for {
			p.space()
			if !p.skip(depth + 1) {
				return false
			}
			if p.byte(']') {
				return true
			}
			if !p.byte(',') {
				return false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

func (p *fparser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// number reads a JSON number (RFC 8259 §6).
func (p *fparser) number() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
