package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/latch-sessions/latch/store"
)

// The event log ([store.EventLog]) on Redis.
//
// Every write script that revokes or renews PUBLISHes its events on the
// channel "<prefix>events" itself, in the same atomic step as the write
// (scripts.go, emit): an event goes out exactly when its write happened,
// even if this process dies right after. Classic Pub/Sub rather than
// Streams or sharded Pub/Sub, because on a Cluster a script may only touch
// keys (and shard channels) of its own slot, so a per-slot stream would
// leave a replica reading 16,384 of them (XREAD cannot span slots), while a
// PUBLISH from any shard reaches every node over the cluster bus: one
// SUBSCRIBE on any node sees every shard's events. The price is that Pub/Sub
// keeps nothing: a subscriber whose connection drops misses what was sent
// meanwhile. Subscribe then fails, and the manager tells its subscribers to
// reset (and keeps its own window of events for resuming clients), so a gap
// is never silent.
//
// Liveness is proven end to end: every EventAliveInterval/2 the subscriber
// publishes a heartbeat on a channel of its own, subscribed on the same
// connection as the event channel, and reports Alive when it comes back.
// A stalled or cut connection stops the echoes, so the manager stops its
// streams' heartbeats within the staleness bound; after echoTimeout without
// one, Subscribe fails.

// echoTimeout is how long Subscribe waits for a heartbeat echo before it
// declares the link dead and returns.
const echoTimeout = time.Second

type events struct {
	evChannel string // "<prefix>events"
	evEpoch   string // random per Store: event IDs are unique across replicas
	evSeq     atomic.Uint64
}

func newEvents(prefix string) events {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return events{evChannel: prefix + "events", evEpoch: hex.EncodeToString(b[:])}
}

// eventID returns the base of the IDs of one script's events (the script
// appends ".n").
func (e *events) eventID() string {
	return e.evEpoch + "-" + strconv.FormatUint(e.evSeq.Add(1), 36)
}

var _ store.EventLog = (*Store)(nil)

// Publish publishes e on the event channel; see [store.EventLog].
func (s *Store) Publish(ctx context.Context, e store.Event) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	id := s.eventID() + ".1"
	payload := encodeEvent(id, e.Type, "", "", e.Subject, "", e.Reason, be64(orNow(e.At)), e.KeyID)
	if err := s.client.Do(ctx, s.client.B().Publish().Channel(s.evChannel).Message(payload).Build()).Error(); err != nil {
		return unavailable("publish event", err)
	}
	return nil
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// Subscribe delivers events published from now on (Pub/Sub keeps none, so
// since is not reached back to) until ctx ends or the link fails; see
// [store.EventLog] and the notes at the top of this file.
func (s *Store) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hb := s.evChannel + ":hb:" + s.eventID()
	var echoed atomic.Int64
	echoed.Store(time.Now().UnixNano())
	errc := make(chan error, 1)
	go func() {
		errc <- s.client.Receive(ctx, s.client.B().Subscribe().Channel(s.evChannel, hb).Build(), func(m rueidis.PubSubMessage) {
			if m.Channel == hb {
				if at, err := strconv.ParseInt(m.Message, 10, 64); err == nil {
					echoed.Store(time.Now().UnixNano())
					sink.Alive(time.Unix(0, at)) // proven no later than when it was sent
				}
				return
			}
			if e, err := s.decodeEvent(m.Message); err == nil {
				sink.Events([]store.Event{e})
			}
			// An undecodable message is not latch's (another writer on the
			// channel); it cannot revoke anything, so it is skipped.
		})
	}()
	tick := time.NewTicker(store.EventAliveInterval / 2)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				err = errors.New("subscription ended")
			}
			return unavailable("subscribe", err)
		case <-tick.C:
			if time.Since(time.Unix(0, echoed.Load())) > echoTimeout {
				cancel()
				<-errc
				if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				return unavailable("subscribe", errors.New("no heartbeat echo within 1s"))
			}
			now := time.Now().UnixNano()
			pctx, pcancel := context.WithTimeout(ctx, store.EventAliveInterval)
			_ = s.client.Do(pctx, s.client.B().Publish().Channel(hb).Message(strconv.FormatInt(now, 10)).Build()).Error()
			pcancel() // a failed publish shows as a missing echo
		case <-ctx.Done():
			<-errc
			return ctx.Err()
		}
	}
}

// encodeEvent is the payload the scripts' emit builds: a version byte, then
// id, type, kp, member, subject, except member, reason as uvarint-length
// prefixed strings, the 8-byte time, and (Publish only) the key ID.
func encodeEvent(id, typ, kp, m, subj, x, reason, at, kid string) string {
	b := []byte{1}
	for _, f := range []string{id, typ, kp, m, subj, x, reason} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = append(b, at...)
	b = binary.AppendUvarint(b, uint64(len(kid)))
	return string(append(b, kid...))
}

var errBadEvent = errors.New("redisstore: malformed event message")

func (s *Store) decodeEvent(msg string) (store.Event, error) {
	var e store.Event
	if len(msg) < 1 || msg[0] != 1 {
		return e, errBadEvent
	}
	p := 1
	field := func() (string, bool) {
		n, k := binary.Uvarint([]byte(msg[p:min(len(msg), p+10)]))
		if k <= 0 || uint64(len(msg)-p-k) < n {
			return "", false
		}
		f := msg[p+k : p+k+int(n)]
		p += k + int(n)
		return f, true
	}
	var f [7]string
	for i := range f {
		v, ok := field()
		if !ok {
			return e, errBadEvent
		}
		f[i] = v
	}
	if len(msg)-p < 8 {
		return e, errBadEvent
	}
	at := binary.BigEndian.Uint64([]byte(msg[p : p+8]))
	p += 8
	e.ID, e.Type, e.Subject, e.Reason = f[0], f[1], f[4], f[6]
	if e.ID == "" || e.Type == "" {
		return e, errBadEvent
	}
	e.At = time.Unix(0, int64(at)).UTC()
	if p < len(msg) {
		if kid, ok := field(); ok {
			e.KeyID = kid
		}
	}
	if kp, m := f[2], f[3]; m != "" || f[5] != "" {
		tag, err := s.tagOf(kp)
		if err != nil {
			return e, err
		}
		if m != "" {
			if e.SessionID, err = parseMember(tag, m); err != nil {
				return e, err
			}
		}
		if f[5] != "" {
			if e.Except, err = parseMember(tag, f[5]); err != nil {
				return e, err
			}
		}
	}
	return e, nil
}

// tagOf parses the subject tag out of a slot prefix "<prefix>{t:abcd}:".
func (s *Store) tagOf(kp string) (uint16, error) {
	h := kp[min(len(kp), len(s.prefix)):]
	if len(h) != 9 || h[:3] != "{t:" || h[7:] != "}:" {
		return 0, fmt.Errorf("%w: slot prefix", errBadEvent)
	}
	v, err := strconv.ParseUint(h[3:7], 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: slot prefix", errBadEvent)
	}
	return uint16(v), nil
}
