package accesstoken

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxTokenSize is the longest token the verifier reads, in bytes.
const MaxTokenSize = 8 << 10

// DefaultLeeway is the clock-skew allowance for nbf and iat.
const DefaultLeeway = 30 * time.Second

const (
	maxHeaderSeg  = 1024                 // encoded header segment
	maxPayloadLen = MaxTokenSize * 3 / 4 // decoded payload
)

var strict = base64.RawURLEncoding.Strict()

// tokenBuf holds a copy of the token (the signing input is read from it)
// and the decoded header and payload.
type tokenBuf struct {
	tok     [MaxTokenSize]byte
	payload [maxPayloadLen]byte
	hdr     [maxHeaderSeg * 3 / 4]byte
}

var bufPool = sync.Pool{New: func() any { return new(tokenBuf) }}

// b64url marks the bytes of unpadded base64url and the dot.
var b64url = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_." {
		t[c] = true
	}
	return t
}()

// forbiddenHeaders are the header parameters latch refuses: keys or key
// locations supplied by the token itself, and extensions it does not
// implement.
var forbiddenHeaders = func() map[string]error {
	m := map[string]error{}
	for _, n := range []string{"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64", "zip", "enc"} {
		m[n] = wrap(ErrHeader, n)
	}
	return m
}()

// header is the part of the JOSE header latch reads.
type header struct {
	alg, kid, typ []byte
	seen          uint8
}

const (
	hAlg = 1 << iota
	hKid
	hTyp
)

// compact is a split and partly decoded compact JWS.
type compact struct {
	buf     *tokenBuf
	signed  []byte // header.payload, the signing input
	payload []byte // encoded payload segment
	sig     []byte // encoded signature segment
	hdr     header
}

// parse splits token (already copied into buf), checks its alphabet and
// decodes and reads the header.
func (c *compact) parse(buf *tokenBuf, token string) error {
	if len(token) > MaxTokenSize {
		return ErrTooLarge
	}
	dot1, dot2 := -1, -1
	for i := 0; i < len(token); i++ {
		ch := token[i]
		if !b64url[ch] {
			return errAlphabet
		}
		if ch == '.' {
			switch {
			case dot1 < 0:
				dot1 = i
			case dot2 < 0:
				dot2 = i
			default:
				return errSegments
			}
		}
	}
	if dot2 < 0 {
		return errSegments
	}
	if dot1 == 0 || dot2 == dot1+1 || dot2 == len(token)-1 {
		return errEmptySeg
	}
	if dot1 > maxHeaderSeg {
		return errHeaderSize
	}
	c.buf = buf
	b := buf.tok[:len(token)]
	c.signed = b[:dot2]
	c.payload = b[dot1+1 : dot2]
	c.sig = b[dot2+1:]
	hn, err := strict.Decode(buf.hdr[:], b[:dot1])
	if err != nil {
		return errBase64
	}
	return c.hdr.parse(buf.hdr[:hn])
}

