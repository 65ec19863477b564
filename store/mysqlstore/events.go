package mysqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/sqlstore"
)

// The event log ([store.EventLog]) on MySQL/MariaDB: the table latch_events
// (0004_events.sql), written in the same transaction as the revocation or
// renewal it reports (ops.go), so an event exists exactly when its change
// committed. Its seq orders events by commit (see the migration).
//
// MySQL has no LISTEN/NOTIFY, so a subscriber polls: it holds one pooled
// connection and reads the rows after the last seq it delivered every
// eventPollInterval. Each read is a round trip that proves the link; Alive
// is called with the time the read was sent (a proof can be no newer than
// the question). Events are kept for replay for store.DefaultEventRetention
// and at least eventKeepCount of them; Sweep trims the rest.

// eventKeepCount is how many of the newest events Sweep always keeps.
const eventKeepCount = 10_000

// eventBatch bounds one read of the events table.
const eventBatch = 1000

// eventPollInterval is the time between two polls' sending. Half of
// store.EventAliveInterval, so Alive keeps its promise even when a poll
// takes a while to answer, and an event waits 12.5 ms for its poll on
// average; a poll is one indexed range read that usually finds nothing.
const eventPollInterval = store.EventAliveInterval / 2

var _ store.EventLog = (*Store)(nil)

// Statement texts of the event log.
const (
	// Draws n numbers and locks the counter until commit (see the
	// migration); the result's LastInsertId is the highest.
	sqlEventSeq    = `UPDATE latch_event_seq SET seq = LAST_INSERT_ID(seq + ?) WHERE id = 1`
	sqlEventInsert = `INSERT INTO latch_events (` + sqlstore.EventColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	sqlEventsAt    = `SELECT COALESCE(MAX(seq), 0) FROM latch_events WHERE at < ?`
	sqlTrimSeq     = `SELECT seq FROM latch_event_seq WHERE id = 1`
	// One small batch; trimEvents loops. Old rows are no writer's: the
	// delete waits for no one and no one waits for it.
	sqlTrim = `DELETE FROM latch_events WHERE at < ? AND seq <= ? ORDER BY seq LIMIT ?`
)

var sqlEvents = `SELECT ` + sqlstore.EventColumns + ` FROM latch_events WHERE seq > ? ORDER BY seq LIMIT ` + strconv.Itoa(eventBatch)

// appendEvents writes evs in tx, numbered in order after every event
// committed before. It takes the counter's lock: the transaction's last
// (see the migration).
func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, evs []store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	res, err := tx.StmtContext(ctx, s.stmts.eventSeq).ExecContext(ctx, len(evs))
	if err != nil {
		return err
	}
	last, err := res.LastInsertId()
	if err != nil {
		return err
	}
	insert := tx.StmtContext(ctx, s.stmts.eventInsert)
	for i, e := range evs {
		if _, err := insert.ExecContext(ctx, append([]any{last - int64(len(evs)-1-i)}, sqlstore.EventArgs(e)...)...); err != nil {
			return err
		}
	}
	return nil
}

// Publish appends e as a transaction of its own; see [store.EventLog].
func (s *Store) Publish(ctx context.Context, e store.Event) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.appendEvents(ctx, tx, []store.Event{e}) }); err != nil {
		return s.err(ctx, "publish event", err)
	}
	return nil
}

// Subscribe delivers the events committed at or after since, then new ones;
// see [store.EventLog].
func (s *Store) Subscribe(ctx context.Context, since time.Time, sink store.EventSink) error {
	// One connection for the subscription's life, so its polls never wait
	// for the pool behind the store's other calls.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.subscribeErr(ctx, err)
	}
	defer conn.Close()
	// Start after the last event before since.
	var last int64
	err = s.poll(ctx, func(ctx context.Context) error {
		return conn.QueryRowContext(ctx, sqlEventsAt, store.UnixNano(since)).Scan(&last)
	})
	if err != nil {
		return s.subscribeErr(ctx, err)
	}
	tick := time.NewTicker(eventPollInterval)
	defer tick.Stop()
	for {
		proof := time.Now()
		var evs []store.Event
		err := s.poll(ctx, func(ctx context.Context) error {
			var err error
			evs, err = readEvents(ctx, conn, &last)
			return err
		})
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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// poll runs one read of a subscription within the per-call deadline.
func (s *Store) poll(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return f(ctx)
}

// subscribeErr is Subscribe's error once ctx has ended: ctx's own, as
// [store.EventLog] promises (a cancel inside a query surfaces from the
// driver as a failed query); else the link's, matching ErrUnavailable.
func (s *Store) subscribeErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return s.err(ctx, "subscribe", err)
}

func readEvents(ctx context.Context, conn *sql.Conn, last *int64) ([]store.Event, error) {
	rows, err := conn.QueryContext(ctx, sqlEvents, *last)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.ScanEvents(rows, last)
}

// trimBatch bounds the rows one trimming DELETE removes.
const trimBatch = 1000

// trimEvents deletes events older than the retention beyond the newest
// eventKeepCount (called by Sweep), in short autocommit batches.
func (s *Store) trimEvents(ctx context.Context, now time.Time) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var newest int64
	if err := s.db.QueryRowContext(ctx, sqlTrimSeq).Scan(&newest); err != nil {
		return s.err(ctx, "sweep events", err)
	}
	cutoff := store.UnixNano(now.Add(-store.DefaultEventRetention))
	for {
		var n int64
		err := s.retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, sqlTrim, cutoff, newest-eventKeepCount, trimBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return s.err(ctx, "sweep events", err)
		}
		if n < trimBatch {
			return nil
		}
	}
}
