package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/latch-sessions/latch/store"
	"github.com/latch-sessions/latch/store/internal/eventbus"
)

// DefaultLockTimeout is how long Open waits for the file lock when
// [Options.LockTimeout] is zero.
const DefaultLockTimeout = time.Second

// DefaultSweepBatch is how many expired records Sweep deletes per
// transaction when [Options.SweepBatch] is zero.
const DefaultSweepBatch = 1000

// schemaVersion is stored in the meta bucket; Open refuses files written by
// a newer layout rather than misreading them.
const schemaVersion = 1

var (
	bucketRecords  = []byte("records")
	bucketSubjects = []byte("subjects")
	bucketExpiry   = []byte("expiry")
	bucketMeta     = []byte("meta")

	keySchema  = []byte("schema")
	keyKeyring = []byte("keyring")
)

// Options configure Open. The zero value (or a nil *Options) is the safe
// default: fsync on every commit and a one-second lock timeout.
type Options struct {
	// LockTimeout bounds how long Open waits for another process to release
	// the file before failing with [ErrLocked]. Zero means
	// [DefaultLockTimeout]; it is never infinite.
	LockTimeout time.Duration

	// NoSync skips the fsync after each commit. Writes then survive a
	// process crash but not an OS crash or power cut, which may also corrupt
	// the file. For tests and benchmarks only.
	NoSync bool

	// SweepBatch is the largest number of expired records Sweep deletes in
	// one transaction, so a large backlog never holds the writer for long.
	// Zero means [DefaultSweepBatch].
	SweepBatch int

	// CacheBytes is the memory budget (estimated) of the cache of decoded
	// records that spares a validation its read transaction. The cache is
	// exact: a committed write drops the records it wrote before it
	// returns, and no other process can write the file. Zero means
	// [DefaultCacheBytes]; negative turns the cache off.
	CacheBytes int
}

// ErrLocked matches the error Open returns when another process holds the
// file open. The error itself is a [*LockedError] naming the path.
var ErrLocked = errors.New("boltstore: database file is in use by another process")

// LockedError is returned by Open when the file's lock was not released
// within [Options.LockTimeout]. It matches [ErrLocked] and bbolt's timeout
// error with errors.Is.
type LockedError struct {
	Path    string        // the file Open was given
	Timeout time.Duration // how long Open waited
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("boltstore: %s is in use by another process (still locked after %v); "+
		"stop the other process (another latch serve?) or use a different data file", e.Path, e.Timeout)
}

// Is reports whether target is ErrLocked or bbolt's lock timeout error.
func (e *LockedError) Is(target error) bool {
	return target == ErrLocked || target == berrors.ErrTimeout
}

// Store is a [store.Store] in one bbolt file. It also implements
// [store.Sweeper], [store.KeyStore] and [store.Pinger]. All methods are safe
// for concurrent use. Create one with [Open]; the zero value is not usable.
type Store struct {
	db         *bolt.DB
	path       string
	sweepBatch int

	// Group commit; see write. commitMode is for benchmarks only.
	commitMode int
	mu         sync.Mutex
	queue      []*writeReq
	leading    bool

	events *eventbus.Log // in-process: a bbolt file has one process
	cache  *recordCache  // decoded records; see recordCache
	// keyringVersion is the stored keyring's version plus one, once
	// known (0: not read yet); see KeyringVersion.
	keyringVersion atomic.Uint64
}

// Open opens the store in the bbolt file at path, creating the file (mode
// 0600) and its parent directory (mode 0700) if they do not exist. A nil
// opts means the defaults. If another process has the file open, Open fails
// within opts.LockTimeout with an error matching [ErrLocked].
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = DefaultSweepBatch
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if path == "" {
		return nil, errors.New("boltstore: open: empty path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      o.LockTimeout,
		NoSync:       o.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &LockedError{Path: path, Timeout: o.LockTimeout}
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	if created && !o.NoSync {
		// Make the new file's directory entry durable too.
		if err := syncDir(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
		}
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return &Store{db: db, path: path, sweepBatch: o.SweepBatch, events: eventbus.New(store.DefaultEventRetention),
		cache: newRecordCache(o.CacheBytes)}, nil
}

// syncDir fsyncs a directory, so an entry created in it survives a crash.
// Windows cannot sync a directory (NTFS journals the entry itself).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func initSchema(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		// A new file is empty; a bbolt file of another program is not.
		if k, _ := tx.Cursor().First(); k != nil {
			return errors.New("not a latch data file (a bbolt file without latch's schema)")
		}
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := meta.Get(keySchema); v != nil {
		if len(v) != 8 {
			return errors.New("unreadable schema version; not a latch data file?")
		}
		if n := binary.BigEndian.Uint64(v); n != schemaVersion {
			return fmt.Errorf("data file has schema version %d, this build reads version %d", n, schemaVersion)
		}
	} else if err := meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, schemaVersion)); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketRecords, bucketSubjects, bucketExpiry} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file, waiting for a write in progress. Calls after Close
