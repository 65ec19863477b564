// Package store defines the contract between latch's session manager and the
// backends that keep session records: the [Store] interface, the [Record] it
// stores, optional capabilities, and the sentinel errors every backend returns.
//
// Most users never call a Store directly: they pass one to latch.New and use
// the Manager. Implementers should read the whole contract below and run
// the conformance suite in package storetest from their tests.
//
// # Contract
//
// Errors. A store reports "no such record" with an error matching
// [ErrNotFound], a failed compare-and-swap with [ErrConflict], a record or
// argument the contract forbids with [ErrInvalid] (see [Validate]), and any
// failure to reach or understand its backend (network, I/O, timeout, a corrupt
// record, a cancelled context) with an error matching [ErrUnavailable]. The
// manager treats every ErrUnavailable as "not authenticated": a store must
// never answer a system failure with a record. A write that fails with
// ErrUnavailable may or may not have been applied (the backend may have
// committed it just before the connection or the context ended); callers
// that must know re-read. A backend's transient conflicts (a deadlock, a
// serialization failure) are the store's to retry: they are not ErrConflict,
// which means only a lost compare-and-swap or a revoked record.
//
// Contexts. A call whose context is already done fails with an error that
// matches both ErrUnavailable and ctx.Err() (context.Canceled or
// context.DeadlineExceeded) and changes nothing. A context that ends during
// a call gives an error matching ErrUnavailable, and ctx.Err() too whenever
// the backend's client reports it.
//
// Ownership. Records returned by a store are shared and read-only: callers
// must not modify them (use [Record.Clone]). A Record passed to a store is
// read during the call only; the store keeps its own copy.
//
// Versions. Every successful write of a record (Create, Update,
// RotateRefresh, Revoke, RevokeSubject) stores it with a version one higher
// than before; Create stores version 1. Update is a compare-and-swap on the
// version, so two writers that read the same version never silently overwrite
// each other: one wins, the other gets ErrConflict and retries from a fresh read.
//
// Revocation. Revoking sets RevokedAt and RevokeReason, bumps the version and
// removes the session from its subject's index at once; the record itself may
// be kept as a tombstone until its deadline so that its tokens are reported as
// revoked rather than unknown. A revoked record is never live again: Update
// and RotateRefresh on it fail with ErrConflict.
//
// Expiry. A record is live until [Record.Deadline], the earlier of its idle
// and absolute deadlines. From then on a store may discard it; stores with
// native TTL (Redis) do so themselves, others implement [Sweeper]. The manager
// checks deadlines on every read, so a store may return a record that has just
// expired. Listing and eviction take the caller's notion of now, so tests
// can use a fake clock. RevokeSubject does not judge deadlines: a caller
// whose clock runs ahead of the other replicas' would otherwise skip
// sessions they still accept, and answer that it revoked them all.
//
// Times. Every time passed to a store (CreatedAt, the at of a revocation)
// is non-zero; a store may substitute its own clock for a zero one. Stores
// keep every time to the nanosecond, exactly as given (a store that keeps
// microseconds, as SQL TIMESTAMP(6) columns do, is not conforming; SQL stores
// keep times as BIGINT Unix nanoseconds, see [UnixNano]), between the years
// 1678 and 2262, the range of Unix nanoseconds in an int64; a time outside
// it is refused with ErrInvalid and ErrUnencodable. An instant exactly at the
// Unix epoch reads back as the zero Time. Times read back in UTC.
//
// Field bounds. A store keeps, byte for byte, a Subject of 1..[MaxSubjectLen]
// bytes, Data and Claims of up to [MaxValueLen] bytes each, an IP of up to
// [MaxIPLen], a UserAgent of up to [MaxUserAgentLen] and a RevokeReason of up
// to [MaxReasonLen] bytes; strings are opaque bytes (not necessarily UTF-8),
// except ACR and AMR: an ACR of up to [MaxACRLen] bytes and up to
// [MaxAMRValues] AMR values of 1..[MaxAMRValueLen] bytes each, all of
// visible ASCII other than '"' and '\' (an empty AMR reads back as nil).
// It refuses anything longer with ErrInvalid rather than truncating it
// ([Validate] and [ValidReason] check all of this). SQL stores therefore use
// binary column types that hold these sizes: Data and Claims need more than
// 65,535 bytes — PostgreSQL bytea, MySQL/MariaDB MEDIUMBLOB (a BLOB or a
// VARBINARY holds only 65,535) — and the others VARBINARY(n)/bytea, never a
// text type, whose collation and character set would change or refuse bytes.
//
// Fields. Update writes every field of the record except ID and Subject. It
// is not a way to revoke: use Revoke, which also maintains the index. Update
// and RotateRefresh do not judge deadlines (the manager does before calling
// them), so they succeed on an expired record that has not been swept yet.
//
// Subject index. Every store can list a subject's live sessions and revoke
// them all without scanning its whole keyspace. The first two bytes of an
// [ID] are a tag derived from the subject ([SubjectTag]); a clustered store
// uses it to keep a subject's records and index on one shard, so that
// Create-with-eviction and RevokeSubject are atomic there as well.
//
// Concurrency. All methods are safe for concurrent use, and each is atomic
// with respect to the others — Sweep included: a sweep racing Create (with
// eviction), RevokeSubject, RotateRefresh or Update neither fails because of
// them nor deletes a record whose deadline a write it raced has moved past
// its now, and it leaves the subject index exact.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; stores wrap them with %w to add detail, never with a token.
var (
	// ErrNotFound: the record does not exist, or no longer does.
	ErrNotFound = errors.New("latch/store: session not found")
	// ErrConflict: a compare-and-swap lost against a concurrent write, or the
	// record was revoked.
	ErrConflict = errors.New("latch/store: version conflict")
	// ErrExists: Create was given an ID that is already stored.
	ErrExists = errors.New("latch/store: session ID already exists")
	// ErrInvalid: the store refuses a record or argument that breaks the
	// contract: nil, zero ID, a subject outside 1..MaxSubjectLen bytes, an ID
	// whose tag is not SubjectTag(Subject), a field beyond its bound, a time
	// it cannot encode (also ErrUnencodable), or a reason longer than
	// MaxReasonLen. See Validate.
	ErrInvalid = errors.New("latch/store: invalid record")
	// ErrUnavailable: the backend could not be reached or answered with
	// something unusable. Treat it as "not authenticated".
	ErrUnavailable = errors.New("latch/store: store unavailable")
)

