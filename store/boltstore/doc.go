// Package boltstore is latch's embedded default session store: every session
// record, its indexes and the signing keyring live in one file, managed by
// go.etcd.io/bbolt (a copy-on-write B+tree with a single writer).
//
// Most users need two calls:
//
//	s, err := boltstore.Open("./latch-data/latch.db", nil)
//	...
//	defer s.Close()
//
// and pass s to latch.New. The *Store implements [store.Store],
// [store.Sweeper], [store.KeyStore] and [store.Pinger]. It starts no
// goroutine and removes expired records only when [Store.Sweep] is called:
// run the manager's RunSweeper (as `latch serve` does), or call Sweep
// yourself every minute or so. A sweep with nothing due is a read
// transaction and costs about a microsecond.
//
// # Durability
//
// By default every write (Create, Update, RotateRefresh, Revoke,
// RevokeSubject, Sweep, SaveKeyring) is one bbolt transaction that is fsync'ed before the call returns, so a
// call that returned nil survives a process kill (kill -9), an OS crash and
// a power cut. bbolt never overwrites live pages: a crash at any instant
// leaves the file at the last committed transaction, which Open reads back
// without a repair step.
//
// Concurrent writers are group-committed: while one transaction is being
// synced, writes that arrive queue up and then commit together in the next
// transaction, under one fsync. A lone writer is never delayed; under
// concurrency throughput grows with the number of writers instead of being
// capped at one fsync per write. Each call still returns only after its own
// transaction is durable.
//
// Every method checks its context before it starts. A write still queued
// behind a stalled commit (a hung disk) when its context ends returns an
// error matching [store.ErrUnavailable] at once and is not applied; one
// whose transaction had already begun returns the same kind of error, and
// may or may not have been stored.
//
// [Options.NoSync] turns fsync off. A process crash then still loses
// nothing (the data is in the OS page cache), but an OS crash or power cut
// can lose recent writes or corrupt the file. It exists for tests and bulk
// loads; do not set it in production.
//
// # Security model
//
// The store never holds a usable secret: records carry only hashes of token
// secrets (see package store), and the keyring blob is encrypted by its
// owner before it reaches [Store.SaveKeyring]. Still, the file reveals who
// has sessions, from which IPs and user agents, so Open creates a missing
// parent directory with mode 0700 and a missing file with mode 0600
// (further restricted by the umask). An existing file or directory keeps
// its mode; check it if the data directory was copied from elsewhere.
//
// Errors never contain a token, a hash, a subject or application data; at
// most the file path and the name of the failed operation.
//
// Arguments the contract forbids (see [store.ErrInvalid]) are refused
// before any transaction starts, with an error matching store.ErrInvalid.
//
// Every failure to read or write the file (I/O error, a closed store, a
// cancelled context, a record that does not decode) is reported as an error
// matching [store.ErrUnavailable], never as a record, so the manager fails
// closed.
//
// # Locking
//
// A bbolt file can be open in one process at a time (an exclusive flock(2)
// lock). Open waits at most [Options.LockTimeout] (default 1 s) for the lock
// and then fails with an error matching [ErrLocked] that names the path
// (a second Open in the same process is refused the same way), so
// a second `latch serve` on the same data directory fails fast with a clear
// message instead of hanging. To run several replicas, use a shared store
// (Redis or PostgreSQL) instead.
//
// # Layout
//
// The file holds four buckets:
//
//   - records: ID → [store.Record.MarshalBinary]
//   - subjects: len(subject) (2 bytes) ‖ subject ‖ ID → marker, the subject
//     index: every unrevoked session of each subject, until it is swept
//   - expiry: deadline (8 bytes, order-preserving Unix nanoseconds) ‖ ID →
//     marker, one entry per record, so Sweep walks only expired entries
//   - meta: the schema version and the keyring
//
// Every write keeps the three record buckets in step in one transaction;
// Create-with-eviction and RevokeSubject are each one transaction, so they
// are atomic with respect to each other and to every other call.
//
// Reads (Get, List, LoadKeyring, Ping) are bbolt read transactions on a
// consistent snapshot: they never wait for a writer, except briefly while
// the file grows and is mapped again. Get first looks in a cache of the
// records it decoded ([Options.CacheBytes], 16 MiB by default): since no
// other process can write the file, every write of a record passes through
// the Store, which drops the records a transaction wrote once it commits,
// before the write returns; a revocation is therefore seen by the very
// next Get. A record damaged on disk after Get cached it is reported at
// the first read after the cache lets it go (its next write, an eviction,
// a restart), or at once by [Store.GetFresh], which the manager calls
// before refusing a token.
// Revoked records stay as tombstones until their deadline so their tokens
// are reported as revoked rather than unknown; Sweep then removes them.
package boltstore
