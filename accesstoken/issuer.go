package accesstoken

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"time"
)

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Keys supplies the signing key: a *Keyring (the usual choice) or a
	// *StaticKeys. Required.
	Keys SigningKeys
	// Issuer and Audience fill Claims.Issuer and Claims.Audience when those
	// are empty. Issuer is required.
	Issuer   string
	Audience string
	// TTL fills ExpiresAt (as IssuedAt+TTL) when it is zero. Default 10m.
	TTL time.Duration
	// Now fills IssuedAt when it is zero. Default time.Now.
	Now func() time.Time
}

// Issuer signs access tokens with the active key of its key source.
// It is safe for concurrent use.
//
// Issuance is deterministic: the same Claims and the same signing key give
// byte-identical tokens (Ed25519, RS256 and HS256 signatures are
// deterministic, and ES256 uses RFC 6979 deterministic nonces). The only inputs not taken
// from Claims are the defaults for empty fields (Issuer, Audience, and
// IssuedAt/ExpiresAt from the clock); callers that need identical tokens
// must set IssuedAt and ExpiresAt themselves.
type Issuer struct {
	keys     SigningKeys
	iss, aud string
	ttl      time.Duration
	now      func() time.Time
}

// NewIssuer returns an Issuer.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.Keys == nil {
		return nil, errors.New("accesstoken: IssuerConfig.Keys is required")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("accesstoken: IssuerConfig.Issuer is required")
	}
	i := &Issuer{keys: cfg.Keys, iss: cfg.Issuer, aud: cfg.Audience, ttl: cfg.TTL, now: cfg.Now}
	if i.ttl <= 0 {
		i.ttl = 10 * time.Minute
	}
	if i.now == nil {
		i.now = time.Now
	}
	return i, nil
}

// Issue returns a signed access token for c. Empty Issuer and Audience
// are filled from the configuration, a zero IssuedAt from the clock and a
// zero ExpiresAt as IssuedAt+TTL. Subject and Audience must end up
// non-empty, ExpiresAt must be after IssuedAt, string claims must be valid
// UTF-8 and Extra must pass CheckExtraClaims.
func (i *Issuer) Issue(ctx context.Context, c Claims) (string, error) {
	if c.Issuer == "" {
		c.Issuer = i.iss
	}
	if c.Audience == "" {
		c.Audience = i.aud
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = i.now()
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.IssuedAt.Add(i.ttl)
	}
	switch {
	case c.Subject == "":
		return "", wrap(ErrBadClaims, "subject is empty")
	case c.Audience == "":
		return "", wrap(ErrBadClaims, "audience is empty")
	case c.ExpiresAt.Unix() <= c.IssuedAt.Unix():
		return "", wrap(ErrBadClaims, "expiry not after issue time")
	case c.IssuedAt.Unix() < 0:
		return "", wrap(ErrBadClaims, "issue time before 1970")
	}
	k, err := i.keys.SigningKey(ctx)
	if err != nil {
		return "", err
	}
	return sign(k, &c)
}

// sign builds and signs the compact JWS for c with k.
func sign(k *Key, c *Claims) (string, error) {
	if !k.CanSign() {
		return "", ErrNoSigningKey
	}
	var pbuf [512]byte
	payload, err := appendClaims(pbuf[:0], c)
	if err != nil {
		return "", err
	}
	out := make([]byte, 0, len(k.header)+1+b64.EncodedLen(len(payload))+1+86)
	out = append(out, k.header...)
	out = append(out, '.')
	out = b64.AppendEncode(out, payload)
	sig, err := k.sign(out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = b64.AppendEncode(out, sig)
	return string(out), nil
}

// sign signs msg with k's private key in JWS form.
func (k *Key) sign(msg []byte) ([]byte, error) {
	switch k.alg {
	case EdDSA:
		return ed25519.Sign(k.edPriv, msg), nil
	case HS256:
		m := hmac.New(sha256.New, k.secret)
		m.Write(msg)
		return m.Sum(nil), nil
	case ES256:
		digest := sha256.Sum256(msg)
		// A nil rand gives a deterministic RFC 6979 signature.
		der, err := k.ecPriv.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			return nil, errors.New("accesstoken: ES256 signing failed")
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
			return nil, errors.New("accesstoken: ES256 signing failed")
		}
		sig := make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
		return sig, nil
	case RS256:
		digest := sha256.Sum256(msg)
		sig, err := rsa.SignPKCS1v15(nil, k.rsaPriv, crypto.SHA256, digest[:])
		if err != nil {
			return nil, errors.New("accesstoken: RS256 signing failed")
		}
		return sig, nil
	}
	return nil, ErrNoSigningKey
}