// Field bounds every store keeps exactly and enforces (ErrInvalid beyond
// them); see "Field bounds" in the package documentation.
const (
	MaxSubjectLen = 256
	// MaxValueLen is the largest Data or Claims value a store keeps: 65,536
	// bytes, one more than a MySQL BLOB holds.
	MaxValueLen = 64 << 10
	// MaxIPLen bounds Record.IP: an IPv6 address with a zone fits.
	MaxIPLen = 64
	// MaxUserAgentLen bounds Record.UserAgent. The manager truncates the
	// header to 512 bytes before replacing invalid UTF-8, which can at most
	// double it.
	MaxUserAgentLen = 1024
	// MaxReasonLen bounds Record.RevokeReason and every reason argument.
	MaxReasonLen = 64
	// MaxACRLen bounds Record.ACR: room for an ACR URI such as
	// "http://schemas.openid.net/pape/policies/2007/06/multi-factor".
	MaxACRLen = 128
	// MaxAMRValues bounds how many methods Record.AMR lists, and
	// MaxAMRValueLen the length of each (RFC 8176 names are 2–5 bytes).
	MaxAMRValues   = 8
	MaxAMRValueLen = 32
)

// Store keeps session records. See the package documentation for the contract
// every method follows.
type Store interface {
	// Get returns the record with id, revoked or not, or ErrNotFound.
	Get(ctx context.Context, id ID) (*Record, error)

	// Create stores a new record (its Version is ignored and stored as 1)
	// and adds it to its subject's index. It refuses with ErrInvalid, before
	// storing anything, a record [Validate] refuses — among others a zero ID
	// or one that does not carry SubjectTag(rec.Subject). If the subject then
	// has more than max live sessions (max > 0), the least recently seen
	// others are revoked with reason "evicted" and RevokedAt = rec.CreatedAt,
	// in the same atomic step, and their IDs returned. "Live" is judged at
	// rec.CreatedAt, for the new record too: one that is revoked or past its
	// deadline at its own CreatedAt does not count toward max (and evicts
	// nothing beyond max others). Create fails with ErrExists if the ID is
	// taken.
	Create(ctx context.Context, rec *Record, max int) (evicted []ID, err error)

	// Update replaces the stored record with rec if the stored version equals
	// rec.Version and the record is not revoked; the store then writes
	// version rec.Version+1. It fails with ErrConflict otherwise, with
	// ErrNotFound if there is no record, and with ErrInvalid for a record
	// Validate refuses. ID and Subject never change.
	Update(ctx context.Context, rec *Record) error

	// RotateRefresh atomically replaces the refresh state of a live
	// (unrevoked) record if its Refresh.Current equals r.Expect, and records
	// the activity in r. It returns the updated record. If the record's
	// refresh state has moved on (or it is revoked) it returns the stored
	// record together with ErrConflict, so the caller can tell a concurrent
	// rotation from theft without another read.
	RotateRefresh(ctx context.Context, r Rotation) (*Record, error)

	// Revoke marks the record revoked with reason at time at and removes it
	// from its subject's index. Revoking a revoked record succeeds and changes
	// nothing; a missing record gives ErrNotFound, a reason longer than
	// MaxReasonLen ErrInvalid (RevokeSubject too).
	Revoke(ctx context.Context, id ID, reason string, at time.Time) error

	// RevokeSubject revokes every unrevoked session of subject, expired
	// by at or not (at is the revocation's time), except the one with ID
	// except (the zero ID excepts none), atomically with respect to Create
	// for the same subject, and returns the revoked IDs.
	RevokeSubject(ctx context.Context, subject string, except ID, reason string, at time.Time) ([]ID, error)

	// List returns the subject's sessions that are live at now, most
	// recently seen first (ties: most recently created first). It may drop
	// index entries of records that are not live at now — gone, revoked, or
	// past their deadline by the caller's now — provided a write that makes
	// such a record live again (Update or RotateRefresh moving its deadline)
	// puts it back: List and RevokeSubject never miss a session that is
	// live at the now they are given.
	List(ctx context.Context, subject string, now time.Time) ([]*Record, error)
}

