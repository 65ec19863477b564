package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/api"
	"github.com/latch-sessions/latch/dpop"
	"github.com/latch-sessions/latch/store"
)

// sessionID reads and checks the {id} path parameter.
func sessionID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, err := store.ParseID(id); err != nil {
		return "", badRequest("the path does not hold a session ID (ses_…)")
	}
	return id, nil
}

func (s *Server) client(r *http.Request) latch.Client {
	return latch.Client{IP: s.clientIP(r), UserAgent: r.UserAgent()}
}

// POST /v1/sessions
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Subject             string          `json:"subject"`
		Data                json.RawMessage `json:"data"`
		Claims              json.RawMessage `json:"claims"`
		IP                  string          `json:"ip"`
		UserAgent           string          `json:"user_agent"`
		ReplaceSessionToken string          `json:"replace_session_token"`
		AuthTime            *time.Time      `json:"auth_time"`
		ACR                 string          `json:"acr"`
		AMR                 []string        `json:"amr"`
		DPoP                *dpopRelay      `json:"dpop"`
		DPoPJKT             string          `json:"dpop_jkt"`
	}
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	var bind func(context.Context) (string, error)
	if req.DPoP != nil {
		s.offerNonce(w)
		if req.DPoPJKT != "" {
			return badRequest("send at most one of dpop and dpop_jkt")
		}
		// Checked by Create after the rest of the input, so a create
		// refused for its input spends no proof.
		bind = func(ctx context.Context) (string, error) {
			p, err := s.checkRelayed(ctx, req.DPoP, "", "")
			return p.JKT, err
		}
	}
	ns := latch.NewSession{
		Subject:   req.Subject,
		Data:      req.Data,
		Claims:    req.Claims,
		Client:    latch.Client{IP: req.IP, UserAgent: req.UserAgent},
		Replace:   req.ReplaceSessionToken,
		ACR:       req.ACR,
		AMR:       req.AMR,
		JKT:       req.DPoPJKT,
		BindProof: bind,
	}
	if req.AuthTime != nil {
		ns.AuthTime = *req.AuthTime
	}
	is, err := s.mgr.Create(r.Context(), ns)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sessions/"+is.Session.ID())
	w.Header().Set("ETag", etag(is.Session.Version()))
	writeJSON(w, http.StatusCreated, issuedOf(is, s.now()))
	return nil
}

// POST /v1/sessions/verify
func (s *Server) verifySession(w http.ResponseWriter, r *http.Request) error {
	var req verifyRequest
	buf, err := readBody(w, r, false)
	if err != nil {
		return err
	}
	if !decodeVerifyRequest(buf.Bytes(), &req) {
		// Through an interface, so on the heap: only on this path.
		slow := new(verifyRequest)
		err = decodeJSON(buf, slow)
		req = *slow
	}
	putBuffer(buf)
	if err != nil {
		return err
	}
	if req.DPoP != nil {
		s.offerNonce(w)
	}
	need, err := authRequirement(req.MaxAge, req.ACRValues)
	if err != nil {
		return err
	}
	var (
		sess   *latch.Session
		csrf   bool
		client = latch.Client{IP: req.IP, UserAgent: req.UserAgent}
		until  time.Time // the credential's own deadline, beyond the session's
	)
	switch {
	case (req.SessionToken == "") == (req.AccessToken == ""):
		return badRequest("send exactly one of session_token and access_token")
	case req.SessionToken != "":
		sess, err = s.mgr.ValidateFor(r.Context(), req.SessionToken, client, need)
		s.metrics.validated("session", err)
		// The client middleware renders and checks the session's CSRF
		// tokens itself (docs/protocol.md, section 2): a fresh one per answer.
		csrf = true
	default:
		var c accesstoken.Claims
		sess, c, err = s.verifyAccess(r.Context(), req.AccessToken, client, need, req.DPoP)
		s.metrics.validated("access", err)
		until = c.ExpiresAt
	}
	if err != nil {
		return err
	}
	setVerifyHeaders(w.Header(), sess.Version(), s.cacheMaxAge(sess, until))
	return s.writeSession(w, http.StatusOK, sess, csrf)
}

