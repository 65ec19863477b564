package latchclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latch-sessions/latch/dpop"
)

// Sender-constrained sessions (DPoP, RFC 9449) and step-up (RFC 9470);
// docs/protocol.md, section 5.

// Errors of DPoP refusals, matched with errors.Is (an *Error with code
// invalid_dpop_proof or use_dpop_nonce).
var (
	// ErrInvalidDPoPProof: a DPoP-bound session or token was used without
	// a valid proof by its key, or a relayed proof was refused (every DPoP
	// refusal matches it, use_dpop_nonce too).
	ErrInvalidDPoPProof = errors.New("latchclient: invalid DPoP proof")
	// ErrUseDPoPNonce: latch wants its nonce in the proof (--dpop-nonce);
	// Error.DPoPNonce has it. Calls made with a Prover retry once by
	// themselves; a backend relaying its client's proof passes the nonce
	// and Error.Challenge on to the client.
	ErrUseDPoPNonce = errors.New("latchclient: the DPoP proof needs latch's nonce")
)

// DPoPProof is a proof the app backend received from its client (the
// DPoP request header) and relays to latch, with the method and absolute
// URL of the request it came with.
type DPoPProof struct {
	Proof  string `json:"proof"`
	Method string `json:"htm"`
	URL    string `json:"htu"`
}

// InsufficientAuthError is a step-up refusal (RFC 9470): the session is
// valid, but its sign-in is older than MaxAge or its ACR not one of
// ACRValues. It matches ErrInsufficientAuth; errors.As reads what the
// action demands, e.g. to ask the user to sign in again with max_age.
type InsufficientAuthError struct {
	MaxAge    time.Duration // 0: no age was demanded
	ACRValues []string      // nil: no ACR was demanded
	err       *Error
}

func (e *InsufficientAuthError) Error() string { return e.err.Error() }

// Unwrap returns the problem document's *Error.
func (e *InsufficientAuthError) Unwrap() error { return e.err }

// insufficient is the typed error of a step-up refusal: what latch's
// challenge says the action demands, else what was asked.
func insufficient(e *Error, asked verifyRequirement) *InsufficientAuthError {
	ie := &InsufficientAuthError{err: e, ACRValues: asked.acrValues}
	if asked.maxAge > 0 {
		ie.MaxAge = time.Duration(asked.maxAge) * time.Second
	}
	params := authParams(e.Challenge)
	if v, ok := params["max_age"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			ie.MaxAge = time.Duration(n) * time.Second
		}
	}
	if v, ok := params["acr_values"]; ok {
		ie.ACRValues = strings.Fields(v)
	}
	return ie
}

// authParams reads the auth-params of a WWW-Authenticate challenge
// (RFC 9110 §11.2): name=token or name="quoted string".
func authParams(h string) map[string]string {
	m := map[string]string{}
	_, rest, _ := strings.Cut(h, " ") // the scheme
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(rest, ", ") {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			val, rest = b.String(), after[min(i+1, len(after)):]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
		}
		m[name] = val
	}
	return m
}

// Refreshed is the answer of Refresh: the new access token and the
// successor refresh token (the presented one is spent).
type Refreshed struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // "DPoP" for a bound session
	ExpiresIn    int    `json:"expires_in"`
	// DPoPNonce is latch's current nonce when it demands them: a backend
	// relaying a proof passes it on to the client for its next proof.
	DPoPNonce string `json:"-"`
}

// RefreshRequest is what Refresh sends. For a DPoP-bound session set one
// of DPoP (a relayed proof) or Prover (this program holds the key).
type RefreshRequest struct {
	RefreshToken string
	DPoP         *DPoPProof
	// Prover signs a proof for POST and latch's public URL + /v1/refresh
	// (Config.PublicURL), sent as the DPoP header; a use_dpop_nonce
	// refusal is retried once with latch's nonce.
	Prover *dpop.Prover
}