// Rotation is one atomic refresh-token rotation; see Store.RotateRefresh.
type Rotation struct {
	ID            ID
	Expect        Hash    // the Refresh.Current the stored record must hold
	Next          Refresh // the new refresh state
	LastSeenAt    time.Time
	IdleExpiresAt time.Time
}

// Sweeper is implemented by stores without native expiry. Sweep deletes
// records (and tombstones) whose deadline is at or before now, with their
// index entries, and returns how many it deleted. It must not scan every
// record to find them, and it is atomic with the other methods: it retries
// its backend's transient conflicts (deadlocks, lock timeouts) rather than
// failing, and never deletes a record a concurrent write has just given a
// later deadline.
type Sweeper interface {
	Sweep(ctx context.Context, now time.Time) (int, error)
}

// FreshReader is implemented by stores whose Get may answer from a local
// cache that lags a write made through another process by a moment (the
// Redis store's client-side cache, until Redis's invalidation reaches
// it). GetFresh reads the record from the backend itself. The manager
// calls it before refusing a token that the cached record does not match,
// so a token rotated or renewed through another replica a few
// milliseconds ago is judged against the write that made it.
type FreshReader interface {
	GetFresh(ctx context.Context, id ID) (*Record, error)
}

// GetFresh reads id from s's backend, past any local cache: s's GetFresh
// if it implements [FreshReader], else its Get (which then has no cache
// to bypass).
func GetFresh(ctx context.Context, s Store, id ID) (*Record, error) {
	if f, ok := s.(FreshReader); ok {
		return f.GetFresh(ctx, id)
	}
	return s.Get(ctx, id)
}

// Pinger is implemented by stores that can check their backend is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// KeyStore is implemented by stores that can keep the signing keyring, so
// every replica signs and verifies with the same keys. The blob is opaque to
// the store (the keyring encrypts private keys before saving).
type KeyStore interface {
	// LoadKeyring returns the stored blob and its version, or (nil, 0, nil)
	// if none has been saved.
	LoadKeyring(ctx context.Context) (blob []byte, version uint64, err error)
	// SaveKeyring stores blob as version expect+1 if the stored version is
	// expect (0: none saved yet), and fails with ErrConflict otherwise.
	SaveKeyring(ctx context.Context, blob []byte, expect uint64) error
}

// KeyringVersioner is implemented by key stores that can report the
// stored keyring's version without reading its blob, cheaply enough to ask
// on every online token verification (from a client-side cache with
// invalidation, where the store has one, under the same staleness bound as
// its records). The keyring asks it so that a key revoked through another
// replica is refused at once. It returns 0 if no keyring is saved.
type KeyringVersioner interface {
	KeyringVersion(ctx context.Context) (uint64, error)
}

// ReplayCache is implemented by stores that can remember one-time values
// (a DPoP proof's jti) for every replica at once, so a proof replayed
// against any replica is refused.
//
// Seen records key until until and reports fresh = true if key was not
// already recorded with an until in the future; a second call with the same
// key before the first one's until reports fresh = false and changes
// nothing. Concurrent calls with one key see exactly one fresh = true. Keys
// are 1..[MaxReplayKeyLen] bytes (ErrInvalid otherwise). An entry whose until
// has passed may be discarded (native TTL, or the store's Sweep); it then
// counts as absent. A store that cannot answer returns ErrUnavailable, and
// callers must then refuse the value: a replay cache fails closed.
type ReplayCache interface {
	Seen(ctx context.Context, key string, until time.Time) (fresh bool, err error)
}

// MaxReplayKeyLen bounds a [ReplayCache] key.
const MaxReplayKeyLen = 128

// Stores that hold resources (files, connections) implement io.Closer; the
// code that opened a store closes it, after the last call.

// Ping checks s's backend if it implements [Pinger]; other stores are
// assumed reachable.
func Ping(ctx context.Context, s Store) error {
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Reasons recorded in Record.RevokeReason by the manager and the stores.
const (
	ReasonLogout    = "logout"
	ReasonAdmin     = "admin"
	ReasonRevokeAll = "revoke-all"
	ReasonEvicted   = "evicted"
	ReasonReplaced  = "replaced" // a new login replaced the session (fixation defence)
	ReasonReuse     = "refresh-reuse"
)
