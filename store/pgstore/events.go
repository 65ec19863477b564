package pgstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// The event log ([store.EventLog]) on PostgreSQL: the table events
// (0002_events.sql), written by the same statement as the revocation or
// renewal it reports (queries.go), so an event exists exactly when its
// change committed. Its seq orders events by commit (see the migration), and
// a trigger NOTIFYs a channel per schema at commit.
//
// A subscriber holds one pooled connection that LISTENs, and reads the rows
// after the last seq it delivered whenever a notification arrives and at
// least every EventAliveInterval: each of those reads is a round trip that
// proves the link, so Alive is called as often. Events are kept for
// replay for store.DefaultEventRetention and at least eventKeepCount of them;
// Sweep trims the rest.

// eventKeepCount is how many of the newest events Sweep always keeps.
const eventKeepCount = 10_000

// eventBatch bounds one read of the events table.
const eventBatch = 1000

var _ store.EventLog = (*Store)(nil)

// eventChannel is the NOTIFY channel of schema, as the trigger names it
// (within the 63-byte limit whatever the schema's length).
func eventChannel(schema string) string {
	sum := md5.Sum([]byte(schema))
	return "latch_events_" + hex.EncodeToString(sum[:])[:16]
}

func (s *Store) eventsTable() string { return pgx.Identifier{s.q.schema}.Sanitize() + ".events" }

// Publish appends e as a transaction of its own; see [store.EventLog].
func (s *Store) Publish(ctx context.Context, e store.Event) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.eventsTable()+` (at, type, session_id, subject, except_id, reason, kid)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, sqlstore.EventArgs(e)...)
	if err != nil {
		return s.err(ctx, "publish event", err)
	}
	return nil
}

// Subscribe delivers the events committed at or after since, then new ones;
// see [store.EventLog].
func (s *Store) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.subscribeErr(ctx, err)
	}
	// The connection LISTENs: it goes back to no one else.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{eventChannel(s.q.schema)}.Sanitize()); err != nil {
		return s.subscribeErr(ctx, err)
	}
	// Start after the last event before since.
	var last int64
	if err := pc.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM `+s.eventsTable()+` WHERE at < $1`, store.UnixNano(since)).Scan(&last); err != nil {
		return s.subscribeErr(ctx, err)
	}
	read := `SELECT ` + sqlstore.EventColumns + ` FROM ` + s.eventsTable() +
		` WHERE seq > $1 ORDER BY seq LIMIT ` + strconv.Itoa(eventBatch)
	for {
		proof := time.Now()
		evs, err := readEvents(ctx, pc, read, &last)
		if err != nil {
			return s.subscribeErr(ctx, err)
		}
		if len(evs) > 0 {
			sink.Events(evs)
		}
		sink.Alive(proof)
		if len(evs) == eventBatch {
			continue // more waiting
		}
		wctx, cancel := context.WithTimeout(ctx, store.EventAliveInterval)
		_, err = pc.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil, pc.PgConn().IsClosed():
			// a notification, or the next read reports the closed link
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			// quiet: read anyway, as the proof of life
		default:
			return s.subscribeErr(ctx, err)
		}
	}
}

// subscribeErr is Subscribe's error once ctx has ended: ctx's own, as
// [store.EventLog] promises (a cancel that lands inside a query surfaces from
// pgx as a broken connection, which would otherwise read as the link failing
// and make the caller resubscribe); else the link's, matching ErrUnavailable.
func (s *Store) subscribeErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return s.err(ctx, "subscribe", err)
}

// isTimeout reports a wait that ended by its deadline.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func readEvents(ctx context.Context, c *pgx.Conn, sql string, last *int64) ([]store.Event, error) {
	rows, err := c.Query(ctx, sql, *last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.ScanEvents(rows, last)
}

// trimEvents deletes events older than the retention beyond the newest
// eventKeepCount (called by Sweep).
func (s *Store) trimEvents(ctx context.Context, now time.Time) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM `+s.eventsTable()+` WHERE at < $1 AND seq <= (SELECT max(seq) FROM `+s.eventsTable()+`) - $2`,
		store.UnixNano(now.Add(-store.DefaultEventRetention)), eventKeepCount)
	if err != nil {
		return s.err(ctx, "sweep events", err)
	}
	return nil
}
