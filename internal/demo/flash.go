package demo

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/latch-sessions/latch"
	"github.com/latch-sessions/latch/latchhttp"
)

// A flash is a one-shot notice ("Signed in.") for the page a form
// redirects to (post/redirect/get). It travels in a short-lived cookie that
// the page deletes as it shows it, so a reload does not show it again. The
// cookie holds only the name of a notice from the list below, never text
// or anything secret; a planted or stale value shows at worst one of these
// notices.
const flashMaxAge = 60 // seconds: just the redirect

const (
	flashSignedIn      = "signed-in"
	flashRevoked       = "revoked"
	flashRevokedOthers = "revoked-others-" // + the number revoked
)

func (h *Handler) flashCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     h.cookie + "-flash",
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   !h.cfg.HTTP.InsecureCookieForDevelopmentOnly,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// setFlash makes the next page show the notice named value once.
func (h *Handler) setFlash(w http.ResponseWriter, value string) {
	http.SetCookie(w, h.flashCookie(value, flashMaxAge))
}

// takeFlash returns the notice the request's flash cookie names, if any,
// and deletes the cookie.
func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(h.cookie + "-flash")
	if err != nil {
		return ""
	}
	http.SetCookie(w, h.flashCookie("", -1))
	switch v := c.Value; {
	case v == flashSignedIn:
		return "Signed in. latch created a new session for this browser."
	case v == flashRevoked:
		return "Session revoked. That device is signed out on its next request."
	case strings.HasPrefix(v, flashRevokedOthers):
		n, err := strconv.Atoi(strings.TrimPrefix(v, flashRevokedOthers))
		switch {
		case err != nil || n < 0:
			return ""
		case n == 0:
			return "There were no other sessions to sign out."
		case n == 1:
			return "Signed out 1 other session. Only this device is still signed in."
		default:
			return "Signed out " + strconv.Itoa(n) + " other sessions. Only this device is still signed in."
		}
	}
	return ""
}

// signedOutURL is the login page for a request without a session, saying
// why when its session cookie stopped working: it expired, or it was
// revoked from another device, by "sign out everywhere else" or by an
// administrator.
func signedOutURL(r *http.Request) string {
	return loginURLFor(latchhttp.AuthError(r.Context()))
}

func loginURLFor(err error) string {
	switch {
	case err == nil:
		return "/login"
	case errors.Is(err, latch.ErrExpired):
		return "/login?from=expired"
	default:
		return "/login?from=ended"
	}
}
