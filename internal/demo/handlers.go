package demo

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
	"github.com/latch-sessions/latch/store"
)

// base is what every page's layout needs.
type base struct {
	Title      string
	CSRF       string // the masked CSRF token for this page's forms
	User       string // signed-in subject, or ""
	CookieName string
	APILinks   bool
	Static     map[string]string // file name → versioned URL
}

func (h *Handler) base(r *http.Request, title string) base {
	b := base{Title: title, CookieName: h.cookie, APILinks: h.cfg.APILinks, Static: h.urls}
	if s, ok := latchhttp.FromContext(r.Context()); ok {
		b.User = s.Subject()
		b.CSRF = latchhttp.CSRFToken(r)
	}
	return b
}

type loginPage struct {
	base
	Users    []string
	Username string
	Error    string
	Notice   string
}

// loginPage returns the login page for a visitor without a session. Its
// form carries the anonymous CSRF token (latchhttp sets the cookie it
// belongs to), so a login form posted from anywhere else signs nobody in.
func (h *Handler) loginPage(r *http.Request) loginPage {
	p := loginPage{base: h.base(r, "Sign in"), Users: Users}
	p.CSRF = latchhttp.CSRFToken(r)
	return p
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := latchhttp.FromContext(r.Context()); ok {
		redirect(w, r, "/")
		return
	}
	p := h.loginPage(r)
	switch r.URL.Query().Get("from") {
	case "expired":
		p.Notice = "Your session expired. Sign in again to continue."
	case "signed-out":
		p.Notice = "You are signed out. That session is revoked: its cookie no longer works anywhere."
	case "ended":
		p.Notice = "This session was signed out, from another device or by an administrator. Sign in again to continue."
	}
	h.render(w, r, http.StatusOK, "login", p)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest)
		return
	}
	name, password := trimForm(r, "username"), r.PostFormValue("password")
	p := h.loginPage(r)
	p.Username = name
	ip := clientIP(r)
	giveBack, ok := h.limiter.reserve(ip, h.now())
	if !ok {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "demo: sign-in rate limited", slog.String("ip", ip))
		p.Error = "Too many failed attempts from your address. Wait a minute, then try again."
		w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.LoginEvery.Seconds()+0.5)))
		h.render(w, r, http.StatusTooManyRequests, "login", p)
		return
	}
	subject, ok := h.authenticate(name, password)
	if !ok {
		// The name is not logged: people type passwords into it.
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "demo: sign-in failed", slog.String("ip", ip))
		p.Error = "That user name and password do not match. Check them and try again."
		h.render(w, r, http.StatusUnauthorized, "login", p)
		return
	}
	giveBack()
	if _, err := h.s.Login(w, r, latch.NewSession{Subject: subject, AMR: []string{"pwd"}}); err != nil {
		h.storeFailed(w, r, "sign-in", err)
		return
	}
	h.setFlash(w, flashSignedIn)
	redirect(w, r, "/")
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.s.Logout(w, r); err != nil {
		h.storeFailed(w, r, "sign-out", err)
		return
	}
	redirect(w, r, "/login?from=signed-out")
}

// sessionRow is one line of the "your sessions" table.
type sessionRow struct {
	ID          string
	Device      device
	IP          string
	LastSeen    string // relative
	LastSeenISO string
	Created     string
	CreatedISO  string
	Current     bool
}

// sessionView is the current session, for the page and the status JSON.
type sessionView struct {
	ID, Subject                                      string
	Created, AuthTime, LastSeen, IdleExpires, Expire stamp
	Device                                           device
	IP                                               string
}

// stamp is a time as the page shows it.
type stamp struct {
	ISO      string // RFC 3339, for <time datetime>
	Text     string // UTC, for people
	Relative string
}

func (h *Handler) stamp(t, now time.Time) stamp {
	t = t.UTC()
	return stamp{ISO: t.Format(time.RFC3339), Text: t.Format("2 Jan 2006, 15:04:05 UTC"), Relative: relative(t, now)}
}

