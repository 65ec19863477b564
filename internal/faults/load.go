package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load drives replicas with mixed operations and records each in History.
// Every worker follows its own sessions, one subject per session, so it
// always knows what the right answer is (or that it cannot know, after a
// write whose answer it did not get). Create one with [NewLoad].
type Load struct {
	Replicas []string // base URLs
	APIKey   string
	History  *History
	// Pace, if set, is called before each request: the soak sets it to
	// hold a steady rate. It may return early when its context ends.
	Pace func(context.Context)

	client *http.Client
	tag    string
	// subjects numbers the sessions' subjects across every Run of the
	// Load: a worker's own count starts again with each Run, and a
	// subject revocation must never reach another session's subject.
	subjects atomic.Int64

	mu      sync.Mutex
	tracked []*tracked
}

// tracked is a session whose create was acknowledged, with what its
// worker knows of it when it let go of it.
type tracked struct {
	id, subject                 string
	sessionToken, refreshToken  string
	revoked                     bool // a revocation was acknowledged
	sessCertain, refreshCertain bool // the tokens above are current
}

// NewLoad returns a Load against replicas.
func NewLoad(replicas []string, apiKey string, h *History) *Load {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Load{Replicas: replicas, APIKey: apiKey, History: h,
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		tag:    fmt.Sprintf("%x", rand.Uint32())}
}

// Run runs workers goroutines until ctx ends.
func (l *Load) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx)
		}()
	}
	wg.Wait()
}

type answer struct {
	SessionToken string `json:"session_token"`
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
	Session      struct {
		ID            string    `json:"id"`
		IdleExpiresAt time.Time `json:"idle_expires_at"`
		ExpiresAt     time.Time `json:"expires_at"`
	} `json:"session"`
	Code string `json:"code"`
}

// do sends one request and records it; out receives a 2xx answer's body.
func (l *Load) do(ctx context.Context, op Op, method, path string, body any, out *answer) Op {
	if op.Replica < 0 {
		op.Replica = rand.IntN(len(l.Replicas))
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), method, l.Replicas[op.Replica]+path, rd)
	req.Header.Set("Authorization", "Bearer "+l.APIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if l.Pace != nil {
		l.Pace(ctx)
	}
	op.Start = time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		op.End = time.Now()
		op.Refused = errors.Is(err, syscall.ECONNREFUSED)
		op.Err = err.Error() // it quotes the URL, which never holds a token (they travel in bodies)
		l.History.Add(op)
		return op
	}
	var a answer
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	op.End = time.Now()
	op.Status = resp.StatusCode
	if rerr != nil {
		op.Status, op.Err = 0, "body cut off"
	}
	json.Unmarshal(raw, &a)
	op.Accepted = op.Status/100 == 2
	if !op.Accepted {
		op.Code = a.Code
	}
	if op.Accepted && out != nil {
		*out = a
	}
	if op.Accepted && (op.Kind == Refresh || op.Kind == Renew) {
		op.Next = a.RefreshToken
	}
	if op.Kind == Create && op.Accepted {
		op.Session = a.Session.ID
	}
	if op.Accepted {
		op.IdleExpires, op.Expires = a.Session.IdleExpiresAt, a.Session.ExpiresAt
	}
	l.History.Add(op)
	return op
}

// pause waits a little after an error, so a worker does not spin on a
// dead dependency.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Millisecond):
	}
}

func (l *Load) worker(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		subject := fmt.Sprintf("faults-%s-%d", l.tag, l.subjects.Add(1))
		var a answer
		op := l.do(ctx, Op{Kind: Create, Replica: -1, Subject: subject}, http.MethodPost, "/v1/sessions",
			map[string]any{"subject": subject, "data": map[string]int{"n": n}}, &a)
		if !op.Accepted {
			pause(ctx)
			continue
		}
		s := &tracked{id: a.Session.ID, subject: subject, sessionToken: a.SessionToken,
			refreshToken: a.RefreshToken, sessCertain: true, refreshCertain: true}
		access := a.AccessToken
		l.lifecycle(ctx, s, access)
		l.mu.Lock()
		l.tracked = append(l.tracked, s)
		l.mu.Unlock()
	}
}

