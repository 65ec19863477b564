package accesstoken

import (
	"errors"
	"strconv"
)

// Errors returned by the verifier, the issuer and the keyring. Match them
// with errors.Is. No error ever contains token or key material: details name
// the check that failed, never a value taken from the token.
var (
	// ErrMalformed: the token is not a well-formed compact JWS in latch's
	// strict profile (three non-empty segments of canonical unpadded
	// base64url, UTF-8 JSON objects without duplicate members, claims of the
	// right JSON types).
	ErrMalformed = errors.New("accesstoken: malformed token")
	// ErrTooLarge: the token is longer than MaxTokenSize.
	ErrTooLarge = errors.New("accesstoken: token too large")
	// ErrHeader: the header carries a parameter latch never accepts
	// (jwk, jku, x5u, x5c, x5t, x5t#S256, crit, b64, zip, enc).
	ErrHeader = errors.New("accesstoken: header parameter not accepted")
	// ErrType: the header typ is missing or is not at+jwt.
	ErrType = errors.New("accesstoken: token type is not at+jwt")
	// ErrAlgorithm: the header alg is missing, "none", or not the algorithm
	// of the key named by kid (this includes HMAC against an asymmetric key).
	ErrAlgorithm = errors.New("accesstoken: algorithm not accepted")
	// ErrUnknownKey: kid is missing, has characters outside the allowed set,
	// or names no key in the key set (including keys past retirement).
	ErrUnknownKey = errors.New("accesstoken: unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("accesstoken: invalid signature")
	// ErrMissingClaim: a required claim (iss, sub, aud, exp, iat) is absent.
	ErrMissingClaim = errors.New("accesstoken: required claim missing")
	// ErrExpired: exp is at or before now (no leeway is granted on exp).
	ErrExpired = errors.New("accesstoken: token expired")
	// ErrNotYetValid: nbf or iat is later than now plus the leeway.
	ErrNotYetValid = errors.New("accesstoken: token not yet valid")
	// ErrIssuer: iss is not the configured issuer.
	ErrIssuer = errors.New("accesstoken: wrong issuer")
	// ErrAudience: aud does not contain the configured audience.
	ErrAudience = errors.New("accesstoken: wrong audience")
	// ErrRevoked: for use by online-mode hooks (VerifierConfig.Online) to
	// report that the session named by sid is no longer live.
	ErrRevoked = errors.New("accesstoken: session revoked")

	// ErrWeakSecret: an HS256 secret shorter than MinHMACSecret bytes.
	ErrWeakSecret = errors.New("accesstoken: HS256 secret must be at least 32 random bytes " +
		"(generate one with: openssl rand -base64 32)")
	// ErrNoSigningKey: the key source has no key that may sign now.
	ErrNoSigningKey = errors.New("accesstoken: no active signing key")
	// ErrBadClaims: Issue was given Claims it cannot sign (missing subject
	// or expiry, invalid UTF-8, invalid Extra).
	ErrBadClaims = errors.New("accesstoken: invalid claims")
	// ErrExtraClaims: Claims.Extra was rejected; the concrete error is an
	// *ExtraClaimsError. It also matches ErrBadClaims.
	ErrExtraClaims = errors.New("accesstoken: invalid extra claims")
	// ErrKEK: a key-encryption key is missing, of the wrong size, or stored
	// in a file with unsafe permissions.
	ErrKEK = errors.New("accesstoken: invalid key-encryption key")
	// ErrKeyNotFound: Keyring.Revoke was given a kid the keyring does not
	// hold.
	ErrKeyNotFound = errors.New("accesstoken: no key with that ID in the keyring")
	// ErrPrivateJWK: ParseJWK was given a JWK with private or symmetric
	// key material.
	ErrPrivateJWK = errors.New("accesstoken: JWK holds private or symmetric key material")
	// ErrKeyring: the stored keyring could not be decoded or decrypted
	// (wrong KEK, corruption or tampering).
	ErrKeyring = errors.New("accesstoken: keyring unreadable")
)

// detail wraps a sentinel with a fixed explanation. Package-level values of
// it keep rejection paths free of allocations.
type detail struct {
	base error
	msg  string
}

func (e *detail) Error() string { return e.base.Error() + ": " + e.msg }
func (e *detail) Unwrap() error { return e.base }

func wrap(base error, msg string) error { return &detail{base, msg} }

var (
	errSegments   = wrap(ErrMalformed, "want three dot-separated segments")
	errEmptySeg   = wrap(ErrMalformed, "empty segment")
	errAlphabet   = wrap(ErrMalformed, "character outside unpadded base64url alphabet")
	errBase64     = wrap(ErrMalformed, "non-canonical base64url")
	errHeaderSize = wrap(ErrMalformed, "header too large")
	errJSON       = wrap(ErrMalformed, "invalid JSON")
	errDuplicate  = wrap(ErrMalformed, "duplicate JSON member")
	errClaimType  = wrap(ErrMalformed, "claim has the wrong JSON type")
	errNumDate    = wrap(ErrMalformed, "invalid NumericDate")
	errTooMany    = wrap(ErrMalformed, "too many claims")
	errCnf        = wrap(ErrMalformed, "cnf must be exactly {\"jkt\": thumbprint}")
	errSigLen     = wrap(ErrSignature, "wrong signature length")
	errNoAlg      = wrap(ErrAlgorithm, "alg missing")
	errAlgNone    = wrap(ErrAlgorithm, "alg none is never accepted")
	errAlgHMAC    = wrap(ErrAlgorithm, "HMAC algorithm with an asymmetric key")
	errAlgKey     = wrap(ErrAlgorithm, "alg does not match the key's algorithm")
	errNoKid      = wrap(ErrUnknownKey, "kid missing")
	errKidChars   = wrap(ErrUnknownKey, "kid has characters outside the allowed set")
	errKidUnknown = wrap(ErrUnknownKey, "no key with that kid")
	errKidMatch   = wrap(ErrUnknownKey, "kid does not name the given key")
	errNoTyp      = wrap(ErrType, "typ missing")
	errNoExp      = wrap(ErrMissingClaim, "exp")
	errNoIat      = wrap(ErrMissingClaim, "iat")
	errNoIss      = wrap(ErrMissingClaim, "iss")
	errNoAud      = wrap(ErrMissingClaim, "aud")
	errNoSub      = wrap(ErrMissingClaim, "sub")
	errNoSid      = wrap(ErrMissingClaim, "sid (required in online mode)")
	errNbf        = wrap(ErrNotYetValid, "nbf in the future")
	errIat        = wrap(ErrNotYetValid, "iat in the future")
)

// ExtraClaimsError explains why CheckExtraClaims refused an Extra object.
// Name is the offending member name when the problem is a reserved or
// duplicate name (claim names are chosen by the application, not secret);
// values never appear.
type ExtraClaimsError struct {
	Reason string
	Name   string
}

func (e *ExtraClaimsError) Error() string {
	s := "accesstoken: invalid extra claims: " + e.Reason
	if e.Name != "" {
		s += " " + strconv.Quote(e.Name)
	}
	return s
}

// Is reports whether target is ErrExtraClaims or ErrBadClaims.
func (e *ExtraClaimsError) Is(target error) bool {
	return target == ErrExtraClaims || target == ErrBadClaims
}