type homePage struct {
	base
	Session     sessionView
	Sessions    []sessionRow
	Others      int
	Notice      string
	IdleLeft    string // "29:41"
	IdleLeftMS  int64
	IdleTimeout string // "30 minutes"
	Absolute    string // "24 hours"
	Touch       string // "1 minute"
	PollMS      int64
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	sess, ok := latchhttp.FromContext(r.Context())
	if !ok {
		redirect(w, r, signedOutURL(r))
		return
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	list, err := h.m.List(ctx, sess.Subject())
	if err != nil {
		h.storeFailed(w, r, "listing sessions", err)
		return
	}
	now := h.now()
	cfg := h.m.Config()
	left := sess.Deadline().Sub(now)
	p := homePage{
		base: h.base(r, "Your session"),
		Session: sessionView{
			ID: sess.ID(), Subject: sess.Subject(),
			Created: h.stamp(sess.CreatedAt(), now), AuthTime: h.stamp(sess.AuthTime(), now),
			LastSeen: h.stamp(sess.LastSeenAt(), now), IdleExpires: h.stamp(sess.IdleExpiresAt(), now),
			Expire: h.stamp(sess.ExpiresAt(), now),
			Device: describeDevice(sess.UserAgent()), IP: sess.IP(),
		},
		IdleLeft:    countdown(left),
		IdleLeftMS:  max(0, left.Milliseconds()),
		IdleTimeout: duration(cfg.IdleTimeout),
		Absolute:    duration(cfg.AbsoluteTimeout),
		Touch:       duration(cfg.TouchInterval),
		PollMS:      pollInterval(cfg.IdleTimeout).Milliseconds(),
	}
	current := false
	for _, s := range list {
		row := sessionRow{
			ID: s.ID(), Device: describeDevice(s.UserAgent()), IP: s.IP(),
			LastSeen: relative(s.LastSeenAt(), now), LastSeenISO: s.LastSeenAt().UTC().Format(time.RFC3339),
			Created: relative(s.CreatedAt(), now), CreatedISO: s.CreatedAt().UTC().Format(time.RFC3339),
			Current: s.ID() == sess.ID(),
		}
		if row.Current {
			current = true
			// This request's view is fresher than the listing's.
			row.LastSeen, row.LastSeenISO = relative(sess.LastSeenAt(), now), sess.LastSeenAt().UTC().Format(time.RFC3339)
			p.Sessions = append([]sessionRow{row}, p.Sessions...)
			continue
		}
		p.Others++
		p.Sessions = append(p.Sessions, row)
	}
	if !current {
		// The listing can trail a write on some stores; the current
		// session is live, so show it.
		p.Sessions = append([]sessionRow{{
			ID: sess.ID(), Device: describeDevice(sess.UserAgent()), IP: sess.IP(),
			LastSeen: relative(sess.LastSeenAt(), now), LastSeenISO: sess.LastSeenAt().UTC().Format(time.RFC3339),
			Created: relative(sess.CreatedAt(), now), CreatedISO: sess.CreatedAt().UTC().Format(time.RFC3339),
			Current: true,
		}}, p.Sessions...)
	}
	p.Notice = h.takeFlash(w, r)
	h.render(w, r, http.StatusOK, "home", p)
}

// pollInterval is how often the page asks whether the session is still
// live: often enough to notice activity in another tab or a revocation
// well before the countdown ends.
func pollInterval(idle time.Duration) time.Duration {
	return min(15*time.Second, max(time.Second, idle/6))
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	sess, ok := latchhttp.FromContext(r.Context())
	if !ok {
		redirect(w, r, "/login?from=ended")
		return
	}
	id := trimForm(r, "session_id")
	if id == sess.ID() {
		// Revoking this device is signing out.
		h.logout(w, r)
		return
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	target, err := h.m.Get(ctx, id)
	switch {
	case errors.Is(err, latch.ErrNotFound), err == nil && target.Subject() != sess.Subject():
		// Someone else's session gets the same answer as none at all.
		h.errorPage(w, r, http.StatusNotFound)
		return
	case err != nil:
		h.storeFailed(w, r, "reading a session", err)
		return
	}
	if err := h.m.Revoke(ctx, target.ID(), store.ReasonLogout); err != nil {
		h.storeFailed(w, r, "revoking a session", err)
		return
	}
	h.setFlash(w, flashRevoked)
	redirect(w, r, "/")
}

func (h *Handler) revokeOthers(w http.ResponseWriter, r *http.Request) {
	if _, ok := latchhttp.FromContext(r.Context()); !ok {
		redirect(w, r, "/login?from=ended")
		return
	}
	n, err := h.s.RevokeOthers(w, r)
	if err != nil {
		h.storeFailed(w, r, "signing out other sessions", err)
		return
	}
	h.setFlash(w, flashRevokedOthers+strconv.Itoa(n))
	redirect(w, r, "/")
}

type confirmPageData struct {
	base
	SignedIn string // "12 minutes ago"
	MaxAge   string // "5 minutes"
	Error    string
}

// confirmPage is latchhttp's Reauthenticate hook: the sign-in is too old
// for the action, so ask for the password again. The form posts to the
// confirm handler, which re-authenticates, renews and then acts.
func (h *Handler) confirmPage(w http.ResponseWriter, r *http.Request, need latch.AuthRequirement) {
	h.renderConfirm(w, r, http.StatusOK, "")
}

func (h *Handler) renderConfirm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	sess, _ := latchhttp.FromContext(r.Context())
	p := confirmPageData{base: h.base(r, "Confirm it is you"), MaxAge: duration(h.cfg.ReauthAfter), Error: msg}
	if sess != nil {
		p.SignedIn = relative(sess.AuthTime(), h.now())
	}
	h.render(w, r, status, "confirm", p)
}

// confirmRevokeOthers checks the password of the signed-in user (rate
// limited per IP like sign-in), renews the session with the new auth_time
// and amr, and signs out the other sessions.
func (h *Handler) confirmRevokeOthers(w http.ResponseWriter, r *http.Request) {
	sess, ok := latchhttp.FromContext(r.Context())
	if !ok {
		redirect(w, r, "/login?from=ended")
		return
	}
	ip := clientIP(r)
	giveBack, ok := h.limiter.reserve(ip, h.now())
	if !ok {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "demo: re-authentication rate limited", slog.String("ip", ip))
		w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.LoginEvery.Seconds()+0.5)))
		h.renderConfirm(w, r, http.StatusTooManyRequests, "Too many failed attempts from your address. Wait a minute, then try again.")
		return
	}
	if subject, ok := h.authenticate(sess.Subject(), r.PostFormValue("password")); !ok || subject != sess.Subject() {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "demo: re-authentication failed", slog.String("ip", ip))
		h.renderConfirm(w, r, http.StatusUnauthorized, "That password is not right. Nothing was signed out.")
		return
	}
	giveBack()
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	if _, err := h.s.Renew(w, r.WithContext(ctx), latch.Renewal{AuthTime: h.now(), AMR: []string{"pwd"}}); err != nil {
		h.storeFailed(w, r, "renewing the session", err)
		return
	}
	h.revokeOthers(w, r)
}