// cacheMaxAge is how long, in whole seconds, a client may answer from a
// cached verify (docs/protocol.md, section 4): the touch interval, so
// activity is still recorded as often as latch records it, but never past
// the session's idle or absolute deadline or the credential's own expiry
// (until, if not zero). Rounded down, so a cache never outlives a deadline.
func (s *Server) cacheMaxAge(sess *latch.Session, until time.Time) int64 {
	now := s.now()
	d := s.mgr.Config().TouchInterval
	for _, t := range []time.Time{sess.IdleExpiresAt(), sess.ExpiresAt(), until} {
		if !t.IsZero() {
			d = min(d, t.Sub(now))
		}
	}
	return max(0, int64(d/time.Second))
}

// verifyToken verifies an access token's signature and claims after
// syncing the keyring, so a key revoked through another replica is
// refused at once. With Redis the sync is a client-side cache hit unless
// the keyring changed.
func (s *Server) verifyToken(ctx context.Context, tok string) (accesstoken.Claims, error) {
	if err := s.keys.Sync(ctx); err != nil {
		return accesstoken.Claims{}, err
	}
	return s.verifier.Verify(ctx, tok)
}

// verifyAccess verifies an access token and checks that its session is
// live and was not renewed since, recording activity like a session-token
// verify: one store read. A DPoP-bound token needs relay, a proof by its
// key with ath, checked after the session (so its jti is spent only on an
// otherwise good token) and before any activity is recorded (so a refused
// proof changes nothing).
func (s *Server) verifyAccess(ctx context.Context, tok string, client latch.Client, need latch.AuthRequirement, relay *dpopRelay) (*latch.Session, accesstoken.Claims, error) {
	c, err := s.verifyToken(ctx, tok)
	if err != nil {
		return nil, c, err
	}
	if c.SessionID == "" {
		return nil, c, latch.ErrInvalidToken
	}
	var prove func(context.Context) error
	switch {
	case c.JKT == "":
	case relay == nil:
		prove = func(context.Context) error { return dpop.ErrProofRequired }
	default:
		prove = func(ctx context.Context) error {
			_, err := s.checkRelayed(ctx, relay, tok, c.JKT)
			return err
		}
	}
	sess, err := s.mgr.ValidateAccessProof(ctx, c, client, need, prove)
	return sess, c, err
}

// maxMaxAge bounds a verify's max_age: ten years, far beyond any session.
const maxMaxAge = 10 * 366 * 24 * 3600

// authRequirement reads a verify's max_age (whole seconds, at least 1: a
// max_age of 0 could never be met by the time a re-authentication has been
// recorded) and acr_values.
func authRequirement(maxAge *int64, acrValues []string) (latch.AuthRequirement, error) {
	need := latch.AuthRequirement{ACRValues: acrValues}
	if maxAge != nil {
		if *maxAge < 1 || *maxAge > maxMaxAge {
			return need, badRequest("max_age must be a whole number of seconds from 1 to " + strconv.Itoa(maxMaxAge))
		}
		need.MaxAge = time.Duration(*maxAge) * time.Second
	}
	if acrValues != nil && len(acrValues) == 0 {
		return need, badRequest("acr_values must list at least one value when present")
	}
	return need, need.Valid()
}

// GET /v1/sessions/{id}
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	sess, err := s.mgr.Get(r.Context(), id)
	if err != nil {
		return err
	}
	tag := etag(sess.Version())
	w.Header().Set("ETag", tag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListMatches(inm, sess.Version()) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, http.StatusOK, sessionResponse{Session: viewOf(sess)})
	return nil
}