// fail with an error matching [store.ErrUnavailable].
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// Path returns the file the store was opened with.
func (s *Store) Path() string { return s.path }

// Ping reports whether the file is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, "ping", func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRecords) == nil {
			return errors.New("records bucket missing")
		}
		return nil
	})
}

// Errors for arguments the store refuses; all match store.ErrInvalid.
var (
	errSubjectLen = fmt.Errorf("boltstore: %w: subject must be 1 to %d bytes", store.ErrInvalid, store.MaxSubjectLen)
)

// encodable refuses, with an error matching store.ErrInvalid and
// store.ErrUnencodable, a record the codec cannot encode (a time outside
// 1678–2262, a field over 1 MiB), before any transaction starts.
func encodable(op string, r *store.Record) error {
	if _, err := r.MarshalBinary(); err != nil {
		return fmt.Errorf("boltstore: %s: %w: %w", op, store.ErrInvalid, err)
	}
	return nil
}

// orNow substitutes the store's clock for a zero time, as the contract
// allows; a revocation at the zero time would otherwise not be one.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// unavailable wraps err so it matches store.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("boltstore: %s: %w: %w", op, store.ErrUnavailable, err)
}

// verdict reports whether err is an answer of the store contract (or a
// refused argument) rather than a failure. Transaction functions return
// verdicts only before they modify anything; any other error aborts the
// transaction.
func verdict(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrInvalid)
}

// mapErr passes verdicts and ErrUnavailable through and turns everything
// else (I/O, bbolt errors, a closed database) into ErrUnavailable.
func mapErr(op string, err error) error {
	if err == nil || verdict(err) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return unavailable(op, err)
}

func ctxErr(op string, ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return unavailable(op, err)
	}
	return nil
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, op string, fn func(*bolt.Tx) error) (err error) {
	if err := ctxErr(op, ctx); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = unavailable(op, fmt.Errorf("panic in bbolt read: %v", p))
		}
	}()
	return mapErr(op, s.db.View(fn))
}

// A writeReq is one write waiting for a group commit.
type writeReq struct {
	ctx  context.Context
	op   string
	fn   func(*bolt.Tx) error
	done chan error // buffered; receives errLead or the final result
	// taken is set, under Store.mu, once a leader took the write into a
	// transaction; before that it may be withdrawn.
	taken bool
}

var errLead = errors.New("lead")

// write runs fn in a write transaction and returns after it committed (and,
// unless NoSync, was fsync'ed).
//
// Writes are group-committed: the first writer to arrive becomes the leader
// and commits at once; writers that arrive meanwhile queue up, and when the
// leader's commit is done the first of them leads the next commit of the
// whole queue. No writer waits for a timer. A queued writer whose context
// ends gives up at once with ErrUnavailable (see abandon).
//
// fn must not modify the transaction before it returns a verdict (see
// verdict); any other error from fn rolls the shared transaction back, and
// the other writers of the group are retried without it.
func (s *Store) write(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctxErr(op, ctx); err != nil {
		return err
	}
	req := &writeReq{ctx: ctx, op: op, fn: fn, done: make(chan error, 1)}
	if s.commitMode != groupCommit {
		return s.writeAlone(req)
	}
	s.mu.Lock()
	s.queue = append(s.queue, req)
	if s.leading {
		s.mu.Unlock()
		select {
		case err := <-req.done:
			if err != errLead {
				return err
			}
		case <-ctx.Done():
			return s.abandon(req)
		}
		s.mu.Lock()
	} else {
		s.leading = true
	}
	group := s.queue
	s.queue = nil
	for _, r := range group {
		r.taken = true
	}
	s.mu.Unlock()

	s.commit(group)

	s.mu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].done <- errLead
	} else {
		s.leading = false
	}
	s.mu.Unlock()
	return <-req.done
}

