// Package accesstoken issues and verifies latch's access tokens: short-lived
// JWS compact tokens in the RFC 9068 profile, signed with keys from a
// Keyring that every replica shares through the session store.
//
// Most users need three calls:
//
//	kr, err := accesstoken.OpenKeyring(ctx, accesstoken.KeyringConfig{Store: ks, KEK: kek})
//	iss, err := accesstoken.NewIssuer(accesstoken.IssuerConfig{Keys: kr, Issuer: "https://auth.example.com", Audience: "api"})
//	v, err := accesstoken.NewVerifier(accesstoken.VerifierConfig{Keys: kr, Issuer: "https://auth.example.com", Audience: "api"})
//
// then iss.Issue(ctx, claims) and v.Verify(ctx, token). A service that only
// verifies uses a remote JWKS (package jwkshttp) as its KeySet. The server
// calls Keyring.Maintain about once a minute on every replica and serves
// Keyring.JWKS with jwkshttp.Handler.
//
// A token is
//
//	base64url({"alg":"EdDSA","kid":"<RFC 7638 thumbprint>","typ":"at+jwt"}) "."
//	base64url({"iss":…,"sub":…,"aud":…,"exp":…,"iat":…[,"nbf":…][,"jti":…][,"sid":…][, extra claims]}) "."
//	base64url(signature)
//
// # Security model
//
// The verifier accepts a token only if all of the following hold, and
// reports the first failure as an error matching one sentinel (ErrTooLarge,
// ErrMalformed, ErrHeader, ErrType, ErrAlgorithm, ErrUnknownKey,
// ErrSignature, ErrMissingClaim, ErrIssuer, ErrAudience, ErrExpired,
// ErrNotYetValid, or the online hook's error). Errors never echo token or key
// material.
//
//   - It is at most MaxTokenSize (8 KiB) long and consists of exactly three
//     non-empty segments of canonical unpadded base64url (no padding, no
//     standard-alphabet characters, no line breaks, no stray low bits).
//   - Header and claims are strict UTF-8 JSON objects; duplicate members among
//     the parameters and claims latch reads (and among the other claims) are
//     refused, names are compared after unescaping (so "\u0061lg" is alg).
//   - The header carries no jwk, jku, x5u, x5c, x5t, x5t#S256, crit, b64, zip
//     or enc: keys come only from the configured KeySet, and no extension is
//     half-implemented. typ is at+jwt (or application/at+jwt, any case).
//   - kid is present, 1-128 printable ASCII characters without / \ ? # % "
//     or "..", and names a key of the KeySet.
//   - The algorithm is the key's. alg is only compared with it: "none" in any
//     case, an HMAC algorithm against an asymmetric key (the classic
//     algorithm-confusion attack), or any other mismatch is refused before
//     the signature is looked at. HS256 keys exist only when configured
//     explicitly with at least 32 bytes of secret, and never appear in JWKS.
//   - The signature verifies (Ed25519 per RFC 8032 as implemented by
//     crypto/ed25519; ES256 on P-256 only, as fixed-size r‖s; RS256 as
//     RSASSA-PKCS1-v1_5 with SHA-256, exactly the modulus length, with keys
//     of MinRSABits to MaxRSABits bits; HS256 compared in constant time).
//   - iss equals the configured issuer; aud (a string, or an array of strings
//     from other issuers) contains the configured audience; sub, exp and iat
//     are present; exp is after now (no leeway); nbf and iat are not later
//     than now plus the leeway (30 s by default).
//   - In online mode, the hook confirms the session named by sid is live.
//
// Keys live in a Keyring persisted through store.KeyStore, private keys
// sealed with AES-256-GCM under a key-encryption key that never reaches the
// store; see Keyring for the rotation timeline that keeps every token
// verifiable until its exp. The verifier's cache of verified tokens is keyed
// by the SHA-256 of the whole token, is bounded, forgets a token at its exp
// or as soon as its key leaves the key set, and runs the online hook on
// every hit, so caching never extends a token's life or hides a revocation.
//
// Issuance is deterministic for identical Claims and key (Ed25519, RS256
// and HS256 by construction, ES256 through RFC 6979 nonces), so a caller that derives
// claims from the same parent state gets byte-identical tokens.
//
// # Compatibility
//
// Tokens are plain JWS compact serializations that golang-jwt/jwt/v5,
// lestrrat-go/jwx and other JOSE libraries verify against the JWKS; tokens
// those libraries sign with the header above verify here. Verify accepts
// NumericDates with fractions and aud arrays, as other issuers produce them;
// Issue writes whole seconds and a single aud string.
package accesstoken