// PATCH /v1/sessions/{id}
func (s *Server) patchSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	var ifVersion uint64
	if im := r.Header.Get("If-Match"); im != "" && strings.TrimSpace(im) != "*" {
		v, ok := parseETag(im)
		if !ok {
			return errorf(http.StatusPreconditionFailed, CodeConflict, "If-Match must be an ETag of this session, as returned by GET")
		}
		ifVersion = v
	}
	var req struct {
		Data json.RawMessage `json:"data"` // "null" when sent as null, nil when absent
	}
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.Data == nil {
		return badRequest(`the body must be {"data": <JSON merge patch>}`)
	}
	patch := req.Data
	sess, err := s.mgr.UpdateData(r.Context(), id, ifVersion, func(cur json.RawMessage) (json.RawMessage, error) {
		return mergePatch(cur, patch)
	})
	switch {
	case errors.Is(err, latch.ErrConflict) && ifVersion != 0:
		return errorf(http.StatusPreconditionFailed, CodeConflict, "the session changed since that version (If-Match did not match); re-read it and retry")
	case err != nil:
		return err
	}
	w.Header().Set("ETag", etag(sess.Version()))
	writeJSON(w, http.StatusOK, sessionResponse{Session: viewOf(sess)})
	return nil
}

// DELETE /v1/sessions/{id}
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	if err := s.mgr.Revoke(r.Context(), id, store.ReasonAdmin); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /v1/sessions/{id}/renew
func (s *Server) renewSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	var req struct {
		Claims   json.RawMessage `json:"claims"`
		AuthTime *time.Time      `json:"auth_time"`
		ACR      string          `json:"acr"`
		AMR      []string        `json:"amr"`
	}
	if err := readJSON(w, r, &req, true); err != nil {
		return err
	}
	rn := latch.Renewal{Claims: req.Claims, ACR: req.ACR, AMR: req.AMR}
	if req.AuthTime != nil {
		rn.AuthTime = *req.AuthTime
	}
	is, err := s.mgr.Renew(r.Context(), id, rn)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(is.Session.Version()))
	writeJSON(w, http.StatusOK, issuedOf(is, s.now()))
	return nil
}

// GET /v1/subjects/{subject}/sessions
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	list, err := s.mgr.List(r.Context(), r.PathValue("subject"))
	if err != nil {
		return err
	}
	out := struct {
		Sessions []*sessionView `json:"sessions"`
	}{Sessions: make([]*sessionView, len(list))}
	for i, sess := range list {
		out.Sessions[i] = viewOf(sess)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// DELETE /v1/subjects/{subject}/sessions?except={id}
func (s *Server) revokeSubject(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "except" {
			return badRequest("unknown query parameter " + strconv.Quote(k))
		}
	}
	n, err := s.mgr.RevokeSubject(r.Context(), r.PathValue("subject"), q.Get("except"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Revoked int `json:"revoked"`
	}{n})
	return nil
}

type keyView struct {
	ID          string  `json:"kid"`
	Algorithm   string  `json:"alg"`
	State       string  `json:"state"`
	CreatedAt   timeUTC `json:"created_at"`
	ActivatesAt timeUTC `json:"activates_at"`
	RetiresAt   timeUTC `json:"retires_at"`
	RemovesAt   timeUTC `json:"removes_at"`
	RevokedAt   timeUTC `json:"revoked_at"`
}

