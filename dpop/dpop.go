// Package dpop verifies DPoP proofs (RFC 9449): the signed JWTs with which
// a client proves, on every use of a sender-constrained token, that it
// holds the private key the token is bound to.
//
//	v := &dpop.Verifier{Replay: st} // st: a store.Store that is a store.ReplayCache
//	p, err := v.Verify(ctx, proof, dpop.Use{Method: "POST", URL: "https://latch.example/v1/refresh", JKT: bound})
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
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
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

// refusedHeaders are header parameters whose meaning latch does not
// implement (crit and its extensions) or that would name the key
// elsewhere than jwk.
var refusedHeaders = map[string]bool{"crit": true, "b64": true, "zip": true, "enc": true,
	"jku": true, "x5u": true, "x5c": true, "kid": true}

// claims are the proof's claims latch reads; nil means absent.
type claims struct {
	JTI, HTM, HTU, ATH, Nonce *string
}

// Verify checks proof for use (see the package documentation) and, if
// it is accepted, records its jti. A refusal is an [*Error].
func (v *Verifier) Verify(ctx context.Context, proof string, use Use) (Proof, error) {
	p, c, err := parse(proof)
	if err != nil {
		return Proof{}, err
	}
	if *c.HTM != use.Method {
		return Proof{}, refuse(ReasonMethod)
	}
	want, err := NormalizeURL(use.URL)
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: the request URL: %w", err)
	}
	if got, err := NormalizeURL(*c.HTU); err != nil || got != want {
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
	case use.AccessToken != "" && c.ATH == nil:
		return Proof{}, refuse(ReasonMissingATH)
	case use.AccessToken != "":
		sum := sha256.Sum256([]byte(use.AccessToken))
		if !hmac.Equal([]byte(*c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) {
			return Proof{}, refuse(ReasonATH)
		}
	case c.ATH != nil:
		return Proof{}, refuse(ReasonUnexpectedATH)
	}
	if use.JKT != "" && !hmac.Equal([]byte(p.JKT), []byte(use.JKT)) {
		return Proof{}, refuse(ReasonKey)
	}
	if len(v.NonceKey) > 0 && (c.Nonce == nil || !v.validNonce(*c.Nonce, now)) {
		return Proof{}, &Error{Reason: ReasonNonce, Nonce: v.nonceAt(now)}
	}
	// Last, so that a refusal above records nothing. The key is a hash of
	// the thumbprint and the jti: jti is unique per key (RFC 9449 §11.1),
	// and a fixed-length key keeps arbitrary jti bytes out of the store.
	h := sha256.New()
	h.Write([]byte(p.JKT))
	h.Write([]byte{0})
	h.Write([]byte(*c.JTI))
	key := "dpop:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	// The store judges until by its own (real) clock, so the entry is kept
	// for the whole acceptance window from now, not from iat: a proof is
	// refused as a replay for as long as any replica could accept it.
	fresh, err := v.Replay.Seen(ctx, key, time.Now().Add(v.window()+v.skew()))
	if err != nil {
		return Proof{}, fmt.Errorf("dpop: replay cache: %w", err)
	}
	if !fresh {
		return Proof{}, refuse(ReasonReplay)
	}
	return p, nil
}

