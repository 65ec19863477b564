package accesstoken

import (
	"bytes"
	"strconv"
	"time"
)

// Claims are the claims of a latch access token.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub
	Audience  string    // aud: a single audience, serialized as a string
	ExpiresAt time.Time // exp
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; the zero time omits it
	ID        string    // jti; "" omits it
	SessionID string    // sid; "" omits it
	// How the user authenticated (RFC 9068 §2.2.1, RFC 9470): auth_time,
	// acr and amr; the zero time, "" and nil omit them. Issue refuses an
	// AMR value or ACR that is not valid UTF-8.
	AuthTime time.Time // auth_time
	ACR      string    // acr
	AMR      []string  // amr
	// JKT is the RFC 7638 thumbprint (base64url) of the DPoP key the token
	// is bound to (RFC 9449 §6.1), serialized as cnf.jkt; "" for an
	// unbound token. A verifier reads a cnf with any other member as a
	// malformed token, never as an unbound one. A bound token is useless
	// without a DPoP proof by that key; checking the proof is the caller's
	// (package dpop).
	JKT string
	// Extra is a JSON object of additional claims, or nil. When issuing,
	// it must pass CheckExtraClaims. When verifying, it holds every member
	// of the token's claims other than iss sub aud exp nbf iat jti sid
	// auth_time acr amr cnf, in
	// token order (nil if there are none); tokens from other issuers may
	// therefore carry reserved names here.
	Extra []byte
}

// MaxExtraClaims is the largest Extra object Issue accepts, in bytes.
const MaxExtraClaims = 4 << 10

// ReservedClaims are the names CheckExtraClaims refuses in Extra: the
// registered JWT claims (RFC 7519), latch's sid, and claims whose meaning a
// resource server or OAuth/OIDC library interprets as protocol rather than
// application data (token binding, client identity, delegation, OIDC
// authentication details). An application that could set them could make
// a token look sender-constrained, issued to another client, or issued for a
// stronger authentication than happened.
//
// scope, roles, groups and entitlements (RFC 9068 §2.2.3 authorization
// attributes) are deliberately not reserved: they are exactly what an
// application is expected to put into its access tokens.
var ReservedClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", // RFC 7519
	"sid",                                              // latch session ID
	"typ", "cnf", "client_id", "azp", "act", "may_act", // RFC 9068, 7800, 8693
	"auth_time", "acr", "amr", "nonce", "at_hash", "c_hash", "s_hash", // OIDC
}

func reserved(name []byte) bool {
	for _, r := range ReservedClaims {
		if string(name) == r {
			return true
		}
	}
	return false
}

// CheckExtraClaims reports whether extra is acceptable as Claims.Extra: nil
// or empty, or a JSON object of at most MaxExtraClaims bytes and at most
// 64 members, without duplicate or reserved (ReservedClaims) member names
// and nested at most 32 deep. Errors are *ExtraClaimsError values matching
// ErrExtraClaims.
func CheckExtraClaims(extra []byte) error {
	_, err := compactExtra(nil, extra)
	return err
}

const maxExtraMembers = 64

// compactExtra checks extra and appends its members (without braces,
// whitespace outside strings removed) to dst.
func compactExtra(dst, extra []byte) ([]byte, error) {
	if len(extra) == 0 {
		return dst, nil
	}
	if len(extra) > MaxExtraClaims {
		return dst, &ExtraClaimsError{Reason: "larger than " + strconv.Itoa(MaxExtraClaims) + " bytes"}
	}
	s := scanner{b: extra}
	bad := func(reason string) ([]byte, error) { return dst, &ExtraClaimsError{Reason: reason} }
	s.ws()
	if !s.consume('{') {
		return bad("not a JSON object")
	}
	var names [maxExtraMembers][]byte
	n := 0
	var scratch [64]byte
	s.ws()
	if !s.consume('}') {
		for {
			s.ws()
			name, raw, ok := s.name(scratch[:0])
			if !ok {
				return bad("invalid JSON")
			}
			if reserved(name) {
				return dst, &ExtraClaimsError{Reason: "reserved claim name", Name: string(name)}
			}
			for _, prev := range names[:n] {
				if bytes.Equal(prev, name) {
					return dst, &ExtraClaimsError{Reason: "duplicate claim name", Name: string(name)}
				}
			}
			if n == maxExtraMembers {
				return bad("more than 64 members")
			}
			names[n] = append([]byte(nil), name...)
			n++
			start := s.i
			if !s.skip(1) {
				return bad("invalid JSON")
			}
			dst = append(dst, ',', '"')
			dst = append(dst, raw...)
			dst = append(dst, '"', ':')
			dst = appendCompact(dst, extra[start:s.i])
			s.ws()
			if s.consume('}') {
				break
			}
			if !s.consume(',') {
				return bad("invalid JSON")
			}
		}
	}
	s.ws()
	if s.i != len(extra) {
		return bad("trailing data after the object")
	}
	return dst, nil
}

// appendCompact appends a valid JSON value without insignificant whitespace.
func appendCompact(dst, v []byte) []byte {
	inStr, esc := false, false
	for _, c := range v {
		if inStr {
			dst = append(dst, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst
}

// appendClaims appends the JSON claims object of c; iss and aud have
// been filled in. It is deterministic: the same Claims give the same bytes.
func appendClaims(dst []byte, c *Claims) ([]byte, error) {
	var ok, all = true, true
	dst = append(dst, `{"iss":`...)
	dst, ok = appendString(dst, c.Issuer)
	all = all && ok
	dst = append(dst, `,"sub":`...)
	dst, ok = appendString(dst, c.Subject)
	all = all && ok
	dst = append(dst, `,"aud":`...)
	dst, ok = appendString(dst, c.Audience)
	all = all && ok
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, c.ExpiresAt.Unix(), 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, c.IssuedAt.Unix(), 10)
	if !c.NotBefore.IsZero() {
		dst = append(dst, `,"nbf":`...)
		dst = strconv.AppendInt(dst, c.NotBefore.Unix(), 10)
	}
	if c.ID != "" {
		dst = append(dst, `,"jti":`...)
		dst, ok = appendString(dst, c.ID)
		all = all && ok
	}
	if c.SessionID != "" {
		dst = append(dst, `,"sid":`...)
		dst, ok = appendString(dst, c.SessionID)
		all = all && ok
	}
	if !c.AuthTime.IsZero() {
		dst = append(dst, `,"auth_time":`...)
		dst = strconv.AppendInt(dst, c.AuthTime.Unix(), 10)
	}
	if c.ACR != "" {
		dst = append(dst, `,"acr":`...)
		dst, ok = appendString(dst, c.ACR)
		all = all && ok
	}
	if len(c.AMR) > 0 {
		dst = append(dst, `,"amr":[`...)
		for i, m := range c.AMR {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst, ok = appendString(dst, m)
			all = all && ok
		}
		dst = append(dst, ']')
	}
	if c.JKT != "" {
		dst = append(dst, `,"cnf":{"jkt":`...)
		dst, ok = appendString(dst, c.JKT)
		all = all && ok
		dst = append(dst, '}')
	}
	if !all {
		return dst, wrap(ErrBadClaims, "a string claim is not valid UTF-8")
	}
	dst, err := compactExtra(dst, c.Extra)
	if err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}