func (h *header) parse(b []byte) error {
	s := scanner{b: b}
	s.ws()
	if !s.consume('{') {
		return errJSON
	}
	s.ws()
	if s.consume('}') {
		return errNoAlg
	}
	var scratch [32]byte
	for {
		s.ws()
		name, _, ok := s.name(scratch[:0])
		if !ok {
			return errJSON
		}
		var bit uint8
		var dst *[]byte
		switch string(name) {
		case "alg":
			bit, dst = hAlg, &h.alg
		case "kid":
			bit, dst = hKid, &h.kid
		case "typ":
			bit, dst = hTyp, &h.typ
		default:
			if err, ok := forbiddenHeaders[string(name)]; ok {
				return err
			}
		}
		if bit != 0 {
			if h.seen&bit != 0 {
				return errDuplicate
			}
			h.seen |= bit
			if s.i >= len(s.b) || s.b[s.i] != '"' {
				return errClaimType
			}
			v, ok := s.stringValue(nil)
			if !ok {
				return errJSON
			}
			*dst = v
		} else if !s.skip(1) {
			return errJSON
		}
		s.ws()
		if s.consume('}') {
			break
		}
		if !s.consume(',') {
			return errJSON
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return errJSON
	}
	return nil
}

// checkAlg checks the header alg against the key's algorithm.
func (h *header) checkAlg(k *Key) error {
	if h.seen&hAlg == 0 {
		return errNoAlg
	}
	if string(h.alg) == string(k.alg) {
		return nil
	}
	if isNone(h.alg) {
		return errAlgNone
	}
	if k.alg != HS256 && len(h.alg) > 0 && (h.alg[0] == 'H' || h.alg[0] == 'h') {
		return errAlgHMAC
	}
	return errAlgKey
}

// verify checks the encoded signature seg over signed with k.
func (k *Key) verify(signed, seg []byte) error {
	var sig [MaxRSABits / 8]byte
	want := 64
	switch k.alg {
	case HS256:
		want = 32
	case RS256:
		want = k.rsaPub.Size() // exactly the modulus length (RFC 8017 8.2.2)
	}
	if len(seg) != b64.EncodedLen(want) {
		return errSigLen
	}
	if n, err := strict.Decode(sig[:], seg); err != nil || n != want {
		return errBase64
	}
	var ok bool
	switch k.alg {
	case RS256:
		digest := sha256.Sum256(signed)
		ok = rsa.VerifyPKCS1v15(k.rsaPub, crypto.SHA256, digest[:], sig[:want]) == nil
	case EdDSA:
		ok = ed25519.Verify(k.edPub, signed, sig[:64])
	case ES256:
		digest := sha256.Sum256(signed)
		var der [72]byte
		ok = ecdsa.VerifyASN1(k.ecPub, digest[:], rawToDER(der[:0], sig[:64]))
	case HS256:
		m := k.macs.Get().(*macState)
		m.h.Reset()
		m.h.Write(signed)
		ok = hmac.Equal(m.h.Sum(m.sum[:0]), sig[:32])
		k.macs.Put(m)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// rawToDER converts a JWS ECDSA signature (r ‖ s, 32 bytes each) to ASN.1.
func rawToDER(dst, sig []byte) []byte {
	integer := func(v []byte) []byte {
		for len(v) > 1 && v[0] == 0 {
			v = v[1:]
		}
		return v
	}
	r, s := integer(sig[:32]), integer(sig[32:])
	rl, sl := len(r), len(s)
	if r[0]&0x80 != 0 {
		rl++
	}
	if s[0]&0x80 != 0 {
		sl++
	}
	dst = append(dst, 0x30, byte(4+rl+sl), 0x02, byte(rl))
	if rl > len(r) {
		dst = append(dst, 0)
	}
	dst = append(dst, r...)
	dst = append(dst, 0x02, byte(sl))
	if sl > len(s) {
		dst = append(dst, 0)
	}
	return append(dst, s...)
}

// VerifySignature checks only the JWS layer of a compact token against
// key and returns the decoded payload: the strict compact form, a header
// whose alg is key's algorithm (never none), none of the header
// parameters latch refuses (ErrHeader), a kid equal to key's if one is
// present, and the signature. It checks neither typ nor any claim.
//
// Most users won't need this: it exists for test vectors and for
// protocols other than access tokens. Use a Verifier for access tokens.
func VerifySignature(token string, key *Key) ([]byte, error) {
	if len(token) > MaxTokenSize {
		return nil, ErrTooLarge
	}
	buf := bufPool.Get().(*tokenBuf)
	defer bufPool.Put(buf)
	copy(buf.tok[:], token)
	var c compact
	if err := c.parse(buf, token); err != nil {
		return nil, err
	}
	if c.hdr.seen&hKid != 0 && string(c.hdr.kid) != key.kid {
		return nil, errKidMatch
	}
	if err := c.hdr.checkAlg(key); err != nil {
		return nil, err
	}
	if err := key.verify(c.signed, c.sig); err != nil {
		return nil, err
	}
	p, err := strict.AppendDecode(nil, c.payload)
	if err != nil {
		return nil, errBase64
	}
	return p, nil
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Keys finds keys by kid: a *Keyring, a *StaticKeys, or a remote JWKS
	// (package jwkshttp). Required.
	Keys KeySet
	// Issuer and Audience are the iss and aud every token must carry.
	// Both are required; there is no way to skip these checks.
	Issuer   string
	Audience string
	// Leeway is the allowance for clock skew on nbf and iat (exp gets
	// none). Default DefaultLeeway; at most 5 minutes.
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Online, if set, is asked after every other check (on cache hits too)
	// whether the session the verified claims name (sid) is still live;
	// tokens without sid are then refused. A non-nil error rejects the
	// token and is returned wrapped; hooks should return ErrRevoked for a
	// dead session. With a latch Manager at hand, the hook is
	// Manager.ValidateAccess, which also refuses tokens issued before the
	// session was renewed. With a *Keyring as Keys, online mode also syncs
	// the keyring (Keyring.Sync) before every verification, so a key
	// revoked through another replica is refused at once; a failure to
	// read the stored keyring rejects the token.
	Online func(ctx context.Context, c Claims) error
	// CacheSize bounds the cache of verified tokens (entries). Zero means
	// DefaultCacheSize; a negative value disables the cache.
	CacheSize int
}

// DefaultCacheSize is the default number of verified tokens remembered.
const DefaultCacheSize = 10000

// Verifier verifies access tokens. It is safe for concurrent use.
//
// The algorithm comes from the key named by kid, never from the token. A
// token is accepted only if every check in the package documentation
// passes.
type Verifier struct {
	keys     KeySet
	iss, aud string
	leeway   time.Duration
	now      func() time.Time
	online   func(ctx context.Context, c Claims) error
	cache    *cache
}

// NewVerifier returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	switch {
	case cfg.Keys == nil:
		return nil, errors.New("accesstoken: VerifierConfig.Keys is required")
	case cfg.Issuer == "":
		return nil, errors.New("accesstoken: VerifierConfig.Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("accesstoken: VerifierConfig.Audience is required")
	case cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute:
		return nil, errors.New("accesstoken: VerifierConfig.Leeway must be between 0 and 5m")
	}
	v := &Verifier{keys: cfg.Keys, iss: cfg.Issuer, aud: cfg.Audience,
		leeway: cfg.Leeway, now: cfg.Now, online: cfg.Online}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case cfg.CacheSize == 0:
		v.cache = newCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		v.cache = newCache(cfg.CacheSize)
	}
	return v, nil
}

// Verify checks token and returns its claims. Errors match one of the
// package's sentinel errors (ErrMalformed, ErrSignature, ErrExpired, …) or,
// in online mode, wrap the hook's error.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenSize {
		return Claims{}, ErrTooLarge
	}
	if kr, ok := v.keys.(*Keyring); ok && v.online != nil {
		if err := kr.Sync(ctx); err != nil {
			return Claims{}, err
		}
	}
	buf := bufPool.Get().(*tokenBuf)
	defer bufPool.Put(buf)
	copy(buf.tok[:], token)
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256(buf.tok[:len(token)])
		if c, ok := v.cache.get(ctx, &sum, v); ok {
			if err := v.checkOnline(ctx, c); err != nil {
				return Claims{}, err
			}
			if c.Extra != nil {
				c.Extra = append([]byte(nil), c.Extra...)
			}
			c.AMR = slices.Clone(c.AMR)
			return c, nil
		}
	}
	c, k, err := v.verify(ctx, buf, token)
	if err != nil {
		return Claims{}, err
	}
	if err := v.checkOnline(ctx, c); err != nil {
		return Claims{}, err
	}
	if v.cache != nil {
		v.cache.put(&sum, c, k, v.now())
		if c.Extra != nil {
			c.Extra = append([]byte(nil), c.Extra...)
		}
		c.AMR = slices.Clone(c.AMR)
	}
	return c, nil
}

