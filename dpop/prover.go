package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

// Prover makes DPoP proofs (RFC 9449 §4) with a private key: the client
// side, for a Go program that holds its own key and calls latch (or an API
// that takes latch's DPoP-bound tokens) directly. A Prover is safe for
// concurrent use; set Now, if at all, before its first use.
type Prover struct {
	alg    string
	header string // base64url of the protected header, with the public jwk
	jkt    string
	sign   func(signingInput []byte) ([]byte, error)
	// Now is the clock of iat; nil means time.Now.
	Now func() time.Time
}

// NewProver returns a Prover for key: an ed25519.PrivateKey (alg EdDSA), an
// ECDSA P-256 key (ES256) or an RSA key of 2048 to 8192 bits (RS256). Any
// crypto.Signer with such a public key works (a key in an HSM, say); the
// private key never leaves it.
func NewProver(key crypto.Signer) (*Prover, error) {
	p := &Prover{}
	var pub *accesstoken.Key
	var err error
	enc := base64.RawURLEncoding
	var jwk string
	switch k := key.Public().(type) {
	case ed25519.PublicKey:
		pub, err = accesstoken.NewEd25519Key("", k)
		p.alg, jwk = "EdDSA", `{"crv":"Ed25519","kty":"OKP","x":"`+enc.EncodeToString(k)+`"}`
		p.sign = func(in []byte) ([]byte, error) { return key.Sign(rand.Reader, in, crypto.Hash(0)) }
	case *ecdsa.PublicKey:
		pub, err = accesstoken.NewES256Key("", k)
		if err != nil {
			break
		}
		b, _ := k.Bytes() // 0x04 ‖ X ‖ Y, checked by NewES256Key
		p.alg, jwk = "ES256", `{"crv":"P-256","kty":"EC","x":"`+enc.EncodeToString(b[1:33])+`","y":"`+enc.EncodeToString(b[33:])+`"}`
		p.sign = func(in []byte) ([]byte, error) {
			d := sha256.Sum256(in)
			der, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				return nil, err
			}
			var rs struct{ R, S *big.Int }
			if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
				return nil, errors.New("dpop: the ECDSA signer returned a malformed signature")
			}
			return append(rs.R.FillBytes(make([]byte, 32, 64)), rs.S.FillBytes(make([]byte, 32))...), nil
		}
	case *rsa.PublicKey:
		pub, err = accesstoken.NewRS256Key("", k)
		p.alg, jwk = "RS256", `{"e":"`+enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())+`","kty":"RSA","n":"`+enc.EncodeToString(k.N.Bytes())+`"}`
		p.sign = func(in []byte) ([]byte, error) {
			d := sha256.Sum256(in)
			return key.Sign(rand.Reader, d[:], crypto.SHA256) // PKCS #1 v1.5
		}
	default:
		return nil, fmt.Errorf("dpop: NewProver wants an Ed25519, ECDSA P-256 or RSA key, not %T", k)
	}
	if err != nil {
		return nil, fmt.Errorf("dpop: NewProver: %w", err)
	}
	p.jkt = pub.Thumbprint()
	p.header = enc.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"` + p.alg + `","jwk":` + jwk + `}`))
	return p, nil
}

// JKT is the RFC 7638 thumbprint of the prover's key (base64url): the
// dpop_jkt that binds a session to it.
func (p *Prover) JKT() string { return p.jkt }

// Algorithm is the proofs' alg: EdDSA, ES256 or RS256.
func (p *Prover) Algorithm() string { return p.alg }

// ProofOptions are the optional claims of a proof.
type ProofOptions struct {
	// AccessToken, if set, is the token the proof accompanies: the proof
	// carries its hash in ath (RFC 9449 §4.2).
	AccessToken string
	// Nonce, if set, is the server's DPoP-Nonce (RFC 9449 §8).
	Nonce string
}

// Proof returns a fresh proof (a new random jti, iat now) for a request
// with method to rawURL, whose query and fragment are left out of htu.
func (p *Prover) Proof(method, rawURL string, opt ProofOptions) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("dpop: a proof needs an absolute http(s) URL")
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	c := struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		ATH   string `json:"ath,omitempty"`
		Nonce string `json:"nonce,omitempty"`
	}{JTI: rand.Text(), HTM: method, HTU: u.String(), IAT: now().Unix(), Nonce: opt.Nonce}
	if opt.AccessToken != "" {
		sum := sumStrings(opt.AccessToken)
		c.ATH = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	in := p.header + "." + base64.RawURLEncoding.EncodeToString(cb)
	sig, err := p.sign([]byte(in))
	if err != nil {
		return "", fmt.Errorf("dpop: signing the proof: %w", err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
