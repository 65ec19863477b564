package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
)

// sseEvent is one dispatched Server-Sent Event, or a heartbeat comment.
type sseEvent struct {
	id, event, data string
	heartbeat       bool
}

func (e sseEvent) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.data), &m); err != nil {
		t.Fatalf("event %s data %q: %v", e.event, e.data, err)
	}
	return m
}

// sseStream reads GET /v1/events. Everything it reads is also written to
// raw (the harness scans it for secrets, like the log).
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
}

// openStream opens GET base+/v1/events?query with lastID (if any) and
// checks the answer's headers.
func openStream(t *testing.T, client *http.Client, base, query, lastID string, raw io.Writer) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+testAPIKey)
	r.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		r.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(r)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		cancel()
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	s := &sseStream{t: t, resp: resp, cancel: cancel, events: make(chan sseEvent, 1024)}
	go s.read(raw)
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// read parses the stream by the WHATWG rules latch's output needs (id,
// event, data fields; comments; blank line dispatches).
func (s *sseStream) read(raw io.Writer) {
	defer close(s.events)
	sc := bufio.NewScanner(io.TeeReader(s.resp.Body, raw))
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				s.events <- cur
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{heartbeat: true}
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				cur.id = v
			case "event":
				cur.event = v
			case "data":
				cur.data = v
			}
		}
	}
}

// next returns the next event that is not a heartbeat; heartbeats counts
// the heartbeats skipped.
func (s *sseStream) next() (e sseEvent, heartbeats int) {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatal("the event stream ended")
			}
			if e.heartbeat {
				heartbeats++
				continue
			}
			return e, heartbeats
		case <-deadline:
			s.t.Fatal("no event within 10 s")
		}
	}
}

// heartbeat waits for a heartbeat, reporting whether one came within d.
func (s *sseStream) heartbeat(d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return false
			}
			if e.heartbeat {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

func (h *harness) stream(query, lastID string) *sseStream {
	return openStream(h.t, h.client, h.ts.URL, query, lastID, h.streamed)
}

func TestEventStream(t *testing.T) {
	h := newHarness(t)
	s := h.stream("", "")
	if !s.heartbeat(5 * time.Second) {
		t.Fatal("no heartbeat on a live stream")
	}
	c := h.create("alice", "")
	wantStatus(t, h.api("DELETE", "/v1/sessions/"+c.id, ""), http.StatusNoContent)
	e, _ := s.next()
	if e.event != "session.revoked" || e.id == "" {
		t.Fatalf("got %+v, want session.revoked with an id", e)
	}
	m := e.json(t)
	if m["session_id"] != c.id || m["subject"] != "alice" || m["reason"] != "admin" {
		t.Errorf("data = %v", m)
	}
	if at, err := time.Parse(time.RFC3339, m["at"].(string)); err != nil || at.IsZero() {
		t.Errorf("at = %v: %v", m["at"], err)
	}
	first := e.id

	// Two more while the subscriber is away; a resume gets exactly them.
	s.close()
	d := h.create("bob", "")
	wantStatus(t, h.api("POST", "/v1/sessions/"+d.id+"/renew", ""), http.StatusOK)
	wantStatus(t, h.api("DELETE", "/v1/subjects/bob/sessions?except="+d.id, ""), http.StatusOK)
	r := h.stream("", first)
	e1, _ := r.next()
	e2, _ := r.next()
	if e1.event != "session.renewed" || e2.event != "subject.revoked" || e2.json(t)["except"] != d.id {
		t.Fatalf("resumed with %+v, %+v", e1, e2)
	}

	// An unknown Last-Event-ID: reset first.
	u := h.stream("", "nonsense-1")
	if e, _ := u.next(); e.event != "reset" || e.json(t)["reason"] != "unknown-id" || e.id == "" {
		t.Fatalf("unknown Last-Event-ID: %+v, want a reset", e)
	}

	// The filter: only what was asked for.
	f := h.stream("?types=session.created,subject.revoked", "")
	h.create("carol", "")
	if e, _ := f.next(); e.event != "session.created" || e.json(t)["subject"] != "carol" {
		t.Fatalf("filtered: %+v", e)
	}
	wantProblem(t, h.api("GET", "/v1/events?types=session.revoked,bogus", ""), http.StatusBadRequest, CodeBadRequest)
	wantProblem(t, h.do(req{method: "GET", path: "/v1/events"}), http.StatusUnauthorized, CodeUnauthorized)

	// Key rotation is announced.
	wantStatus(t, h.api("POST", "/v1/keys/rotate", ""), http.StatusOK)
	if e, _ := r.next(); e.event != "keys.changed" || e.json(t)["reason"] != "rotated" || e.json(t)["kid"] == "" {
		t.Fatalf("after a rotation: %+v", e)
	}
}

func TestEventStreamRetention(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.EventRetention = time.Minute; o.EventRetentionCount = 2 })
	s := h.stream("", "")
	c := h.create("alice", "")
	h.api("DELETE", "/v1/sessions/"+c.id, "")
	e, _ := s.next()
	h.clock.Advance(2 * time.Minute)
	for range 3 {
		c := h.create("alice", "")
		h.api("DELETE", "/v1/sessions/"+c.id, "")
		s.next()
	}
	r := h.stream("", e.id)
	if e, _ := r.next(); e.event != "reset" {
		t.Fatalf("resume beyond the retention: %+v, want a reset", e)
	}
}

// The keyring's scheduled rotation is announced like an explicit one: once
// a successor is pre-published, the stream says keys.changed naming it, so
// clients refetch the JWKS at once. Maintenance that changes nothing says
// nothing.
func TestScheduledRotationAnnounced(t *testing.T) {
	h := newHarness(t)
	r := h.stream("?types=keys.changed", "")
	h.srv.maintainKeys(context.Background())
	h.clock.Advance(accesstoken.DefaultRotationPeriod)
	h.srv.maintainKeys(context.Background())
	e, _ := r.next()
	if e.event != "keys.changed" || e.json(t)["reason"] != "rotated" {
		t.Fatalf("after the scheduled rotation the stream sent %+v, want keys.changed", e)
	}
	var pending string
	for _, k := range h.srv.keys.Keys() {
		if k.State == accesstoken.KeyPending {
			pending = k.ID
		}
	}
	if pending == "" || e.json(t)["kid"] != pending {
		t.Fatalf("keys.changed names kid %v; the pre-published successor is %q", e.json(t)["kid"], pending)
	}
	// Maintenance that changes nothing announces nothing: the next event
	// on the stream is the explicit rotation's.
	h.srv.maintainKeys(context.Background())
	rot := h.api("POST", "/v1/keys/rotate", "")
	wantStatus(t, rot, http.StatusOK)
	if e, _ := r.next(); e.json(t)["kid"] != rot.json(t)["kid"] {
		t.Fatalf("after a maintenance that changed nothing and a rotation to %v, the stream sent %+v", rot.json(t)["kid"], e)
	}
}