// Refresh rotates a refresh token (POST /v1/refresh). Refresh tokens are
// single-use: presenting a rotated one after the grace window revokes the
// session (ErrRevoked).
func (c *Client) Refresh(ctx context.Context, r RefreshRequest) (*Refreshed, error) {
	if r.DPoP != nil && r.Prover != nil {
		return nil, errors.New("latchclient: RefreshRequest takes DPoP or Prover, not both")
	}
	in := struct {
		RefreshToken string     `json:"refresh_token"`
		DPoP         *DPoPProof `json:"dpop,omitempty"`
	}{r.RefreshToken, r.DPoP}
	var out Refreshed
	h, err := c.withProof(r.Prover, func(proof string) (http.Header, error) {
		return c.call(ctx, "POST", "/v1/refresh", in, &out, proof)
	})
	if err != nil {
		return nil, err
	}
	out.DPoPNonce = h.Get("DPoP-Nonce")
	return &out, nil
}

// withProof runs send with a fresh proof by p for latch's refresh URL (""
// without p), and once more with latch's nonce if it asked for one.
func (c *Client) withProof(p *dpop.Prover, send func(proof string) (http.Header, error)) (http.Header, error) {
	if p == nil {
		return send("")
	}
	for try := 0; ; try++ {
		proof, err := p.Proof("POST", c.public+"/v1/refresh", dpop.ProofOptions{Nonce: c.nonces.get()})
		if err != nil {
			return nil, err
		}
		h, err := send(proof)
		var e *Error
		switch {
		case err == nil:
			c.nonces.set(h.Get("DPoP-Nonce"))
			return h, nil
		case errors.As(err, &e) && e.DPoPNonce != "":
			c.nonces.set(e.DPoPNonce)
			if e.Code == dpop.CodeUseNonce && try == 0 {
				continue
			}
		}
		return nil, err
	}
}

// nonceBox keeps the newest DPoP-Nonce latch sent.
type nonceBox struct {
	mu sync.Mutex
	v  string
}

func (b *nonceBox) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.v
}

func (b *nonceBox) set(v string) {
	if v == "" {
		return
	}
	b.mu.Lock()
	b.v = v
	b.mu.Unlock()
}

// AccessCheck is what VerifyAccessToken demands beyond a valid token.
type AccessCheck struct {
	// DPoP is the proof that came with a DPoP-bound token (one sent as
	// "Authorization: DPoP"), relayed with the request's method and URL; a
	// bound token without it is refused (ErrInvalidDPoPProof).
	DPoP *DPoPProof
	// MaxAge and ACRValues are the step-up requirement, as for VerifyFor.
	MaxAge    time.Duration
	ACRValues []string
}

// VerifyAccessToken checks an access token online (POST
// /v1/sessions/verify): its signature and that its session is still live,
// which an offline check cannot know, plus its DPoP proof and the step-up
// requirement of chk. It is never answered from the cache.
func (c *Client) VerifyAccessToken(ctx context.Context, accessToken string, chk AccessCheck) (*Verified, error) {
	need := requirement(chk.MaxAge, chk.ACRValues)
	in := struct {
		AccessToken string     `json:"access_token"`
		MaxAge      int64      `json:"max_age,omitempty"`
		ACRValues   []string   `json:"acr_values,omitempty"`
		DPoP        *DPoPProof `json:"dpop,omitempty"`
	}{accessToken, need.maxAge, need.acrValues, chk.DPoP}
	var out struct {
		Session Session `json:"session"`
	}
	h, err := c.call(ctx, "POST", "/v1/sessions/verify", in, &out, "")
	if err != nil {
		return nil, stepUp(err, need)
	}
	return &Verified{Session: out.Session, DPoPNonce: h.Get("DPoP-Nonce")}, nil
}

func requirement(maxAge time.Duration, acrValues []string) verifyRequirement {
	need := verifyRequirement{acrValues: acrValues}
	if maxAge > 0 {
		need.maxAge = int64((maxAge + time.Second - 1) / time.Second)
	}
	return need
}

// stepUp turns a step-up refusal into an *InsufficientAuthError.
func stepUp(err error, need verifyRequirement) error {
	var e *Error
	if errors.As(err, &e) && e.Code == "insufficient_user_authentication" {
		return insufficient(e, need)
	}
	return err
}