func (v *Verifier) checkOnline(ctx context.Context, c Claims) error {
	if v.online == nil {
		return nil
	}
	if c.SessionID == "" {
		return errNoSid
	}
	if err := v.online(ctx, c); err != nil {
		return fmt.Errorf("accesstoken: session check failed: %w", err)
	}
	return nil
}

func (v *Verifier) verify(ctx context.Context, buf *tokenBuf, token string) (Claims, *Key, error) {
	var c compact
	if err := c.parse(buf, token); err != nil {
		return Claims{}, nil, err
	}
	h := &c.hdr
	if h.seen&hAlg == 0 {
		return Claims{}, nil, errNoAlg
	}
	if isNone(h.alg) {
		return Claims{}, nil, errAlgNone
	}
	if h.seen&hTyp == 0 {
		return Claims{}, nil, errNoTyp
	}
	if !isATJWT(h.typ) {
		return Claims{}, nil, ErrType
	}
	if h.seen&hKid == 0 {
		return Claims{}, nil, errNoKid
	}
	if !validKid(h.kid) {
		return Claims{}, nil, errKidChars
	}
	k, err := v.key(ctx, h.kid)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return Claims{}, nil, err
		}
		return Claims{}, nil, fmt.Errorf("%w: key source: %w", ErrUnknownKey, err)
	}
	if err := h.checkAlg(k); err != nil {
		return Claims{}, nil, err
	}
	if err := k.verify(c.signed, c.sig); err != nil {
		return Claims{}, nil, err
	}
	p := buf.payload[:]
	n, err := strict.Decode(p, c.payload)
	if err != nil {
		return Claims{}, nil, errBase64
	}
	cl, err := v.claims(p[:n])
	return cl, k, err
}