// parse checks the JWS layer and the claims' presence and types; it
// returns the proof with its key and iat.
func parse(proof string) (Proof, *claims, error) {
	if len(proof) > MaxProofSize {
		return Proof{}, nil, refuse(ReasonTooLarge)
	}
	h64, rest, ok1 := strings.Cut(proof, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || h64 == "" || p64 == "" || s64 == "" || strings.Contains(s64, ".") {
		return Proof{}, nil, refuse(ReasonMalformed)
	}
	h, err := strictObject(h64, refusedHeaders)
	if err != nil {
		return Proof{}, nil, err
	}
	typ, err1 := str(h, "typ")
	alg, err2 := str(h, "alg")
	if err1 != nil || err2 != nil {
		return Proof{}, nil, refuse(ReasonMalformed)
	}
	if typ == nil || *typ != "dpop+jwt" {
		return Proof{}, nil, refuse(ReasonType)
	}
	switch {
	case alg == nil:
		return Proof{}, nil, refuse(ReasonAlg)
	case strings.EqualFold(*alg, "none"):
		return Proof{}, nil, refuse(ReasonAlgNone)
	case strings.HasPrefix(strings.ToUpper(*alg), "HS"):
		return Proof{}, nil, refuse(ReasonAlgSymmetric)
	}
	jwk, ok := h["jwk"]
	if !ok || len(jwk) == 0 || jwk[0] != '{' {
		return Proof{}, nil, refuse(ReasonJWK)
	}
	k, err := accesstoken.ParseJWK(jwk)
	switch {
	case errors.Is(err, accesstoken.ErrPrivateJWK):
		return Proof{}, nil, refuse(ReasonPrivateKey)
	case err != nil:
		return Proof{}, nil, refuse(ReasonJWK)
	}
	// Ed25519 is the fully-specified name of EdDSA with Ed25519 (RFC 9864),
	// which current clients (panva's dpop) send.
	if *alg != string(k.Algorithm()) && (*alg != "Ed25519" || k.Algorithm() != accesstoken.EdDSA) {
		return Proof{}, nil, refuse(ReasonAlg)
	}
	if err := k.VerifyDetached([]byte(proof[:len(h64)+1+len(p64)]), []byte(s64)); err != nil {
		return Proof{}, nil, refuse(ReasonSignature)
	}
	m, err := strictObject(p64, nil)
	if err != nil {
		return Proof{}, nil, err
	}
	var c claims
	for name, dst := range map[string]**string{"jti": &c.JTI, "htm": &c.HTM, "htu": &c.HTU, "ath": &c.ATH, "nonce": &c.Nonce} {
		if *dst, err = str(m, name); err != nil {
			return Proof{}, nil, refuse(ReasonMalformed)
		}
	}
	rawIAT, hasIAT := m["iat"]
	if c.JTI == nil || c.HTM == nil || c.HTU == nil || !hasIAT || *c.JTI == "" {
		return Proof{}, nil, refuse(ReasonMissingClaim)
	}
	if len(*c.JTI) > MaxJTILen {
		return Proof{}, nil, refuse(ReasonMalformed)
	}
	var iat float64
	if err := json.Unmarshal(rawIAT, &iat); err != nil || iat < 0 || iat > 1<<40 {
		return Proof{}, nil, refuse(ReasonMalformed)
	}
	sec, frac := math.Modf(iat)
	return Proof{
		JKT:      k.Thumbprint(),
		Key:      k,
		IssuedAt: time.Unix(int64(sec), int64(frac*1e9)),
	}, &c, nil
}

// str reads member name of m as a string; nil if absent.
func str(m map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	var v string
	if len(raw) == 0 || raw[0] != '"' {
		return nil, errors.New("not a string")
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// strictObject decodes the base64url JSON object seg into its members
// (names compared exactly, unlike encoding/json's field matching),
// refusing non-canonical base64url, anything but one JSON object,
// duplicate members, and the members named in refused.
func strictObject(seg string, refused map[string]bool) (map[string]json.RawMessage, error) {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return nil, refuse(ReasonMalformed)
	}
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
	if _, err := d.Token(); err == nil {
		return nil, refuse(ReasonMalformed) // trailing data
	}
	return m, nil
}

// NormalizeURL returns the form of an absolute http(s) URL that htu is
// compared in (RFC 9449 §4.3, RFC 3986 §6.2.2 and §6.2.3): scheme and host
// in lower case, the scheme's default port dropped, dot segments removed,
// percent-encoding normalised, an empty path as "/", and no query or
// fragment. A URL with user information is refused.
func NormalizeURL(raw string) (string, error) {
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
func (v *Verifier) nonceAt(now time.Time) string { return v.nonceFor(v.epoch(now)) }

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

func (v *Verifier) validNonce(n string, now time.Time) bool {
	epoch := v.epoch(now)
	return hmac.Equal([]byte(n), []byte(v.nonceFor(epoch))) ||
		hmac.Equal([]byte(n), []byte(v.nonceFor(epoch-1)))
}
