package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestClockStepForward runs two replicas on one store (Redis, PostgreSQL,
// MariaDB), the second built
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
	t.Run("redis", func(t *testing.T) {
		_, url := redisURL(t)
		clockStep(t, url, redisTolerance)
	})
	t.Run("postgres", func(t *testing.T) {
		_, dsn := pgDatabase(t)
		clockStep(t, dsn.String(), 0)
	})
	t.Run("mariadb", func(t *testing.T) {
		clockStep(t, mariaURL(startMariaDB(t).Addr()), 0)
	})
}

// clockStep is TestClockStepForward on the store at url, whose staleness
// bound is tolerance.
func clockStep(t *testing.T, url string, tolerance time.Duration) {
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
	r := drive(t, d, 8, Options{Tolerance: tolerance, Timeouts: clockTimeouts}, &History{}, func(h *History) {
		time.Sleep(phase())
		for _, step := range steps {
			from := time.Now()
			setClock(step)
			probe := waitClock(t, d, 1, step)
			time.Sleep(2 * phase())
			setClock(0)
			h.StepClock(ClockStep{Replica: 1, Offset: step, From: from, To: time.Now()})
			waitClock(t, d, 1, 0)
			// The session the stepped replica created reads back on the
			// other with its deadline late by the step (measured from
			// when the create was sent), and no more.
			got := probeSession(t, d, 0, probe.ID)
			if late := got.IdleExpiresAt.Sub(probe.sent.Add(clockTimeouts.Idle)); late > step+probe.rtt || late < step-time.Second {
				t.Errorf("a session the replica %v ahead created reads back with its idle deadline %v late, want the step", step, late)
			}
			time.Sleep(phase())
		}
	})
	if r.ClockRefusals == 0 {
		t.Errorf("a step of %v refused nothing early: the step did not reach the sessions", steps[len(steps)-1])
	}
}

// probe is a session a test created outside the load, with the time the
// request was sent.
type probe struct {
	ID            string    `json:"id"`
	CreatedAt     time.Time `json:"created_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	sent          time.Time
	rtt           time.Duration // from sending the create to its answer
}

// waitClock waits until replica i's clock reads offset ahead (within a
// second): the created_at of a session it creates (not recorded: it is
// not part of the load) is compared with the time around the request. It
// returns the session that showed it.
func waitClock(t *testing.T, d *deployment, i int, offset time.Duration) probe {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v struct{ Session probe }
		before := time.Now()
		err := probeDo(d, i, http.MethodPost, "/v1/sessions", `{"subject":"clock-probe"}`, &v)
		after := time.Now()
		c := v.Session.CreatedAt
		if err == nil && !c.Before(before.Add(offset-time.Second)) && !c.After(after.Add(offset+time.Second)) {
			v.Session.sent, v.Session.rtt = before, after.Sub(before)
			return v.Session
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d's clock did not step to %v within 10 s (%v)", i, offset, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// probeSession reads session id back through replica i.
func probeSession(t *testing.T, d *deployment, i int, id string) probe {
	t.Helper()
	var v struct{ Session probe }
	if err := probeDo(d, i, http.MethodGet, "/v1/sessions/"+id, "", &v); err != nil {
		t.Fatalf("read the probe session back: %v", err)
	}
	return v.Session
}

func probeDo(d *deployment, i int, method, path, body string, out any) error {
	req, _ := http.NewRequest(method, d.urls()[i]+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+d.opts[i].APIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