// key looks kid up without converting it to a string for the key sets
// of this package.
func (v *Verifier) key(ctx context.Context, kid []byte) (*Key, error) {
	switch ks := v.keys.(type) {
	case *Keyring:
		if k, err := ks.lookupBytes(kid); err != errKidUnknown {
			return k, err
		}
	case *StaticKeys:
		if k, ok := ks.byKid[string(kid)]; ok {
			return k, nil
		}
		return nil, errKidUnknown
	}
	return v.keys.VerificationKey(ctx, string(kid))
}

func isATJWT(typ []byte) bool {
	t := string(typ)
	return strings.EqualFold(t, "at+jwt") || strings.EqualFold(t, "application/at+jwt")
}

const (
	cIss = 1 << iota
	cSub
	cAud
	cExp
	cNbf
	cIat
	cJti
	cSid
	cAuthTime
	cACR
	cAMR
	cCnf
)

// claims parses and checks the payload.
func (v *Verifier) claims(p []byte) (Claims, error) {
	var (
		c                  Claims
		seen               uint16
		issOK, audOK       bool
		sub, jti, sid, acr []byte
		jkt                []byte
		amr                []string
		exp, nbf, iat      time.Time
		authTime           time.Time
		extra              [maxExtraMembers][2]int // member spans
		extraNames         [maxExtraMembers][]byte
		nextra             int
		scratch            [64]byte
		s                  = scanner{b: p}
		errType, errFormat = errClaimType, errJSON
	)
	s.ws()
	if !s.consume('{') {
		return c, errFormat
	}
	s.ws()
	if !s.consume('}') {
		for {
			s.ws()
			start := s.i
			name, _, ok := s.name(scratch[:0])
			if !ok {
				return c, errFormat
			}
			var bit uint16
			switch string(name) {
			case "iss":
				bit = cIss
			case "sub":
				bit = cSub
			case "aud":
				bit = cAud
			case "exp":
				bit = cExp
			case "nbf":
				bit = cNbf
			case "iat":
				bit = cIat
			case "jti":
				bit = cJti
			case "sid":
				bit = cSid
			case "auth_time":
				bit = cAuthTime
			case "acr":
				bit = cACR
			case "amr":
				bit = cAMR
			case "cnf":
				bit = cCnf
			}
			if bit == 0 {
				for _, prev := range extraNames[:nextra] {
					if bytes.Equal(prev, name) {
						return c, errDuplicate
					}
				}
				if nextra == maxExtraMembers {
					return c, errTooMany
				}
				if len(name) > 0 && &name[0] == &scratch[0] {
					name = append([]byte(nil), name...)
				}
				extraNames[nextra] = name
				if !s.skip(1) {
					return c, errFormat
				}
				extra[nextra] = [2]int{start, s.i}
				nextra++
			} else {
				if seen&bit != 0 {
					return c, errDuplicate
				}
				seen |= bit
				if s.i >= len(p) {
					return c, errFormat
				}
				switch bit {
				case cIss, cSub, cJti, cSid, cACR:
					if p[s.i] != '"' {
						return c, errType
					}
					val, ok := s.stringValue(nil)
					if !ok {
						return c, errFormat
					}
					switch bit {
					case cIss:
						issOK = string(val) == v.iss
					case cSub:
						sub = val
					case cJti:
						jti = val
					case cSid:
						sid = val
					case cACR:
						acr = val
					}
				case cCnf:
					var err error
					if jkt, err = confirmation(&s); err != nil {
						return c, err
					}
				case cAMR:
					var err error
					if amr, err = stringArray(&s); err != nil {
						return c, err
					}
				case cAud:
					ok, err := v.audience(&s)
					if err != nil {
						return c, err
					}
					audOK = ok
				default:
					ch := p[s.i]
					if ch != '-' && (ch < '0' || ch > '9') {
						return c, errType
					}
					num, ok := s.number()
					if !ok {
						return c, errFormat
					}
					sec, nsec, ok := numericDate(num)
					if !ok {
						return c, errNumDate
					}
					t := time.Unix(sec, nsec)
					switch bit {
					case cExp:
						exp = t
					case cNbf:
						nbf = t
					case cIat:
						iat = t
					case cAuthTime:
						authTime = t
					}
				}
			}
			s.ws()
			if s.consume('}') {
				break
			}
			if !s.consume(',') {
				return c, errFormat
			}
		}
	}
	s.ws()
	if s.i != len(p) {
		return c, errFormat
	}
	switch {
	case seen&cIss == 0:
		return c, errNoIss
	case seen&cSub == 0:
		return c, errNoSub
	case seen&cAud == 0:
		return c, errNoAud
	case seen&cExp == 0:
		return c, errNoExp
	case seen&cIat == 0:
		return c, errNoIat
	case !issOK:
		return c, ErrIssuer
	case !audOK:
		return c, ErrAudience
	}
	now := v.now()
	if !now.Before(exp) {
		return c, ErrExpired
	}
	late := now.Add(v.leeway)
	if seen&cNbf != 0 && nbf.After(late) {
		return c, errNbf
	}
	if iat.After(late) {
		return c, errIat
	}
	c.Issuer, c.Audience = v.iss, v.aud
	c.Subject = string(sub)
	c.ExpiresAt, c.IssuedAt, c.NotBefore = exp, iat, nbf
	if jti != nil {
		c.ID = string(jti)
	}
	if sid != nil {
		c.SessionID = string(sid)
	}
	if seen&cAuthTime != 0 {
		c.AuthTime = authTime
	}
	if acr != nil {
		c.ACR = string(acr)
	}
	c.AMR = amr
	if jkt != nil {
		c.JKT = string(jkt)
	}
	if nextra > 0 {
		size := 1
		for _, sp := range extra[:nextra] {
			size += sp[1] - sp[0] + 1
		}
		x := make([]byte, 0, size)
		for i, sp := range extra[:nextra] {
			if i == 0 {
				x = append(x, '{')
			} else {
				x = append(x, ',')
			}
			x = append(x, p[sp[0]:sp[1]]...)
		}
		c.Extra = append(x, '}')
	}
	return c, nil
}

