// Package dpop verifies DPoP proofs (RFC 9449): the signed JWTs with which
// a client proves, on every use of a sender-constrained token, that it
// holds the private key the token is bound to.
//
//	v := &dpop.Verifier{Replay: st} // st: a store.Store that is a store.ReplayCache
//	p, err := v.Verify(ctx, proof, dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh", JKT: bound})
//
// The client side is a [Prover]: a private key that makes proofs.
//
//	pr, _ := dpop.NewProver(key) // ed25519.PrivateKey, *ecdsa.PrivateKey (P-256), *rsa.PrivateKey, any crypto.Signer
//	proof, _ := pr.Proof("POST", "https://latch.example/v1/refresh", dpop.ProofOptions{Nonce: nonce})
//
// # Cost
//
// Verifying a proof costs one signature verification, one replay-cache
// call and, for the JSON clients send, a handful of allocations
// (TestAllocs): the header and claims are read by a small decoder that
// hands anything unusual to the strict encoding/json one, and the two
// agree on everything the small one accepts (FuzzDecodersAgree).
//
// # Security model
//
// A proof is accepted only if every check of RFC 9449 §4.3 passes: a
// compact JWS of strict JSON (no duplicate members), typ exactly
// "dpop+jwt", an asymmetric alg (EdDSA, ES256 or RS256; never none or an
// HMAC; Ed25519 as a name for EdDSA) that is the algorithm of the public key in its jwk header (a jwk
// with any private member is refused), a signature by that key, htm equal
// to the request method, htu equal to the request URL without query and
// fragment (both compared after RFC 3986 syntax- and scheme-based
// normalisation), iat no older than the window and no later than the
// skew, ath equal to base64url(SHA-256(access token)) when a token
// accompanies the proof, the key's RFC 7638 thumbprint equal to the bound
// one when there is a binding, the server's current nonce when nonces are
// on — and, last, a jti the replay cache has not seen within the window.
// The replay cache is the store's, so it is shared by every replica; if it
// cannot answer, the proof is refused (the error matches
// store.ErrUnavailable, not ErrInvalidProof).
//
// Every refusal is an [*Error] naming its [Reason], and a refused proof
// changes nothing: the jti is recorded only once every other check passed.
// No error contains anything taken from the proof.
package dpop

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/store"
)

// Defaults of a [Verifier].
const (
	// DefaultWindow is how old a proof's iat may be.
	DefaultWindow = 60 * time.Second
	// DefaultSkew is how far in the future a proof's iat may be (client
	// clocks run fast).
	DefaultSkew = 5 * time.Second
	// MaxProofSize is the longest proof read, in bytes.
	MaxProofSize = 8 << 10
	// MaxJTILen bounds a proof's jti.
	MaxJTILen = 256
)

var b64 = base64.RawURLEncoding.Strict()

// Verifier checks DPoP proofs. Replay is required; the other fields have
// useful zero values. A Verifier must not be changed after first use and
// is then safe for concurrent use.
type Verifier struct {
	// Replay remembers the jti of every accepted proof for the window, for
	// every replica (usually the session store).
	Replay store.ReplayCache
	// Window is how old a proof's iat may be; 0 means DefaultWindow.
	Window time.Duration
	// Skew is how far in the future iat may be; 0 means DefaultSkew.
	Skew time.Duration
	// NonceKey, if set, turns server nonces on (RFC 9449 §8): a proof must
	// carry a nonce from [Verifier.Nonce], which every replica with the
	// same key accepts for one to two windows. Without one, or with an
	// old one, the refusal (ReasonNonce) carries the nonce to use.
	NonceKey []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	nonces atomic.Pointer[nonces] // the current window's, once computed
}

// Use is the request a proof must have been made for.
type Use struct {
	// Method and URL are the HTTP method and the absolute URL of the
	// request (or of the request the app backend received and relays).
	// Query and fragment of URL are ignored.
	Method, URL string
	// AccessToken is the access token the proof accompanies, or "" (for
	// refresh and session creation); when set the proof must carry its ath.
	AccessToken string
	// JKT is the RFC 7638 thumbprint (base64url) the token or session is
	// bound to, or "" to accept any key (binding a new session).
	JKT string
}