// GET /v1/keys
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.keys.Reload(r.Context()); err != nil {
		return err
	}
	out := struct {
		Keys []keyView `json:"keys"`
	}{Keys: []keyView{}}
	for _, k := range s.keys.Keys() {
		out.Keys = append(out.Keys, keyView{
			ID: k.ID, Algorithm: string(k.Algorithm), State: string(k.State),
			CreatedAt: timeUTC(k.Created), ActivatesAt: timeUTC(k.Activates),
			RetiresAt: timeUTC(k.Retires), RemovesAt: timeUTC(k.Removes), RevokedAt: timeUTC(k.Revoked),
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// POST /v1/keys/rotate
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	if err := readJSON(w, r, &struct{}{}, true); err != nil {
		return err
	}
	kid, err := s.keys.Rotate(r.Context())
	if err != nil {
		return err
	}
	s.keysChanged(r.Context(), kid, "rotated")
	out := struct {
		Kid         string  `json:"kid"`
		ActivatesAt timeUTC `json:"activates_at"`
	}{Kid: kid}
	for _, k := range s.keys.Keys() {
		if k.ID == kid {
			out.ActivatesAt = timeUTC(k.Activates)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// POST /v1/keys/{kid}/revoke
//
// For a compromised key: it leaves JWKS and its tokens are refused at
// once (other replicas see it on their next online verification), and a
// fresh key signs from now on. The answer names the signing key.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if err := readJSON(w, r, &struct{}{}, true); err != nil {
		return err
	}
	kid := r.PathValue("kid")
	signing, err := s.keys.Revoke(r.Context(), kid)
	if errors.Is(err, accesstoken.ErrKeyNotFound) {
		return errorf(http.StatusNotFound, CodeNotFound, "the keyring has no key with that kid")
	}
	if err != nil {
		return err
	}
	s.keysChanged(r.Context(), kid, "revoked")
	writeJSON(w, http.StatusOK, struct {
		Kid string `json:"kid"`
	}{signing})
	return nil
}

// POST /v1/refresh
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken string     `json:"refresh_token"`
		DPoP         *dpopRelay `json:"dpop"`
	}
	if err := readJSON(w, r, &req, false); err != nil {
		return err
	}
	if req.DPoP != nil {
		s.offerNonce(w)
	}
	if req.RefreshToken == "" {
		return badRequest("refresh_token is required")
	}
	hdr := r.Header.Values("DPoP")
	if len(hdr) > 0 && req.DPoP != nil {
		return badRequest("send the DPoP proof either as the DPoP header or in the body, not both")
	}
	var prove latch.ProofCheck
	switch {
	case req.DPoP != nil:
		prove = func(ctx context.Context, jkt string) error {
			_, err := s.checkRelayed(ctx, req.DPoP, "", jkt)
			return err
		}
	case len(hdr) > 0:
		prove = func(ctx context.Context, jkt string) error {
			if len(hdr) != 1 { // RFC 9449 §4.3: exactly one DPoP header
				return dpop.ErrMalformedProof
			}
			_, err := s.checkProof(ctx, hdr[0], dpop.Use{Method: http.MethodPost, URL: s.publicURL(r) + "/v1/refresh", JKT: jkt})
			return err
		}
	}
	rf, err := s.mgr.RefreshProof(r.Context(), req.RefreshToken, prove)
	s.metrics.refreshes.WithLabelValues(result(err)).Inc()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, refreshResponse{
		AccessToken:  rf.AccessToken.Reveal(),
		RefreshToken: rf.RefreshToken.Reveal(),
		TokenType:    tokenType(rf.Session),
		ExpiresIn:    expiresIn(rf.AccessExpiresAt, s.now()),
	})
	return nil
}

// GET /v1/whoami
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get("Authorization") != "" {
		c, err := s.publicAccess(r)
		var sess *latch.Session
		if err == nil {
			sess, err = s.mgr.ValidateAccessFor(r.Context(), c, s.client(r), latch.AuthRequirement{})
		}
		s.metrics.validated("access", err)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, sessionResponse{Session: viewOf(sess)})
		return nil
	}
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "send an access token as Authorization: Bearer <token>, or the session cookie")
	}
	sess, err := s.mgr.ValidateClient(r.Context(), c.Value, s.client(r))
	s.metrics.validated("session", err)
	if err != nil {
		return err
	}
	csrf, err := s.mgr.CSRFToken(sess)
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Cookie")
	writeJSON(w, http.StatusOK, sessionResponse{Session: viewOf(sess), CSRFToken: csrf})
	return nil
}