// stringArray reads an array of strings (amr); an empty array is nil.
// confirmation reads a cnf claim, which must be exactly {"jkt": string}
// with a non-empty thumbprint: a confirmation method latch does not check
// must not pass for an unbound token.
func confirmation(s *scanner) ([]byte, error) {
	var scratch [8]byte
	s.ws()
	if !s.consume('{') {
		return nil, errClaimType
	}
	s.ws()
	name, _, ok := s.name(scratch[:0])
	if !ok || string(name) != "jkt" {
		return nil, errCnf
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errClaimType
	}
	v, ok := s.stringValue(nil)
	if !ok {
		return nil, errJSON
	}
	s.ws()
	if !s.consume('}') || len(v) == 0 {
		return nil, errCnf
	}
	return v, nil
}

func stringArray(s *scanner) ([]string, error) {
	if !s.consume('[') {
		return nil, errClaimType
	}
	s.ws()
	if s.consume(']') {
		return nil, nil
	}
	var out []string
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, errClaimType
		}
		if len(out) == maxExtraMembers {
			return nil, errTooMany
		}
		val, ok := s.stringValue(nil)
		if !ok {
			return nil, errJSON
		}
		out = append(out, string(val))
		s.ws()
		if s.consume(']') {
			return out, nil
		}
		if !s.consume(',') {
			return nil, errJSON
		}
	}
}

// audience reads an aud value (a string or an array of strings) and
// reports whether it contains the configured audience.
func (v *Verifier) audience(s *scanner) (bool, error) {
	if s.b[s.i] == '"' {
		val, ok := s.stringValue(nil)
		if !ok {
			return false, errJSON
		}
		return string(val) == v.aud, nil
	}
	if !s.consume('[') {
		return false, errClaimType
	}
	found := false
	s.ws()
	if s.consume(']') {
		return false, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false, errClaimType
		}
		val, ok := s.stringValue(nil)
		if !ok {
			return false, errJSON
		}
		if string(val) == v.aud {
			found = true
		}
		s.ws()
		if s.consume(']') {
			return found, nil
		}
		if !s.consume(',') {
			return false, errJSON
		}
	}
}
