package dpop

import (
	"errors"
	"strings"
)

// Problem codes (RFC 9449 §7.1 and §8) a server answers a refused proof with.
const (
	CodeInvalidProof = "invalid_dpop_proof"
	CodeUseNonce     = "use_dpop_nonce"
)

// Sentinels every [*Error] matches with errors.Is: ErrInvalidProof for
// every refusal, ErrUseNonce as well when the proof lacks the server's
// current nonce (the client should retry with [Error.Nonce]).
var (
	ErrInvalidProof = errors.New("dpop: invalid DPoP proof")
	ErrUseNonce     = errors.New("dpop: DPoP proof needs the server's nonce")
)

// Reason names the check a proof failed. Reasons are fixed strings: they
// never contain anything taken from the proof or a token.
type Reason string

// The reasons a proof or its use is refused.
const (
	ReasonMalformed     Reason = "malformed"       // not a compact JWS of strict JSON objects
	ReasonTooLarge      Reason = "too_large"       // longer than MaxProofSize
	ReasonType          Reason = "typ"             // typ is not dpop+jwt
	ReasonAlgNone       Reason = "alg_none"        // alg none
	ReasonAlgSymmetric  Reason = "alg_symmetric"   // an HMAC alg
	ReasonAlg           Reason = "alg"             // alg missing, unsupported, or not the jwk's algorithm
	ReasonHeader        Reason = "header"          // a header parameter latch does not accept (crit, ...)
	ReasonJWK           Reason = "jwk"             // jwk missing or not a usable public key
	ReasonPrivateKey    Reason = "private_key"     // jwk carries private key material
	ReasonSignature     Reason = "signature"       // the signature does not verify with jwk
	ReasonMissingClaim  Reason = "missing_claim"   // jti, htm, htu or iat absent
	ReasonMethod        Reason = "htm"             // htm is not the request's method
	ReasonURL           Reason = "htu"             // htu is not the request's URL
	ReasonStale         Reason = "iat_stale"       // iat older than the window
	ReasonFuture        Reason = "iat_future"      // iat later than now plus the skew
	ReasonReplay        Reason = "jti_replayed"    // the proof was seen before
	ReasonMissingATH    Reason = "ath_missing"     // an access token but no ath
	ReasonATH           Reason = "ath"             // ath is not the hash of the access token
	ReasonUnexpectedATH Reason = "ath_unexpected"  // ath without an access token
	ReasonKey           Reason = "key_mismatch"    // signed by a key other than the bound one
	ReasonBearer        Reason = "bound_as_bearer" // a DPoP-bound token sent with the Bearer scheme
	ReasonNonce         Reason = "nonce"           // nonce missing or not current (ErrUseNonce)
	ReasonMissingProof  Reason = "proof_missing"   // a bound session or token used without a proof
)

var descriptions = map[Reason]string{
	ReasonMalformed:     "the DPoP proof is not a well-formed JWS",
	ReasonTooLarge:      "the DPoP proof is too large",
	ReasonType:          "the DPoP proof typ is not dpop+jwt",
	ReasonAlgNone:       "alg none is never accepted",
	ReasonAlgSymmetric:  "a DPoP proof must use an asymmetric algorithm",
	ReasonAlg:           "the DPoP proof alg is not supported or does not match its key",
	ReasonHeader:        "the DPoP proof header has a parameter that is not accepted",
	ReasonJWK:           "the DPoP proof jwk is missing or not a supported public key",
	ReasonPrivateKey:    "the DPoP proof jwk contains private key material",
	ReasonSignature:     "the DPoP proof signature does not verify",
	ReasonMissingClaim:  "the DPoP proof lacks jti, htm, htu or iat",
	ReasonMethod:        "htm does not match the request method",
	ReasonURL:           "htu does not match the request URL",
	ReasonStale:         "the DPoP proof iat is too old",
	ReasonFuture:        "the DPoP proof iat is in the future",
	ReasonReplay:        "the DPoP proof was already used",
	ReasonMissingATH:    "the DPoP proof lacks ath for the access token",
	ReasonATH:           "ath does not match the access token",
	ReasonUnexpectedATH: "the DPoP proof has ath but no access token accompanies it",
	ReasonKey:           "the DPoP proof is not signed by the key the token is bound to",
	ReasonBearer:        "the token is DPoP-bound and must be sent with the DPoP scheme and a proof",
	ReasonNonce:         "the DPoP proof must carry the server's current nonce",
	ReasonMissingProof:  "a DPoP proof is required: the session is bound to a DPoP key",
}

// Error is a refused proof (or a refused use of a bound token). It matches
// ErrInvalidProof, and ErrUseNonce for ReasonNonce. A refusal changes
// nothing: in particular its jti is not recorded.
type Error struct {
	Reason Reason
	// Nonce is, for ReasonNonce, the nonce the client must use; a server
	// sends it in the DPoP-Nonce response header.
	Nonce string
}

func (e *Error) Error() string { return "dpop: " + e.Description() }

// Description is the fixed, human-readable explanation of the reason, for
// a problem document and error_description.
func (e *Error) Description() string { return descriptions[e.Reason] }

// Code is the problem code: CodeUseNonce for ReasonNonce, else
// CodeInvalidProof.
func (e *Error) Code() string {
	if e.Reason == ReasonNonce {
		return CodeUseNonce
	}
	return CodeInvalidProof
}

// Is reports whether target is ErrInvalidProof, or ErrUseNonce for
// ReasonNonce.
func (e *Error) Is(target error) bool {
	return target == ErrInvalidProof || (target == ErrUseNonce && e.Reason == ReasonNonce)
}

// refusals holds one preallocated *Error per reason (except nonces, which
// carry a value), so refusing costs no allocation.
var refusals = func() map[Reason]*Error {
	m := make(map[Reason]*Error, len(descriptions))
	for r := range descriptions {
		m[r] = &Error{Reason: r}
	}
	return m
}()

func refuse(r Reason) error { return refusals[r] }

// ErrProofRequired is the refusal of a DPoP-bound session or token used
// without any proof (ReasonMissingProof).
var ErrProofRequired error = refusals[ReasonMissingProof]

// ErrMalformedProof is the refusal of a proof that is not well-formed
// (ReasonMalformed), e.g. a request with more than one DPoP header.
var ErrMalformedProof error = refusals[ReasonMalformed]

// Algorithms lists the proof algorithms the verifier accepts, for the
// algs parameter of a challenge and dpop_signing_alg_values_supported:
// Ed25519 is RFC 9864's fully-specified name for EdDSA with Ed25519.
var Algorithms = []string{"EdDSA", "Ed25519", "ES256", "RS256"}

// Challenge returns the WWW-Authenticate value (RFC 9449 §7.1) for err: a
// DPoP challenge with error and error_description when err is an *Error,
// a bare DPoP challenge otherwise.
func Challenge(err error) string {
	var b strings.Builder
	b.WriteString(`DPoP algs="` + strings.Join(Algorithms, " ") + `"`)
	if e, ok := errors.AsType[*Error](err); ok {
		b.WriteString(`, error="` + e.Code() + `", error_description="` + e.Description() + `"`)
	}
	return b.String()
}