// Proof is an accepted proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
	JKT string
	// Key is the proof's public key.
	Key      *accesstoken.Key
	IssuedAt time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) window() time.Duration {
	if v.Window > 0 {
		return v.Window
	}
	return DefaultWindow
}

func (v *Verifier) skew() time.Duration {
	if v.Skew > 0 {
		return v.Skew
	}
	return DefaultSkew
}

// Verify checks proof for use (see the package documentation) and, if
// it is accepted, records its jti. A refusal is an [*Error].
func (v *Verifier) Verify(ctx context.Context, proof string, use Use) (Proof, error) {
	return v.verify(ctx, proof, use, true)
}

// verify is Verify with the fast decoder, or (for tests) without it.
func (v *Verifier) verify(ctx context.Context, proof string, use Use, fast bool) (Proof, error) {
	p, c, err := parse(proof, fast)
	if err != nil {
		return Proof{}, err
	}
	if string(c.htm) != use.Method {
		return Proof{}, refuse(ReasonMethod)
	}
	want, err := NormalizeURL(use.URL)
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: the request URL: %w", err)
	}
	if !sameURL(c.htu, want) {
		return Proof{}, refuse(ReasonURL)
	}
	now := v.now()
	if now.Sub(p.IssuedAt) > v.window() {
		return Proof{}, refuse(ReasonStale)
	}
	if p.IssuedAt.Sub(now) > v.skew() {
		return Proof{}, refuse(ReasonFuture)
	}
	switch {
	case use.AccessToken != "" && c.has&hasATH == 0:
		return Proof{}, refuse(ReasonMissingATH)
	case use.AccessToken != "":
		sum := sumStrings(use.AccessToken)
		var want [43]byte
		base64.RawURLEncoding.Encode(want[:], sum[:])
		if !hmac.Equal(c.ath, want[:]) {
			return Proof{}, refuse(ReasonATH)
		}
	case c.has&hasATH != 0:
		return Proof{}, refuse(ReasonUnexpectedATH)
	}
	if use.JKT != "" && !hmac.Equal([]byte(p.JKT), []byte(use.JKT)) {
		return Proof{}, refuse(ReasonKey)
	}
	if len(v.NonceKey) > 0 && (c.has&hasNonce == 0 || !v.validNonce(c.nonce, now)) {
		return Proof{}, &Error{Reason: ReasonNonce, Nonce: v.nonceAt(now)}
	}
	// Last, so that a refusal above records nothing. The key is a hash of
	// the thumbprint and the jti: jti is unique per key (RFC 9449 §11.1),
	// and a fixed-length key keeps arbitrary jti bytes out of the store.
	sum := sumStrings(p.JKT, "\x00", string(c.jti))
	var key [len(replayPrefix) + 43]byte
	copy(key[:], replayPrefix)
	base64.RawURLEncoding.Encode(key[len(replayPrefix):], sum[:])
	// The store judges until by its own (real) clock, so the entry is kept
	// for the whole acceptance window from now, not from iat: a proof is
	// refused as a replay for as long as any replica could accept it.
	fresh, err := v.Replay.Seen(ctx, string(key[:]), time.Now().Add(v.window()+v.skew()))
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: replay cache: %w", err)
	}
	if !fresh {
		return Proof{}, refuse(ReasonReplay)
	}
	return p, nil
}

const replayPrefix = "dpop:"