// lifecycle exercises one session, then revokes it (by ID or by subject)
// or leaves it live for the final re-read.
func (l *Load) lifecycle(ctx context.Context, s *tracked, access string) {
	expect := func(certain bool) Expect {
		if certain {
			return Live
		}
		return Unknown
	}
	base := Op{Replica: -1, Session: s.id, Subject: s.subject}
	steps := 3 + rand.IntN(10)
	for i := 0; i < steps && ctx.Err() == nil; i++ {
		op := base
		switch r := rand.IntN(20); {
		case r < 7:
			op.Kind, op.Expect = VerifySession, expect(s.sessCertain)
			op = l.do(ctx, op, http.MethodPost, "/v1/sessions/verify", map[string]string{"session_token": s.sessionToken}, nil)
		case r < 12:
			op.Kind, op.Expect = VerifyAccess, expect(s.sessCertain)
			op = l.do(ctx, op, http.MethodPost, "/v1/sessions/verify", map[string]string{"access_token": access}, nil)
		case r < 19:
			op.Kind, op.Expect, op.Token = Refresh, expect(s.refreshCertain), s.refreshToken
			var a answer
			op = l.do(ctx, op, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": s.refreshToken}, &a)
			switch {
			case op.Accepted:
				s.refreshToken, access, s.refreshCertain = a.RefreshToken, a.AccessToken, true
			case op.Code == "refresh_reuse" || op.Code == "revoked":
				s.sessCertain, s.refreshCertain = false, false
				return // the retry of an applied rotation came after the grace: the server revoked it
			case !op.Answered() || op.Status >= 500:
				// The rotation may have been applied: retry the same token
				// (within the grace it yields the same successor).
				s.refreshCertain = false
			}
		default:
			op.Kind, op.Expect = Renew, expect(s.sessCertain)
			var a answer
			op = l.do(ctx, op, http.MethodPost, "/v1/sessions/"+s.id+"/renew", map[string]any{}, &a)
			switch {
			case op.Accepted:
				s.sessionToken, s.refreshToken, access = a.SessionToken, a.RefreshToken, a.AccessToken
				s.sessCertain, s.refreshCertain = true, true
			case !op.Answered() || op.Status >= 500:
				s.sessCertain, s.refreshCertain = false, false
				return // which tokens are current is unknown: let it go
			}
		}
		if !op.Accepted {
			pause(ctx)
		}
	}
	if rand.IntN(3) == 0 || ctx.Err() != nil {
		return // kept live: the final re-read checks it survived
	}
	byID := rand.IntN(2) == 0
	for ctx.Err() == nil {
		op := base
		if byID {
			op.Kind = Revoke
			op = l.do(ctx, op, http.MethodDelete, "/v1/sessions/"+s.id, nil, nil)
		} else {
			op.Kind = RevokeAll
			op = l.do(ctx, op, http.MethodDelete, "/v1/subjects/"+s.subject+"/sessions", nil, nil)
		}
		if op.Accepted {
			s.revoked = true
			break
		}
		s.sessCertain, s.refreshCertain = false, false // it may be revoked
		pause(ctx)
	}
	if !s.revoked {
		return
	}
	for range 2 {
		op := base
		op.Kind, op.Expect = VerifySession, Refused
		l.do(ctx, op, http.MethodPost, "/v1/sessions/verify", map[string]string{"session_token": s.sessionToken}, nil)
	}
}

// Reread reads back, on every replica in turn, every acknowledged write
// once the faults are over: each session created is found, a revoked one
// is refused, a live one's current session token is accepted and its last
// acknowledged refresh token still rotates. The operations are recorded
// with Final set, and a 503 is retried for up to a few seconds, so what
// the checker sees is the store's state, not a slow recovery.
func (l *Load) Reread(ctx context.Context) {
	l.mu.Lock()
	list := append([]*tracked(nil), l.tracked...)
	l.mu.Unlock()
	for i, s := range list {
		replica := i % len(l.Replicas)
		base := Op{Replica: replica, Session: s.id, Subject: s.subject, Final: true}
		try := func(op Op, method, path string, body any, out *answer) Op {
			deadline := time.Now().Add(5 * time.Second)
			for {
				got := l.do(ctx, op, method, path, body, out)
				if (got.Answered() && got.Status != http.StatusServiceUnavailable) || time.Now().After(deadline) {
					return got
				}
				pause(ctx)
			}
		}
		switch {
		case s.revoked:
			op := base
			op.Kind, op.Expect = VerifySession, Refused
			try(op, http.MethodPost, "/v1/sessions/verify", map[string]string{"session_token": s.sessionToken}, nil)
		default:
			op := base
			op.Kind, op.Expect = Reread, Live
			if !s.sessCertain {
				op.Expect = Unknown // the session may have been revoked by a retried revoke or reuse
			}
			try(op, http.MethodGet, "/v1/sessions/"+s.id, nil, nil)
			if s.sessCertain {
				op := base
				op.Kind, op.Expect = VerifySession, Live
				try(op, http.MethodPost, "/v1/sessions/verify", map[string]string{"session_token": s.sessionToken}, nil)
			}
			if s.sessCertain && s.refreshCertain {
				op := base
				op.Kind, op.Expect, op.Token = Refresh, Live, s.refreshToken
				try(op, http.MethodPost, "/v1/refresh", map[string]string{"refresh_token": s.refreshToken}, nil)
			}
		}
	}
}

// CloseIdleConnections closes the load's idle keep-alive connections, so
// a server's per-connection goroutines and files can be seen to end.
func (l *Load) CloseIdleConnections() { l.client.CloseIdleConnections() }

// Sessions is how many acknowledged creates the load tracked.
func (l *Load) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tracked)
}