// errorPageData explains a refused or failed request.
type errorPageData struct {
	base
	Status  int
	Heading string
	Message string
	Why     string
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.errorPage(w, r, http.StatusNotFound)
}

// httpError is the latchhttp ErrorHandler: it renders the error page for
// the status StatusCode gives. The error text is not shown.
func (h *Handler) httpError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *latchhttp.CSRFError
	if errors.As(err, &ce) && ce.Cause != nil {
		// A form of a session that has ended (revoked elsewhere, expired):
		// nothing was done; send the user to sign in again, saying why.
		redirect(w, r, loginURLFor(ce.Cause))
		return
	}
	code := latchhttp.StatusCode(err)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "demo: session store unavailable", slog.String("err", err.Error()))
	}
	h.errorPage(w, r, code)
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, code int) {
	p := errorPageData{base: h.base(r, http.StatusText(code)), Status: code}
	switch code {
	case http.StatusForbidden:
		p.Heading = "Request refused"
		p.Message = "latch refused this request because it did not come from a page of this site with a valid form token."
		p.Why = "This is CSRF protection at work: a form on another site can neither act on your session nor sign you in to an account of its choosing, even though your browser holds this site's cookies. If you got here by clicking a button on this site, reload the page and try again."
	case http.StatusNotFound:
		p.Heading = "Not found"
		p.Message = "There is nothing here, or it is not yours to see."
		p.Why = "A session you revoke must be one of your own: the ID of somebody else's session gets this same answer as an ID that does not exist."
	case http.StatusServiceUnavailable:
		p.Heading = "Session store unavailable"
		p.Message = "latch could not reach its session store, so it treats this request as not signed in. Try again in a moment."
		p.Why = "latch fails closed: when it cannot check a session, the answer is “no”, never “probably fine”."
	case http.StatusRequestEntityTooLarge:
		p.Heading = "Request too large"
		p.Message = "That form was larger than this app accepts."
	default:
		p.Heading = http.StatusText(code)
		p.Message = "The request could not be handled."
	}
	h.render(w, r, code, "error", p)
}
