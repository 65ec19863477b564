package latchhttp

import (
	"errors"
	"mime"
	"net/http"

	"github.com/latch-sessions/latch"
)

// CSRFHeader and CSRFField are where the middleware looks for the
// synchronizer token on unsafe requests: the header first; without it, the
// form field of a url-encoded or multipart body.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
)

// Reasons for a CSRF rejection, in CSRFError.Reason and the event's Reason.
const (
	csrfCrossOrigin = "cross-origin"
	csrfMissing     = "missing-token"
	csrfInvalid     = "invalid-token"
)

// CSRFError is a CSRF rejection. It matches ErrCSRF. Reason is
// "cross-origin" (net/http.CrossOriginProtection refused the request),
// "missing-token" or "invalid-token" (the synchronizer token is absent, or
// not one issued for this session — forged, from another session, from
// before a renewal — or, without a session, not one minted for the
// request's own anonymous CSRF cookie). It never contains the token.
type CSRFError struct {
	Reason string
	// Cause is set when the request carried a session cookie that no
	// longer works (it matches latch.ErrRevoked, latch.ErrExpired or
	// latch.ErrInvalidToken): the request was then judged as anonymous,
	// so a form of the ended session is refused with this error. An
	// ErrorHandler can tell such a user that they were signed out.
	Cause error
}

func (e *CSRFError) Error() string {
	if e.Cause != nil {
		return ErrCSRF.Error() + ": " + e.Reason + " (session: " + e.Cause.Error() + ")"
	}
	return ErrCSRF.Error() + ": " + e.Reason
}
func (e *CSRFError) Is(target error) bool { return target == ErrCSRF }
func (e *CSRFError) Unwrap() error        { return e.Cause }

func (s *Sessions) rejectCSRF(w http.ResponseWriter, r *http.Request, st *state, reason string) {
	e := latch.Event{Type: latch.EventCSRFRejected, Reason: reason, IP: s.clientIP(r)}
	if st.sess != nil {
		e.SessionID, e.Subject = st.sess.ID(), st.sess.Subject()
	}
	s.m.Emit(r.Context(), e)
	err := &CSRFError{Reason: reason}
	if st.sess == nil {
		err.Cause = st.authErr
	}
	s.errHandler(w, r, err)
}

// csrfTokenFrom returns the synchronizer token the request presents: the
// X-CSRF-Token header, else the csrf_token field of a form body. Reading the
// form leaves it parsed in r.PostForm (and r.MultipartForm) for the
// handler, as if the handler had called ParseForm or ParseMultipartForm
// itself; the raw body is then consumed. Handlers that stream a body
// themselves (large uploads through r.MultipartReader) should send the
// header instead, which leaves the body untouched.
func (s *Sessions) csrfTokenFrom(w *responseWriter, r *http.Request) (string, error) {
	if v := r.Header["X-Csrf-Token"]; len(v) > 0 && v[0] != "" { // http.CanonicalHeaderKey(CSRFHeader)
		return v[0], nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil
	}
	var perr error
	switch mt {
	case "application/x-www-form-urlencoded":
		if r.Body == nil {
			return "", nil
		}
		r.Body = http.MaxBytesReader(w.ResponseWriter, r.Body, s.maxForm)
		perr = r.ParseForm()
	case "multipart/form-data":
		if r.Body == nil {
			return "", nil
		}
		r.Body = http.MaxBytesReader(w.ResponseWriter, r.Body, s.maxForm)
		perr = r.ParseMultipartForm(s.maxMemory)
	default:
		return "", nil
	}
	if perr != nil {
		var mbe *http.MaxBytesError
		if errors.As(perr, &mbe) {
			return "", errors.Join(ErrBadRequest, mbe)
		}
		return "", ErrBadRequest
	}
	// PostForm holds body fields only, never the query string.
	return r.PostForm.Get(CSRFField), nil
}
