package faults

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latch-sessions/latch/accesstoken"
	"github.com/latch-sessions/latch/internal/serveproc"
)

// clockTimeouts are the lifetimes the clock test runs latch serve with:
// short enough that a step of minutes expires what the other replica
// wrote, long enough that nothing expires otherwise while it runs.
var clockTimeouts = Timeouts{Idle: time.Minute, Absolute: 24 * time.Hour, AccessTTL: time.Minute, Leeway: accesstoken.DefaultLeeway}

// TestClockStepForward runs two replicas on one Redis, the second built
// with the latchfaults tag and its clock read from a file, and under load
// steps that replica's clock forward, holds it for two phases and sets it
// right again: first by 20 s (less than the access tokens' leeway and every
// lifetime: nothing may be refused at all), then by 2 min (more than the
// idle timeout and the access-token TTL: the stepped replica sees the
// other's sessions and tokens as expired, and the other sees its tokens as
// issued in the future; the long form adds 1 h). The checker, told the
// steps and the lifetimes, proves what must hold (see [Timeouts]): no
// revoked session accepted by either replica, nothing acknowledged lost,
// one successor per refresh token, refusals only where the step explains
// them, and deadlines the stepped replica wrote late by at most its step.
func TestClockStepForward(t *testing.T) {
	skipShort(t)
	_, url := redisURL(t)
	offset := filepath.Join(t.TempDir(), "clock-offset")
	setClock := func(d time.Duration) {
		if err := os.WriteFile(offset+".new", []byte(d.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(offset+".new", offset); err != nil { // never a half-written file
			t.Fatal(err)
		}
	}
	setClock(0)
	d := deployWith(t, 2, url, func(i int, o *serveproc.Options) {
		o.Tags = "latchfaults"
		o.Args = []string{"--idle-timeout", clockTimeouts.Idle.String(), "--absolute-timeout", clockTimeouts.Absolute.String(),
			"--access-ttl", clockTimeouts.AccessTTL.String(), "--touch-interval", "5s"}
		if i == 1 {
			o.Env = append(o.Env, "LATCH_FAULTS_CLOCK_FILE="+offset)
		}
	})
	steps := []time.Duration{20 * time.Second, 2 * time.Minute}
	if long() {
		steps = append(steps, time.Hour)
	}
	r := drive(t, d, 8, Options{Tolerance: redisTolerance, Timeouts: clockTimeouts}, &History{}, func(h *History) {
		time.Sleep(phase())
		for _, step := range steps {
			from := time.Now()
			setClock(step)
			waitClock(t, d, 1, step)
			time.Sleep(2 * phase())
			setClock(0)
			h.StepClock(ClockStep{Replica: 1, Offset: step, From: from, To: time.Now()})
			waitClock(t, d, 1, 0)
			time.Sleep(phase())
		}
	})
	if r.ClockRefusals == 0 {
		t.Errorf("a step of %v refused nothing early: the step did not reach the sessions", steps[len(steps)-1])
	}
	if r.MaxExtension < steps[len(steps)-1]/2 {
		t.Errorf("no read-back deadline was extended by the step (max %v): the stepped replica wrote no session that was read back", r.MaxExtension)
	}
}

// waitClock waits until replica i's clock reads offset ahead (within a
// second): the created_at of a session it creates (not recorded: it is
// not part of the load) is compared with the time around the request.
func waitClock(t *testing.T, d *deployment, i int, offset time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := time.Now()
		req, _ := http.NewRequest(http.MethodPost, d.urls()[i]+"/v1/sessions", bytes.NewReader([]byte(`{"subject":"clock-probe"}`)))
		req.Header.Set("Authorization", "Bearer "+d.opts[i].APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		after := time.Now()
		if err == nil {
			var v struct {
				Session struct {
					CreatedAt time.Time `json:"created_at"`
				} `json:"session"`
			}
			json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			c := v.Session.CreatedAt
			if !c.Before(before.Add(offset-time.Second)) && !c.After(after.Add(offset+time.Second)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d's clock did not step to %v within 10 s (%v)", i, offset, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