// sumStrings is SHA-256 of the concatenation of parts, without converting
// them to []byte (which allocates for strings over 32 bytes).
func sumStrings(parts ...string) [sha256.Size]byte {
	h := sha256.New()
	var chunk [256]byte
	for _, s := range parts {
		for len(s) > 0 {
			n := copy(chunk[:], s)
			h.Write(chunk[:n])
			s = s[n:]
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// parse checks the JWS layer and the claims' presence and types; it
// returns the proof with its key and iat, and the claims.
func parse(proof string, fast bool) (Proof, claims, error) {
	if len(proof) > MaxProofSize {
		return Proof{}, claims{}, refuse(ReasonTooLarge)
	}
	h64, rest, ok1 := strings.Cut(proof, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || h64 == "" || p64 == "" || s64 == "" || strings.Contains(s64, ".") {
		return Proof{}, claims{}, refuse(ReasonMalformed)
	}
	// One buffer: the proof as bytes (signing input and signature), then
	// the decoded header and claims, which the decoders slice.
	n := len(proof)
	buf := make([]byte, n+b64.DecodedLen(len(h64))+b64.DecodedLen(len(p64)))
	copy(buf, proof)
	signed, sig := buf[:len(h64)+1+len(p64)], buf[len(h64)+1+len(p64)+1:n]
	hn, err := b64.Decode(buf[n:], buf[:len(h64)])
	if err != nil {
		return Proof{}, claims{}, refuse(ReasonMalformed)
	}
	hdr := buf[n : n+hn]
	h, err := decodeHeader(hdr, fast)
	if err != nil {
		return Proof{}, claims{}, err
	}
	if h.has&hasTyp == 0 || string(h.typ) != "dpop+jwt" {
		return Proof{}, claims{}, refuse(ReasonType)
	}
	switch {
	case h.has&hasAlg == 0:
		return Proof{}, claims{}, refuse(ReasonAlg)
	case foldEqual(h.alg, "none"):
		return Proof{}, claims{}, refuse(ReasonAlgNone)
	case len(h.alg) >= 2 && foldEqual(h.alg[:2], "hs"):
		return Proof{}, claims{}, refuse(ReasonAlgSymmetric)
	}
	if h.has&hasJWK == 0 || (h.jwkRaw != nil && h.jwkRaw[0] != '{') {
		return Proof{}, claims{}, refuse(ReasonJWK)
	}
	k, err := h.key()
	switch {
	case errors.Is(err, accesstoken.ErrPrivateJWK):
		return Proof{}, claims{}, refuse(ReasonPrivateKey)
	case err != nil:
		return Proof{}, claims{}, refuse(ReasonJWK)
	}
	// Ed25519 is the fully-specified name of EdDSA with Ed25519 (RFC 9864),
	// which current clients (panva's dpop) send.
	if string(h.alg) != string(k.Algorithm()) && (string(h.alg) != "Ed25519" || k.Algorithm() != accesstoken.EdDSA) {
		return Proof{}, claims{}, refuse(ReasonAlg)
	}
	if err := k.VerifyDetached(signed, sig); err != nil {
		return Proof{}, claims{}, refuse(ReasonSignature)
	}
	pn, err := b64.Decode(buf[n+hn:], buf[len(h64)+1:len(signed)])
	if err != nil {
		return Proof{}, claims{}, refuse(ReasonMalformed)
	}
	c, err := decodeClaims(buf[n+hn:n+hn+pn], fast)
	if err != nil {
		return Proof{}, claims{}, err
	}
	const required = hasJTI | hasHTM | hasHTU | hasIAT
	if c.has&required != required || len(c.jti) == 0 {
		return Proof{}, claims{}, refuse(ReasonMissingClaim)
	}
	if len(c.jti) > MaxJTILen || !c.iatOK {
		return Proof{}, claims{}, refuse(ReasonMalformed)
	}
	return Proof{
		JKT:      k.ID(), // ParseJWK's kid is the RFC 7638 thumbprint
		Key:      k,
		IssuedAt: time.Unix(c.iatSec, c.iatNsec),
	}, c, nil
}

// NormalizeURL returns the form of an absolute http(s) URL that htu is
// compared in (RFC 9449 §4.3, RFC 3986 §6.2.2 and §6.2.3): scheme and host
// in lower case, the scheme's default port dropped, dot segments removed,
// percent-encoding normalised, an empty path as "/", and no query or
// fragment. A URL with user information is refused.
func NormalizeURL(raw string) (string, error) {
	if normal(raw) {
		return raw, nil // the common case, without url.Parse
	}
	return normalizeSlowly(raw)
}

// normalizeSlowly is NormalizeURL by url.Parse, for every URL.
func normalizeSlowly(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	// ResolveReference removes dot segments; re-escaping the decoded path
	// normalises percent-encoding (upper-case hex, unreserved decoded).
	u = u.ResolveReference(&url.URL{Path: u.Path})
	path := (&url.URL{Path: u.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return u.Scheme + "://" + host + path, nil
}

// sameURL reports whether htu normalises to want (a normalised URL).
func sameURL(htu []byte, want string) bool {
	if normal(htu) {
		return string(htu) == want
	}
	got, err := NormalizeURL(string(htu))
	return err == nil && got == want
}

// normal reports whether u is certainly its own NormalizeURL: http or
// https in lower case, a host of lower-case letters, digits, dots and
// hyphens, a port other than the scheme's default, and a non-empty path of
// unreserved characters and single slashes without dot segments, no query
// or fragment (FuzzNormal checks it against normalizeSlowly). It is false
// for many URLs that are normal too.
func normal[S string | []byte](u S) bool {
	var rest S
	switch {
	case len(u) > 8 && string(u[:8]) == "https://":
		rest = u[8:]
	case len(u) > 7 && string(u[:7]) == "http://":
		rest = u[7:]
	default:
		return false
	}
	https := len(u)-len(rest) == 8
	i := 0
	for i < len(rest) && (rest[i] >= 'a' && rest[i] <= 'z' || rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == '-') {
		i++
	}
	if i == 0 {
		return false
	}
	if i < len(rest) && rest[i] == ':' {
		p := i + 1
		for i++; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		}
		port := string(rest[p:i])
		if port == "" || port[0] == '0' || len(port) > 5 || (https && port == "443") || (!https && port == "80") {
			return false
		}
	}
	if i == len(rest) || rest[i] != '/' {
		return false
	}
	seg := i + 1 // start of the current path segment
	for i++; ; i++ {
		if i == len(rest) || rest[i] == '/' {
			if s := string(rest[seg:i]); (s == "" && i < len(rest)) || s == "." || s == ".." {
				return false // an empty segment (//) or a dot segment
			}
			if i == len(rest) {
				return true
			}
			seg = i + 1
			continue
		}
		switch c := rest[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
}

// Thumbprint decodes an RFC 7638 SHA-256 thumbprint in base64url (a
// dpop_jkt or cnf.jkt) into the bytes a store keeps.
func Thumbprint(jkt string) ([32]byte, error) {
	var t [32]byte
	b, err := b64.DecodeString(jkt)
	if err != nil || len(b) != len(t) {
		return t, errors.New("dpop: not a base64url SHA-256 thumbprint")
	}
	copy(t[:], b)
	return t, nil
}

// EncodeThumbprint is the inverse of [Thumbprint].
func EncodeThumbprint(t [32]byte) string { return base64.RawURLEncoding.EncodeToString(t[:]) }

// CheckScheme refuses a DPoP-bound token (boundJKT non-empty) presented
// with any authorization scheme but DPoP (RFC 9449 §7.1): a bound token
// sent as Bearer is a stolen token being tried without its key.
func CheckScheme(scheme, boundJKT string) error {
	if boundJKT != "" && !strings.EqualFold(scheme, "DPoP") {
		return refuse(ReasonBearer)
	}
	return nil
}

// Nonce returns the server nonce a proof should carry now. It is "" when
// nonces are off.
func (v *Verifier) Nonce() string {
	if len(v.NonceKey) == 0 {
		return ""
	}
	return v.nonceAt(v.now())
}

// A nonce is base64url(epoch ‖ HMAC-SHA256(NonceKey, epoch)[:16]), epoch
// the number of windows since the Unix epoch: stateless, so every replica
// with the key issues and accepts the same nonces, and one issued at the
// end of a window stays valid through the next.
func (v *Verifier) nonceAt(now time.Time) string { return v.noncesAt(now).cur }

// nonces are the nonces of one window and of the one before.
type nonces struct {
	epoch     uint64
	cur, prev string
}

// noncesAt returns the nonces of now's window, computing them once per
// window (the nonce key does not change after first use).
func (v *Verifier) noncesAt(now time.Time) *nonces {
	e := v.epoch(now)
	if n := v.nonces.Load(); n != nil && n.epoch == e {
		return n
	}
	n := &nonces{epoch: e, cur: v.nonceFor(e), prev: v.nonceFor(e - 1)}
	v.nonces.Store(n)
	return n
}

func (v *Verifier) epoch(now time.Time) uint64 {
	return uint64(now.Unix()) / uint64(max(1, v.window()/time.Second))
}

func (v *Verifier) nonceFor(epoch uint64) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], epoch)
	m := hmac.New(sha256.New, v.NonceKey)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (v *Verifier) validNonce(n []byte, now time.Time) bool {
	ns := v.noncesAt(now)
	return hmac.Equal(n, []byte(ns.cur)) || hmac.Equal(n, []byte(ns.prev))
}