// POST /v1/logout
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := readJSON(w, r, &struct{}{}, true); err != nil {
		return err
	}
	if r.Header.Get("Authorization") != "" {
		c, err := s.publicAccess(r)
		if err != nil {
			return err
		}
		if err := s.mgr.Revoke(r.Context(), c.SessionID, store.ReasonLogout); err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "send an access token as Authorization: Bearer <token>, or the session cookie with its CSRF token")
	}
	if err := s.cop.Check(r); err != nil {
		return s.csrfRejected(w, r, "cross-origin request")
	}
	sess, err := s.mgr.ValidateClient(r.Context(), c.Value, s.client(r))
	switch {
	case errors.Is(err, latch.ErrUnavailable):
		return err
	case err == nil:
		if !s.mgr.CheckCSRF(sess, r.Header.Get("X-CSRF-Token")) {
			return s.csrfRejected(w, r, "missing or wrong CSRF token")
		}
		if err := s.mgr.RevokeToken(r.Context(), c.Value, store.ReasonLogout); err != nil {
			return err
		}
	}
	// The session is over (or already was): expire the cookie with the
	// attributes it was set with.
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Clear-Site-Data", `"cookies"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// csrfRejected reports a CSRF rejection as an event and answers 403 csrf.
func (s *Server) csrfRejected(w http.ResponseWriter, r *http.Request, why string) error {
	s.mgr.Emit(r.Context(), latch.Event{Type: latch.EventCSRFRejected, Reason: why, IP: s.clientIP(r)})
	return errorf(http.StatusForbidden, CodeCSRF, why+": cookie-authenticated requests must come from the same origin and carry the X-CSRF-Token from whoami")
}

// GET /.well-known/jwks.json
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	if err := s.keys.Sync(r.Context()); err != nil {
		return err // a revoked key must not be served from a stale snapshot
	}
	b := s.keys.JWKS()
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.keys.JWKSMaxAge()/time.Second)))
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
	return nil
}

// GET /.well-known/oauth-authorization-server
//
// The RFC 8414 metadata document, with only the members latch really
// supports: issuer, jwks_uri and, where the store has a replay cache,
// dpop_signing_alg_values_supported (latch has no OAuth authorization or
// token endpoint). jwks_uri is built from the address the request reached, so
// it is right after a move to another address, where the stable issuer
// keeps naming the first one; the Host header only shapes the answer to
// the request that sent it.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.keys.JWKSMaxAge()/time.Second)))
	var algs []string
	if s.dpop != nil {
		algs = dpop.Algorithms
	}
	writeJSON(w, http.StatusOK, struct {
		Issuer   string   `json:"issuer"`
		JWKSURI  string   `json:"jwks_uri"`
		DPoPAlgs []string `json:"dpop_signing_alg_values_supported,omitempty"`
	}{s.opts.Issuer, (&url.URL{Scheme: scheme, Host: r.Host, Path: "/.well-known/jwks.json"}).String(), algs})
	return nil
}

// GET /healthz
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyTimeout bounds the store check of /readyz.
const readyTimeout = 2 * time.Second

// GET /readyz
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := store.Ping(ctx, s.store); err != nil {
		if !errors.Is(err, latch.ErrUnavailable) {
			err = errors.Join(latch.ErrUnavailable, err)
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

// GET /metrics
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metrics.handler().ServeHTTP(w, r)
	return nil
}

// GET /openapi.json
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(api.OpenAPI)))
	w.Write(api.OpenAPI)
	return nil
}

func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// parseETag reads a strong ETag of the form "N".
func parseETag(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[1:len(s)-1], 10, 64)
	return v, err == nil && v > 0
}

// etagListMatches reports whether an If-None-Match list names version v
// (weak comparison, RFC 9110 §13.1.2).
func etagListMatches(list string, v uint64) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if got, ok := parseETag(t); ok && got == v {
			return true
		}
	}
	return false
}