// abandon withdraws a queued write whose context ended, so a stalled
// commit (a hung disk) cannot hold every caller past its deadline. If a
// leader already took the write into its transaction, the outcome is
// unknown: the error says so.
func (s *Store) abandon(req *writeReq) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.taken {
		return unavailable(req.op, fmt.Errorf("gave up waiting for the commit, the write may or may not be stored: %w", req.ctx.Err()))
	}
	// Not taken, so anything in done is a promotion: pass it on.
	promoted := len(req.done) > 0
	if i := slices.Index(s.queue, req); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
	}
	if promoted {
		if len(s.queue) > 0 {
			s.queue[0].done <- errLead
		} else {
			s.leading = false
		}
	}
	return unavailable(req.op, req.ctx.Err())
}

// Commit modes; only benchmarks change the default.
const (
	groupCommit = iota
	updatePerWrite
	boltBatch
)

// writeAlone runs one write in its own transaction (updatePerWrite) or
// through bbolt's timer-based DB.Batch, for comparison with groupCommit.
func (s *Store) writeAlone(r *writeReq) error {
	var res error
	txfn := func(tx *bolt.Tx) error {
		res = run(tx, r)
		if res != nil && !verdict(res) {
			return res
		}
		return nil
	}
	var err error
	if s.commitMode == boltBatch {
		err = s.db.Batch(txfn)
	} else {
		err = s.db.Update(txfn)
	}
	if err != nil {
		return mapErr(r.op, err)
	}
	return res
}

// commit runs the group in one transaction and delivers each result.
func (s *Store) commit(group []*writeReq) {
	results := make([]error, len(group))
	for len(group) > 0 {
		failed := -1
		err := safeUpdate(s.db, func(tx *bolt.Tx) error {
			for i, r := range group {
				if err := r.ctx.Err(); err != nil {
					// Gave up while queued: skip it, nothing was written.
					results[i] = unavailable(r.op, err)
					continue
				}
				results[i] = run(tx, r)
				if results[i] != nil && !verdict(results[i]) {
					failed = i
					return results[i]
				}
			}
			return nil
		})
		if failed >= 0 {
			// The transaction was rolled back: report the culprit, retry
			// the others without it.
			group[failed].done <- mapErr(group[failed].op, results[failed])
			group = append(group[:failed:failed], group[failed+1:]...)
			results = results[:len(group)]
			continue
		}
		for i, r := range group {
			if err != nil {
				r.done <- unavailable(r.op, err)
			} else {
				r.done <- results[i]
			}
		}
		return
	}
}

// safeUpdate is db.Update that turns a panic inside bbolt (say, on a
// corrupt page) into an error, so the group leader always hands over and
// no writer waits forever. bbolt rolls the transaction back on the way out.
func safeUpdate(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in bbolt commit: %v", p)
		}
	}()
	return db.Update(fn)
}

// run calls one writer's function, turning a panic into an error that
// aborts the transaction.
func run(tx *bolt.Tx, r *writeReq) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in bbolt write: %v", p)
		}
	}()
	return r.fn(tx)
}

// Key encodings.

// deadlineKey returns the expiry index key of a record: its deadline as
// order-preserving big-endian Unix nanoseconds, then its ID. A zero
// deadline sorts first, so such a record is swept at once.
func deadlineKey(r *store.Record) []byte {
	k := make([]byte, 8+store.IDLen)
	binary.BigEndian.PutUint64(k, sortableTime(r.Deadline()))
	copy(k[8:], r.ID[:])
	return k
}

func sortableTime(t time.Time) uint64 {
	n := int64(math.MinInt64)
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return uint64(n) ^ 1<<63
}

// subjectPrefix is the subject index prefix of subject: its length as two
// bytes, then the subject. The length makes prefixes of different subjects
// disjoint, whatever bytes the subjects contain.
func subjectPrefix(subject string) []byte {
	k := make([]byte, 2, 2+len(subject)+store.IDLen)
	binary.BigEndian.PutUint16(k, uint16(len(subject)))
	return append(k, subject...)
}

func subjectKey(subject string, id store.ID) []byte {
	return append(subjectPrefix(subject), id[:]...)
}

func validSubject(subject string) error {
	if len(subject) == 0 || len(subject) > store.MaxSubjectLen {
		return errSubjectLen
	}
	return nil
}
