package latchclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event is one event of the GET /v1/events stream.
type Event struct {
	ID        string
	Type      string // session.revoked, session.renewed, session.refresh_reuse, subject.revoked, keys.changed, reset
	SessionID string
	Subject   string
	Except    string
	Reason    string
	KeyID     string
	At        time.Time
}

// runStream keeps the event stream open until ctx ends, reconnecting with
// Last-Event-ID after a failure. Every (dis)connection empties the cache.
func (c *Client) runStream(ctx context.Context) {
	lastID := ""
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		c.streamOnce(ctx, &lastID)
		c.cache.down()
		if time.Since(start) > 5*time.Second {
			backoff = 50 * time.Millisecond // it was up for a while: retry soon
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// deadAfter is how long a stream may stay silent before the connection is
// dropped and opened again (the cache stopped trusting it long before).
func (c *Client) deadAfter() time.Duration { return max(20*c.cache.bound, 5*time.Second) }

// streamOnce reads one connection of the stream until it fails.
func (c *Client) streamOnce(ctx context.Context, lastID *string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return fmt.Errorf("latchclient: GET /v1/events answered %d", resp.StatusCode)
	}
	c.cache.connected()

	// A watchdog drops a connection that went silent (a stalled peer keeps
	// TCP open forever).
	heardAt := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(c.deadAfter())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-heardAt:
				t.Reset(c.deadAfter())
			case <-t.C:
				cancel()
				return
			}
		}
	}()
	heard := func() {
		select {
		case heardAt <- struct{}{}:
		default:
		}
	}

	r := sseReader{r: bufio.NewReaderSize(resp.Body, 8192)}
	for {
		ev, comment, err := r.next()
		if err != nil {
			return err
		}
		if comment != "" {
			if age, ok := heartbeatAge(comment); ok {
				c.cache.proven(age)
			}
		} else {
			if ev.hasID {
				*lastID = ev.id
			}
			c.dispatch(ev.id, ev.typ, ev.data)
		}
		heard()
	}
}

// sseReader parses a text/event-stream, the fields latch sends of the
// WHATWG EventSource processing model: id (refused if it holds a NUL),
// event, data (lines joined by "\n") and comments. Lines end at "\n"; a
// trailing "\r" is dropped. An event is dispatched at the blank line after
// it if it has data or a type; an event cut off by the end of the stream is
// not.
type sseReader struct {
	r  *bufio.Reader
	ev sseEvent
}

type sseEvent struct {
	id, typ, data string
	hasID         bool // an id field came, possibly empty
}

// next returns the next dispatched event, or the next comment line (with
// its ':'), or the reader's error.
func (s *sseReader) next() (ev sseEvent, comment string, err error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return sseEvent{}, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			ev, s.ev = s.ev, sseEvent{}
			if ev.data != "" || ev.typ != "" {
				return ev, "", nil
			}
		case line[0] == ':':
			return sseEvent{}, line, nil
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				if !strings.ContainsRune(v, 0) {
					s.ev.id, s.ev.hasID = v, true
				}
			case "event":
				s.ev.typ = v
			case "data":
				if s.ev.data != "" {
					s.ev.data += "\n"
				}
				s.ev.data += v
			}
		}
	}
}

func (c *Client) dispatch(id, typ, data string) {
	var d struct {
		SessionID string    `json:"session_id"`
		Subject   string    `json:"subject"`
		Except    string    `json:"except"`
		Reason    string    `json:"reason"`
		KeyID     string    `json:"kid"`
		At        time.Time `json:"at"`
	}
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		// An event the cache cannot read might have been an invalidation.
		typ = "reset"
	}
	c.cache.apply(Event{ID: id, Type: typ, SessionID: d.SessionID, Subject: d.Subject, Except: d.Except, Reason: d.Reason, KeyID: d.KeyID, At: d.At})
}

// heartbeatAge parses a heartbeat comment, ": hb N", N the milliseconds
// since the replica last proved its link to the store. Other comments prove
// nothing.
func heartbeatAge(line string) (time.Duration, bool) {
	n, ok := strings.CutPrefix(line, ": hb ")
	if !ok || n == "" || len(n) > 9 {
		return 0, false
	}
	ms, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}
