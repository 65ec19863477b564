package server

import (
	"encoding/json"
	"time"

	"github.com/latch-sessions/latch"
)

// sessionView is the contract's session view. It holds no secret.
type sessionView struct {
	ID            string          `json:"id"`
	Subject       string          `json:"subject"`
	CreatedAt     timeUTC         `json:"created_at"`
	AuthTime      timeUTC         `json:"auth_time"`
	ACR           string          `json:"acr,omitempty"`
	AMR           []string        `json:"amr,omitempty"`
	LastSeenAt    timeUTC         `json:"last_seen_at"`
	IdleExpiresAt timeUTC         `json:"idle_expires_at"`
	ExpiresAt     timeUTC         `json:"expires_at"`
	IP            string          `json:"ip"`
	UserAgent     string          `json:"user_agent"`
	Data          json.RawMessage `json:"data"`
	Claims        json.RawMessage `json:"claims"`
	Version       uint64          `json:"version"`
}

var emptyObject = json.RawMessage("{}")

func viewOf(s *latch.Session) *sessionView {
	v := &sessionView{
		ID:            s.ID(),
		Subject:       s.Subject(),
		CreatedAt:     timeUTC(s.CreatedAt()),
		AuthTime:      timeUTC(s.AuthTime()),
		ACR:           s.ACR(),
		AMR:           s.AMR(),
		LastSeenAt:    timeUTC(s.LastSeenAt()),
		IdleExpiresAt: timeUTC(s.IdleExpiresAt()),
		ExpiresAt:     timeUTC(s.ExpiresAt()),
		IP:            s.IP(),
		UserAgent:     s.UserAgent(),
		Data:          s.Data(),
		Claims:        s.Claims(),
		Version:       s.Version(),
	}
	if len(v.Data) == 0 {
		v.Data = emptyObject
	}
	if len(v.Claims) == 0 {
		v.Claims = emptyObject
	}
	return v
}

type sessionResponse struct {
	Session   *sessionView `json:"session"`
	CSRFToken string       `json:"csrf_token,omitempty"`
}

// issuedResponse answers create and renew.
type issuedResponse struct {
	Session      *sessionView `json:"session"`
	SessionToken string       `json:"session_token"`
	RefreshToken string       `json:"refresh_token"`
	AccessToken  string       `json:"access_token"`
	TokenType    string       `json:"token_type"`
	ExpiresIn    int64        `json:"expires_in"`
}

type refreshResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

func expiresIn(exp, now time.Time) int64 {
	if exp.IsZero() {
		return 0
	}
	d := int64(exp.Sub(now) / time.Second)
	if d < 0 {
		return 0
	}
	return d
}

// tokenType is "DPoP" for a session bound to a DPoP key (RFC 9449 §5),
// whose access tokens are useless without a proof, else "Bearer".
func tokenType(sess *latch.Session) string {
	if sess.JKT() != "" {
		return "DPoP"
	}
	return "Bearer"
}

func issuedOf(is *latch.Issued, now time.Time) *issuedResponse {
	return &issuedResponse{
		Session:      viewOf(is.Session),
		SessionToken: is.SessionToken.Reveal(),
		RefreshToken: is.RefreshToken.Reveal(),
		AccessToken:  is.AccessToken.Reveal(),
		TokenType:    tokenType(is.Session),
		ExpiresIn:    expiresIn(is.AccessExpiresAt, now),
	}
}