// RelayedProof returns the DPoP proof a backend's client sent with r, for
// relaying to latch, with r's method and url: the absolute URL the client
// addressed, or "" for r's scheme (https with TLS), Host and path (set it
// behind a proxy that changes them). It returns nil, nil when r carries no
// proof, and an error matching ErrInvalidDPoPProof when it carries more
// than one (RFC 9449 §4.3).
func RelayedProof(r *http.Request, url string) (*DPoPProof, error) {
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) == 0:
		return nil, nil
	case len(proofs) > 1:
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_dpop_proof", Detail: "a request may carry one DPoP proof only"}
	}
	if url == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		url = scheme + "://" + r.Host + r.URL.EscapedPath()
	}
	return &DPoPProof{Proof: proofs[0], Method: r.Method, URL: url}, nil
}

// PassDPoP sets on a backend's answer to its client what latch's answer
// to a relayed proof says the client needs: DPoP-Nonce (nonce, from a
// DPoPNonce field, or err's), and for a DPoP refusal latch's challenge as
// WWW-Authenticate (docs/protocol.md, section 5). The caller still
// chooses the status (401 for a refusal).
func PassDPoP(w http.ResponseWriter, nonce string, err error) {
	var e *Error
	if errors.As(err, &e) {
		if e.DPoPNonce != "" {
			nonce = e.DPoPNonce
		}
		if errors.Is(e, ErrInvalidDPoPProof) && e.Challenge != "" {
			w.Header().Set("WWW-Authenticate", e.Challenge)
		}
	}
	if nonce != "" {
		w.Header().Set("DPoP-Nonce", nonce)
	}
}

// AccessToken reads the access token of r's Authorization header and the
// DPoP proof to relay with it (RFC 9449 §7), for VerifyAccessToken's
// AccessCheck.DPoP: "Bearer <token>" carries an unbound token (and no
// proof is relayed, whatever DPoP header r has), "DPoP <token>" a bound
// one with exactly one DPoP header, relayed with r's method and url (as
// for RelayedProof). A token whose cnf.jkt says it is DPoP-bound sent as
// Bearer, or an unbound one sent as DPoP, is refused here, without a call
// to latch, with an *Error matching ErrInvalidDPoPProof whose Challenge
// is the RFC 9449 challenge to answer with. The claims are only read, not
// verified: a token whose cnf was added or removed fails latch's
// signature check anyway. It returns "", nil, nil when r has no
// Authorization header of either scheme.
func AccessToken(r *http.Request, url string) (string, *DPoPProof, error) {
	a := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(a, " ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || (!strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "DPoP")) {
		return "", nil, nil
	}
	bound, ok := tokenBound(tok)
	if !ok { // not a JWS of a JSON object: latch answers invalid_token
		return tok, nil, nil
	}
	refuse := func(reason dpop.Reason) (string, *DPoPProof, error) {
		e := &dpop.Error{Reason: reason}
		return "", nil, &Error{Status: http.StatusUnauthorized, Code: dpop.CodeInvalidProof, Detail: e.Description(), Challenge: dpop.Challenge(e)}
	}
	switch {
	case strings.EqualFold(scheme, "Bearer") && bound:
		return refuse(dpop.ReasonBearer)
	case strings.EqualFold(scheme, "Bearer"):
		return tok, nil, nil
	case !bound:
		return refuse(dpop.ReasonMissingProof) // the DPoP scheme with an unbound token
	}
	p, err := RelayedProof(r, url)
	switch {
	case err != nil:
		return refuse(dpop.ReasonMalformed)
	case p == nil:
		return refuse(dpop.ReasonMissingProof)
	}
	return tok, p, nil
}

// tokenBound reports whether a JWT's payload has a cnf member with a jkt
// (RFC 9449 §6.1), reading it without verifying anything; ok is false if
// tok is no JWS with a JSON object payload.
func tokenBound(tok string) (bound, ok bool) {
	_, rest, ok1 := strings.Cut(tok, ".")
	payload, _, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return false, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false, false
	}
	var c struct {
		CNF *struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return false, false
	}
	return c.CNF != nil && c.CNF.JKT != "", true
}
