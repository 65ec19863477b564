package server

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/dpop"
)

// dpopRelay is a DPoP proof an app backend received and relays, with the
// method and URL of the request it came with (RFC 9449 §4).
type dpopRelay struct {
	Proof string `json:"proof"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
}

// errNoReplayCache: DPoP needs a replay cache every replica shares.
var errNoReplayCache = errorf(http.StatusBadRequest, CodeBadRequest, "this server's store keeps no DPoP replay cache; DPoP is not available")

// checkRelayed checks a relayed proof for its method and URL; ath binds
// it to accessToken if set, and jkt to a key if set.
func (s *Server) checkRelayed(ctx context.Context, d *dpopRelay, accessToken, jkt string) (dpop.Proof, error) {
	if d.Proof == "" || d.HTM == "" || d.HTU == "" {
		return dpop.Proof{}, badRequest("dpop needs proof, htm and htu")
	}
	if _, err := dpop.NormalizeURL(d.HTU); err != nil {
		return dpop.Proof{}, badRequest("dpop.htu must be an absolute http(s) URL")
	}
	return s.checkProof(ctx, d.Proof, dpop.Use{Method: d.HTM, URL: d.HTU, AccessToken: accessToken, JKT: jkt})
}

func (s *Server) checkProof(ctx context.Context, proof string, use dpop.Use) (dpop.Proof, error) {
	if s.dpop == nil {
		return dpop.Proof{}, errNoReplayCache
	}
	return s.dpop.Verify(ctx, proof, use)
}

// publicAccess verifies the access token of a call by its client (whoami,
// logout): an unbound token as Bearer; a DPoP-bound one only as
// "Authorization: DPoP" with one proof by its key for this method and
// latch's public URL + path, ath included (RFC 9449 §7) — checked before
// the session is touched, so a copied bound token reads and ends nothing.
func (s *Server) publicAccess(r *http.Request) (accesstoken.Claims, error) {
	scheme, tok, ok := "Bearer", "", false
	if tok, ok = bearer(r); !ok {
		scheme = "DPoP"
		if a := r.Header.Get("Authorization"); len(a) > 5 && strings.EqualFold(a[:5], "dpop ") {
			tok, ok = strings.TrimSpace(a[5:]), true
		}
	}
	if !ok {
		return accesstoken.Claims{}, errorf(http.StatusUnauthorized, CodeInvalidToken, "the Authorization header must be Bearer or DPoP <access token>")
	}
	c, err := s.verifyToken(r.Context(), tok)
	if err != nil {
		return c, err
	}
	if c.SessionID == "" {
		return c, latch.ErrInvalidToken
	}
	if err := dpop.CheckScheme(scheme, c.JKT); err != nil || scheme == "Bearer" {
		return c, err
	}
	switch proofs := r.Header.Values("DPoP"); {
	case c.JKT == "" || len(proofs) == 0:
		return c, dpop.ErrProofRequired
	case len(proofs) > 1:
		return c, dpop.ErrMalformedProof
	default:
		_, err = s.checkProof(r.Context(), proofs[0], dpop.Use{Method: r.Method, URL: s.publicURL(r) + r.URL.EscapedPath(), AccessToken: tok, JKT: c.JKT})
		return c, err
	}
}

// publicURL is latch's own origin as its clients see it, the base of the
// htu a client signs when it calls latch directly: Options.PublicURL, else
// the issuer when it is an http(s) URL (the stable issuer names the first
// address, shared by every replica), else the scheme and Host of the
// request.
func (s *Server) publicURL(r *http.Request) string {
	for _, u := range []string{s.opts.PublicURL, s.opts.Issuer} {
		if p, err := url.Parse(u); err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != "" {
			return p.Scheme + "://" + p.Host + strings.TrimSuffix(p.Path, "/")
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// dpopChallenge sets the RFC 9449 §7.1 challenge (and the nonce to use,
// §8) of a refused proof; it reports whether err was one.
func dpopChallenge(w http.ResponseWriter, err error) bool {
	e, ok := errors.AsType[*dpop.Error](err)
	if !ok {
		return false
	}
	w.Header().Set("WWW-Authenticate", dpop.Challenge(e))
	if e.Nonce != "" {
		w.Header().Set("DPoP-Nonce", e.Nonce)
	}
	return true
}

// nonceKey derives the DPoP nonce key from the KEK, which every replica of
// a deployment shares, and the issuer, which the store records, so that
// replicas agree on nonces without writing anything and another
// deployment's nonces are refused. Without a KEK (a store that keeps no
// keyring, hence one process) the key is random.
func nonceKey(kek []byte, issuer string) ([]byte, error) {
	if len(kek) == 0 {
		k := make([]byte, 32)
		rand.Read(k) // never fails (crypto/rand, Go 1.24)
		return k, nil
	}
	return hkdf.Key(sha256.New, kek, []byte(issuer), "latch dpop-nonce v1", 32)
}

// offerNonce sends the current DPoP nonce, when nonces are on, on the
// answer to a request that carried a proof (docs/protocol.md, section 5).
func (s *Server) offerNonce(w http.ResponseWriter) {
	if s.dpop != nil && len(s.dpop.NonceKey) > 0 {
		w.Header().Set("DPoP-Nonce", s.dpop.Nonce())
	}
}
