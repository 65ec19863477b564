package accesstoken

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-sessions/latch/store"
)

// Keyring defaults.
const (
	DefaultRotationPeriod = 30 * 24 * time.Hour
	DefaultJWKSMaxAge     = 10 * time.Minute
	DefaultPrePublication = time.Hour
	DefaultMaxTokenTTL    = time.Hour
	DefaultReloadInterval = 10 * time.Second
)

// KeyringConfig configures a Keyring. The zero value (apart from KEK when
// Store is set) gives an in-memory EdDSA keyring with the defaults above.
type KeyringConfig struct {
	// Store persists the keyring so every replica signs and verifies with
	// the same keys. Nil keeps the keyring in this process only (fine for a
	// single process; its tokens die with it).
	Store store.KeyStore
	// KEK is the 32-byte key-encryption key (see KEKFromBase64 and
	// LoadOrCreateKEKFile) that encrypts private keys with AES-256-GCM
	// before they reach Store. Required when Store is set; every replica
	// must use the same KEK.
	KEK []byte
	// Algorithm of new keys: EdDSA (default), ES256 or RS256 (RSAKeyBits).
	// When the newest stored key has another algorithm, OpenKeyring adds a
	// key of this one through the normal pre-publication: the old key keeps
	// signing until the new one has been published for PrePublication.
	// Every replica must be configured with the same algorithm. HS256
	// secrets are configured with NewHS256Key and StaticKeys, never in a
	// keyring.
	Algorithm Algorithm
	// RotationPeriod is how long a key signs before Maintain makes its
	// successor active. Default 30 days.
	RotationPeriod time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS document.
	// Default 10m.
	JWKSMaxAge time.Duration
	// PrePublication is how long a new key is published before it signs.
	// It must exceed JWKSMaxAge, and every replica must call Maintain or
	// Reload more often than PrePublication-JWKSMaxAge. Default 1h.
	PrePublication time.Duration
	// MaxTokenTTL is the longest lifetime of any token signed with the
	// keyring: a retired key stays published and trusted for MaxTokenTTL
	// plus DefaultLeeway after its successor started signing, then it is
	// removed. Default 1h.
	MaxTokenTTL time.Duration
	// ReloadInterval is the least time between reloads of the stored
	// keyring triggered by an unknown kid. Default 10s.
	ReloadInterval time.Duration
	// InitialIssuer is the issuer identifier recorded with the keyring
	// when none is recorded yet (the first start on a store). Later opens,
	// by any replica, read the recorded one back with Keyring.Issuer
	// whatever their own InitialIssuer, so the iss of tokens survives
	// restarts, address changes and new replicas. Empty records none.
	InitialIssuer string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of key material and nonces. Default crypto/rand.
	Rand io.Reader
}

// KeyState is where a key is in its life.
type KeyState string

// Key states, in order.
const (
	KeyPending KeyState = "pending" // published, not yet signing
	KeyActive  KeyState = "active"  // signing (and published)
	KeyRetired KeyState = "retired" // published until Removes, no longer signing
	KeyRevoked KeyState = "revoked" // compromised: unpublished, refused, kept until Removes as a tombstone
)

// KeyInfo describes a key of a Keyring, without key material.
type KeyInfo struct {
	ID        string
	Algorithm Algorithm
	State     KeyState
	Created   time.Time
	Activates time.Time // starts signing
	Retires   time.Time // stops signing: its successor's Activates; zero if none yet
	Removes   time.Time // leaves JWKS and stops verifying; zero if not retiring yet
	Revoked   time.Time // when Revoke took it out of service; zero if never
}

// Keyring holds the signing keys of an issuer: one active key that signs,
// pending keys already published in JWKS, and retired keys still published
// until every token they signed has expired. It is a KeySet for a Verifier
// and SigningKeys for an Issuer, and safe for concurrent use.
//
// Timeline. A new key is added with an activation time at least
// PrePublication in the future, so every cache of the JWKS document has
// seen it before it signs anything. The active key is the one with the
// latest activation time that has passed, so replicas that share the
// stored keyring agree on it without coordination. A key is retired when
// its successor activates, and removed MaxTokenTTL (plus leeway) later.
//
// Rotation. Maintain adds the successor PrePublication before the current
// key has signed for RotationPeriod, and prunes removed keys. Rotate adds a
// successor at once; it, too, starts signing only after PrePublication, so
// an on-demand rotation takes effect PrePublication later.
//
// Revocation. Revoke takes a compromised key out of service at once: it
// leaves JWKS, its tokens are refused, and if it was signing, a fresh key
// signs at once without pre-publication (a verifier with a cached JWKS
// must refetch for the new kid; a compromised key is worse).
//
// Replicas. Each replica keeps a snapshot; Maintain and Reload refresh it
// from the store, and a lookup of an unknown kid reloads at most once per
// ReloadInterval. SigningKey, and a Verifier in online mode, Sync the
// snapshot first (one version read when nothing changed), so no replica
// signs with or accepts a key another one revoked. Writes are compare-and-swap on the store's version and
// retried after a reload on conflict.
//
// Private keys are stored sealed with AES-256-GCM under the KEK; the
// sealed box is bound to the key's ID, algorithm, public key and
// timestamps, so a store writer without the KEK can delete keys or replay
// old ones but cannot add, alter or re-time a key.
type Keyring struct {
	cfg  KeyringConfig
	st   store.KeyStore
	aead cipher.AEAD
	now  func() time.Time
	rnd  io.Reader

	mu         sync.Mutex // serializes loads and writes
	ring       atomic.Pointer[ring]
	lastReload atomic.Int64 // unix nanos of the last unknown-kid reload
}

type ring struct {
	version uint64
	issuer  string
	keys    []ringKey // by activation time
	byKid   map[string]int
	jwks    []byte
}

type ringKey struct {
	kid                string
	alg                Algorithm
	priv, pub          *Key // nil once revoked
	created, activates time.Time
	revoked            time.Time // zero unless revoked
	retires, removes   time.Time
	sealed             []byte
	publicBytes        []byte
}

// OpenKeyring loads the keyring from cfg.Store, creating (and saving) a
// first, immediately active key if none exists.
func OpenKeyring(ctx context.Context, cfg KeyringConfig) (*Keyring, error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = EdDSA
	}
	if cfg.Algorithm != EdDSA && cfg.Algorithm != ES256 && cfg.Algorithm != RS256 {
		return nil, errors.New("accesstoken: keyring algorithm must be EdDSA, ES256 or RS256 (HS256 secrets are configured with NewHS256Key)")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RotationPeriod, DefaultRotationPeriod)
	def(&cfg.JWKSMaxAge, DefaultJWKSMaxAge)
	def(&cfg.PrePublication, DefaultPrePublication)
	def(&cfg.MaxTokenTTL, DefaultMaxTokenTTL)
	def(&cfg.ReloadInterval, DefaultReloadInterval)
	if cfg.PrePublication <= cfg.JWKSMaxAge {
		return nil, errors.New("accesstoken: PrePublication must be longer than JWKSMaxAge, or verifiers with a cached JWKS would see tokens from a key they do not know")
	}
	if cfg.RotationPeriod <= cfg.PrePublication {
		return nil, errors.New("accesstoken: RotationPeriod must be longer than PrePublication")
	}
	k := &Keyring{cfg: cfg, st: cfg.Store, now: cfg.Now, rnd: cfg.Rand}
	if k.now == nil {
		k.now = time.Now
	}
	if k.rnd == nil {
		k.rnd = rand.Reader
	}
	kek := cfg.KEK
	if k.st == nil {
		k.st = &memKeyStore{}
		if kek == nil {
			kek = make([]byte, KEKSize)
			if _, err := io.ReadFull(k.rnd, kek); err != nil {
				return nil, fmt.Errorf("accesstoken: generating KEK: %w", err)
			}
		}
	}
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("%w: KeyringConfig.KEK must be %d bytes (see KEKFromBase64 and LoadOrCreateKEKFile)", ErrKEK, KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKEK, err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKEK, err)
	}
	if err := k.update(ctx, func(keys []ringKey, now time.Time) ([]ringKey, string, error) {
		if last := newest(keys); last >= 0 {
			if keys[last].alg == k.cfg.Algorithm {
				return nil, "", nil
			}
			// The algorithm changed: pre-publish a key of the new one.
			nk, err := k.newKey(now, now.Add(k.cfg.PrePublication))
			if err != nil {
				return nil, "", err
			}
			return append(keys, nk), nk.kid, nil
		}
		nk, err := k.newKey(now, now)
		if err != nil {
			return nil, "", err
		}
		return append(keys, nk), nk.kid, nil
	}); err != nil {
		return nil, err
	}
	return k, nil
}

// JWKSMaxAge is the lifetime a JWKS document of this keyring may be
// cached for (the Cache-Control max-age to serve it with).
func (k *Keyring) JWKSMaxAge() time.Duration { return k.cfg.JWKSMaxAge }

// Issuer returns the issuer identifier recorded with the stored keyring
// (see KeyringConfig.InitialIssuer), or "" if none is recorded. The record
// is not sealed: a store writer can change it, as it can delete keys, but
// it cannot make this keyring sign or verify with a key of its own.
func (k *Keyring) Issuer() string { return k.ring.Load().issuer }

// SigningKey implements SigningKeys: the active key. It syncs the keyring
// first (see Sync), so a replica never signs with a key another replica
// revoked; if the stored keyring cannot be read, it returns the error.
func (k *Keyring) SigningKey(ctx context.Context) (*Key, error) {
	if err := k.Sync(ctx); err != nil {
		return nil, err
	}
	r := k.ring.Load()
	now := k.now()
	if i := signer(r.keys, now); i >= 0 {
		return r.keys[i].priv, nil
	}
	return nil, ErrNoSigningKey
}

// signer is the index of the key that signs at now: the unrevoked key
// with the latest activation time that has passed, or -1.
func signer(keys []ringKey, now time.Time) int {
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].revoked.IsZero() && !keys[i].activates.After(now) {
			return i
		}
	}
	return -1
}

// newest is the index of the unrevoked key with the latest activation
// time, or -1.
func newest(keys []ringKey) int {
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].revoked.IsZero() {
			return i
		}
	}
	return -1
}

var (
	errKeyRemoved = wrap(ErrUnknownKey, "key retired and removed")
	errKeyRevoked = wrap(ErrUnknownKey, "key revoked")
)

// VerificationKey implements KeySet. A kid the snapshot does not know
// triggers a reload from the store, at most once per ReloadInterval.
func (k *Keyring) VerificationKey(ctx context.Context, kid string) (*Key, error) {
	key, err := k.lookup(kid)
	if err != errKidUnknown {
		return key, err
	}
	now := k.now().UnixNano()
	last := k.lastReload.Load()
	if now-last < int64(k.cfg.ReloadInterval) || !k.lastReload.CompareAndSwap(last, now) {
		return nil, err
	}
	if rerr := k.Reload(ctx); rerr != nil {
		return nil, fmt.Errorf("%w: reloading keyring: %w", ErrUnknownKey, rerr)
	}
	return k.lookup(kid)
}

func (k *Keyring) lookup(kid string) (*Key, error) { return lookupKid(k, kid) }

func (k *Keyring) lookupBytes(kid []byte) (*Key, error) { return lookupKid(k, kid) }

func lookupKid[S string | []byte](k *Keyring, kid S) (*Key, error) {
	r := k.ring.Load()
	i, ok := r.byKid[string(kid)]
	if !ok {
		return nil, errKidUnknown
	}
	rk := &r.keys[i]
	if !rk.revoked.IsZero() {
		return nil, errKeyRevoked
	}
	if !rk.removes.IsZero() && !k.now().Before(rk.removes) {
		return nil, errKeyRemoved
	}
	return rk.pub, nil
}

// JWKS returns the JWK Set document of every published key (pending,
// active and retired), public halves only.
func (k *Keyring) JWKS() []byte { return slices.Clone(k.ring.Load().jwks) }

// Keys lists the keyring's keys, oldest first.
func (k *Keyring) Keys() []KeyInfo {
	r := k.ring.Load()
	now := k.now()
	out := make([]KeyInfo, 0, len(r.keys))
	for _, rk := range r.keys {
		ki := KeyInfo{ID: rk.kid, Algorithm: rk.alg, Created: rk.created,
			Activates: rk.activates, Retires: rk.retires, Removes: rk.removes, Revoked: rk.revoked, State: KeyActive}
		switch {
		case !rk.revoked.IsZero():
			ki.State = KeyRevoked
		case rk.activates.After(now):
			ki.State = KeyPending
		case !rk.retires.IsZero() && !rk.retires.After(now):
			ki.State = KeyRetired
		}
		out = append(out, ki)
	}
	return out
}

// Reload refreshes the snapshot from the store. Call it (or Maintain)
// periodically on every replica.
func (k *Keyring) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	r, err := k.load(ctx)
	if err != nil {
		return err
	}
	k.ring.Store(r)
	return nil
}

// Sync reloads the snapshot if the stored keyring changed since it was
// taken. With a store that implements store.KeyringVersioner it costs one
// version read (a client-side cache hit on Redis) when nothing changed;
// other stores are read whole, without decrypting unchanged keys. A
// keyring without a store has nothing to sync. A Verifier in online mode
// calls it on every verification, so a key revoked through another
// replica is refused at once.
func (k *Keyring) Sync(ctx context.Context) error {
	if _, local := k.st.(*memKeyStore); local {
		return nil
	}
	kv, ok := k.st.(store.KeyringVersioner)
	if !ok {
		return k.Reload(ctx)
	}
	v, err := kv.KeyringVersion(ctx)
	if err != nil {
		return fmt.Errorf("accesstoken: checking the keyring version: %w", err)
	}
	// After a change, the first of many concurrent callers reloads for
	// all. (Any other version, not only a higher one, means a change: a
	// keyring deleted from the store and made again starts over at 1.)
	if k.ring.Load().version == v {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ring.Load().version == v {
		return nil
	}
	r, err := k.load(ctx)
	if err != nil {
		return err
	}
	k.ring.Store(r)
	return nil
}

// Maintain reloads the keyring, prunes keys whose retirement period is
// over, and adds the next key when the active one is due for rotation
// (PrePublication before it has signed for RotationPeriod). The server
// calls it periodically (every minute is plenty) on every replica;
// concurrent calls from several replicas are safe.
func (k *Keyring) Maintain(ctx context.Context) error {
	return k.update(ctx, func(keys []ringKey, now time.Time) ([]ringKey, string, error) {
		changed := false
		kept := keys[:0:0]
		for _, rk := range keys {
			if !rk.removes.IsZero() && !now.Before(rk.removes) {
				changed = true
				continue
			}
			kept = append(kept, rk)
		}
		var last time.Time
		n := newest(kept)
		if n >= 0 {
			last = kept[n].activates
		}
		switch {
		case n < 0 || signer(kept, now) < 0:
			nk, err := k.newKey(now, now)
			if err != nil {
				return nil, "", err
			}
			return sortKeys(append(kept, nk)), nk.kid, nil
		case last.After(now):
			// A successor is already waiting.
		case !now.Before(last.Add(k.cfg.RotationPeriod - k.cfg.PrePublication)):
			at := last.Add(k.cfg.RotationPeriod)
			if earliest := now.Add(k.cfg.PrePublication); at.Before(earliest) {
				at = earliest
			}
			nk, err := k.newKey(now, at)
			if err != nil {
				return nil, "", err
			}
			return append(kept, nk), nk.kid, nil
		}
		if !changed {
			return nil, "", nil
		}
		return kept, "", nil
	})
}

// Rotate adds a new key that starts signing PrePublication from now and
// returns its kid. If a key is already waiting to activate, Rotate returns
// that key's kid and changes nothing.
func (k *Keyring) Rotate(ctx context.Context) (kid string, err error) {
	err = k.update(ctx, func(keys []ringKey, now time.Time) ([]ringKey, string, error) {
		if n := newest(keys); n >= 0 && keys[n].activates.After(now) {
			kid = keys[n].kid
			return nil, "", nil
		}
		nk, err := k.newKey(now, now.Add(k.cfg.PrePublication))
		if err != nil {
			return nil, "", err
		}
		kid = nk.kid
		return append(keys, nk), kid, nil
	})
	return kid, err
}

// Revoke takes the key kid out of service at once, for a key whose
// private half may be compromised: it leaves JWKS, every token it signed
// is refused (by this replica now, by others on their next online
// verification or reload), and if it was the signing key, a fresh key
// signs from now on without pre-publication (verifiers with a cached JWKS
// refetch it for the unknown kid; a compromised key is worse). Its sealed
// private key is erased from the store; a tombstone stays until the key
// would have been removed, so its tokens read as revoked, not unknown.
// Revoke returns the kid of the key that signs after it. An unknown kid
// gives an error matching ErrKeyNotFound; revoking a revoked key changes
// nothing.
func (k *Keyring) Revoke(ctx context.Context, kid string) (signing string, err error) {
	err = k.update(ctx, func(keys []ringKey, now time.Time) ([]ringKey, string, error) {
		i := slices.IndexFunc(keys, func(rk ringKey) bool { return rk.kid == kid })
		if i < 0 {
			return nil, "", ErrKeyNotFound
		}
		changed, wasSigner := false, signer(keys, now) == i
		if keys[i].revoked.IsZero() {
			keys[i] = ringKey{kid: keys[i].kid, alg: keys[i].alg, created: keys[i].created,
				activates: keys[i].activates, revoked: time.Unix(0, now.UnixNano()), publicBytes: keys[i].publicBytes}
			changed = true
		}
		// Without it the signer would be the newest earlier key, which
		// had retired and must not sign again: a fresh key takes over.
		if wasSigner || signer(keys, now) < 0 {
			nk, err := k.newKey(now, now)
			if err != nil {
				return nil, "", err
			}
			keys = sortKeys(append(keys, nk))
			changed = true
		}
		signing = keys[signer(keys, now)].kid
		if !changed {
			return nil, "", nil
		}
		return keys, kid, nil
	})
	return signing, err
}

func sortKeys(keys []ringKey) []ringKey {
	slices.SortStableFunc(keys, func(a, b ringKey) int { return a.activates.Compare(b.activates) })
	return keys
}

// update applies change to the stored keyring with compare-and-swap,
// reloading and retrying on conflict. change returns nil keys for "no
// change".
func (k *Keyring) update(ctx context.Context, change func([]ringKey, time.Time) ([]ringKey, string, error)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for range 16 {
		r, err := k.load(ctx)
		if err != nil {
			return err
		}
		keys, _, err := change(slices.Clone(r.keys), k.now())
		if err != nil {
			return err
		}
		issuer := r.issuer
		if issuer == "" && k.cfg.InitialIssuer != "" {
			issuer = k.cfg.InitialIssuer
			if keys == nil {
				keys = slices.Clone(r.keys) // record the issuer alone
			}
		}
		if keys == nil {
			k.ring.Store(r)
			return nil
		}
		blob, err := k.marshal(keys, issuer)
		if err != nil {
			return err
		}
		err = k.st.SaveKeyring(ctx, blob, r.version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("accesstoken: saving keyring: %w", err)
		}
		k.ring.Store(k.build(keys, r.version+1, issuer))
		return nil
	}
	return fmt.Errorf("accesstoken: saving keyring: %w (gave up after repeated conflicts)", store.ErrConflict)
}

// load reads the stored keyring, reusing the current snapshot (and its
// decrypted keys) where nothing changed. Callers hold k.mu.
func (k *Keyring) load(ctx context.Context) (*ring, error) {
	blob, version, err := k.st.LoadKeyring(ctx)
	if err != nil {
		return nil, fmt.Errorf("accesstoken: loading keyring: %w", err)
	}
	cur := k.ring.Load()
	if cur != nil && cur.version == version && version != 0 {
		return cur, nil
	}
	if blob == nil {
		return k.build(nil, version, ""), nil
	}
	sr, err := unmarshalRing(blob)
	if err != nil {
		return nil, err
	}
	keys := make([]ringKey, 0, len(sr.Keys))
	for _, sk := range sr.Keys {
		if sk.Revoked != 0 {
			// A tombstone: no private key to open, nothing to trust.
			keys = append(keys, ringKey{kid: sk.Kid, alg: sk.Alg, created: time.Unix(0, sk.Created),
				activates: time.Unix(0, sk.Activates), revoked: time.Unix(0, sk.Revoked), publicBytes: sk.Public})
			continue
		}
		if cur != nil {
			if i, ok := cur.byKid[sk.Kid]; ok {
				old := cur.keys[i]
				if old.revoked.IsZero() && bytes.Equal(old.sealed, sk.Sealed) && old.created.UnixNano() == sk.Created &&
					old.activates.UnixNano() == sk.Activates && bytes.Equal(old.publicBytes, sk.Public) {
					keys = append(keys, old)
					continue
				}
			}
		}
		rk, err := k.open(sk)
		if err != nil {
			return nil, err
		}
		keys = append(keys, rk)
	}
	return k.build(sortKeys(keys), version, sr.Issuer), nil
}

// build makes a snapshot: retirement times, kid index and JWKS.
//
// A key retires when the next key that signed (or will sign) activates:
// a key revoked before its activation never signed and does not count. A
// revoked key is unpublished and refused; its tombstone is removed once
// every token it could have signed has expired.
func (k *Keyring) build(keys []ringKey, version uint64, issuer string) *ring {
	r := &ring{version: version, issuer: issuer, keys: keys, byKid: make(map[string]int, len(keys))}
	pubs := make([]*Key, 0, len(keys))
	keep := k.cfg.MaxTokenTTL + DefaultLeeway
	for i := range keys {
		rk := &keys[i]
		r.byKid[rk.kid] = i
		rk.retires, rk.removes = time.Time{}, time.Time{}
		if !rk.revoked.IsZero() {
			rk.removes = rk.revoked.Add(keep)
			continue
		}
		for _, next := range keys[i+1:] {
			if next.revoked.IsZero() || next.revoked.After(next.activates) {
				rk.retires = next.activates
				rk.removes = rk.retires.Add(keep)
				break
			}
		}
		pubs = append(pubs, rk.pub)
	}
	r.jwks = JWKS(pubs...)
	return r
}

type storedRing struct {
	Format int         `json:"format"`
	Issuer string      `json:"issuer,omitempty"`
	Keys   []storedKey `json:"keys"`
}

type storedKey struct {
	Kid       string    `json:"kid"`
	Alg       Algorithm `json:"alg"`
	Created   int64     `json:"created"`   // unix nanoseconds
	Activates int64     `json:"activates"` // unix nanoseconds
	Public    []byte    `json:"public"`
	Sealed    []byte    `json:"sealed,omitempty"`  // nonce ‖ AES-256-GCM(private key); erased when revoked
	Revoked   int64     `json:"revoked,omitempty"` // unix nanoseconds; 0: not revoked
}

func (k *Keyring) marshal(keys []ringKey, issuer string) ([]byte, error) {
	sr := storedRing{Format: 1, Issuer: issuer, Keys: make([]storedKey, 0, len(keys))}
	for _, rk := range keys {
		sk := storedKey{Kid: rk.kid, Alg: rk.alg, Created: rk.created.UnixNano(), Activates: rk.activates.UnixNano(),
			Public: rk.publicBytes, Sealed: rk.sealed}
		if !rk.revoked.IsZero() {
			sk.Sealed, sk.Revoked = nil, rk.revoked.UnixNano()
		}
		sr.Keys = append(sr.Keys, sk)
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return nil, err
	}
	return appendRingChecksum(b), nil
}

// The stored keyring is the JSON of a storedRing (format 1) with a CRC-32C
// as its first member: {"crc32c":"<8 hex digits>", then the rest of the
// JSON, over which the checksum is computed. Binaries older than the
// checksum ignore the unknown member and read it as before, so replicas of
// two versions can share a store during a rolling upgrade; a blob without
// the member (written by them) is still read. The checksum is against
// accidental corruption (as store's record codec; most of the blob — kids,
// times, public keys, tombstones — is outside the AES-GCM seal), not
// against a store writer, who can rewrite the blob anyway. A flip inside
// the member's name leaves a blob that starts neither way, and is refused.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errRingFormat   = fmt.Errorf("%w: unknown format: %w: %w", ErrKeyring, store.ErrUnavailable, store.ErrCorrupt)
	errRingChecksum = fmt.Errorf("%w: checksum mismatch, the stored keyring is corrupt: %w: %w", ErrKeyring, store.ErrUnavailable, store.ErrCorrupt)
)

const (
	ringSumPrefix = `{"crc32c":"`
	ringOldPrefix = `{"format":` // json.Marshal of a storedRing without the checksum
	ringSumLen    = len(ringSumPrefix) + 8 + len(`",`)
)

// appendRingChecksum turns js, the JSON of a storedRing, into its stored
// form.
func appendRingChecksum(js []byte) []byte {
	rest := js[1:] // after '{'
	b := make([]byte, 0, ringSumLen+len(rest))
	b = append(b, ringSumPrefix...)
	b = hex.AppendEncode(b, binary.BigEndian.AppendUint32(nil, crc32.Checksum(rest, castagnoli)))
	b = append(b, '"', ',')
	return append(b, rest...)
}

// unmarshalRing decodes a stored keyring blob, with or without its
// checksum.
func unmarshalRing(blob []byte) (storedRing, error) {
	var sr storedRing
	switch {
	case bytes.HasPrefix(blob, []byte(ringSumPrefix)):
		if len(blob) < ringSumLen || blob[ringSumLen-2] != '"' || blob[ringSumLen-1] != ',' {
			return sr, errRingFormat
		}
		// Compared as written (lower-case hex), so that every flipped bit counts.
		if !bytes.Equal(appendRingChecksum(append([]byte{'{'}, blob[ringSumLen:]...))[:ringSumLen], blob[:ringSumLen]) {
			return sr, errRingChecksum
		}
	case !bytes.HasPrefix(blob, []byte(ringOldPrefix)):
		return sr, errRingFormat
	}
	if err := json.Unmarshal(blob, &sr); err != nil || sr.Format != 1 {
		return sr, errRingFormat
	}
	return sr, nil
}

func aad(sk *storedKey) []byte {
	b := []byte("latch/accesstoken keyring v1\x00")
	b = append(b, sk.Kid...)
	b = append(b, 0)
	b = append(b, sk.Alg...)
	b = append(b, 0)
	b = strconv.AppendInt(b, sk.Created, 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, sk.Activates, 10)
	b = append(b, 0)
	return append(b, sk.Public...)
}

// newKey generates a key of the configured algorithm created at now that
// activates at at, and seals it.
func (k *Keyring) newKey(now, at time.Time) (ringKey, error) {
	priv, material, err := generateKey(k.cfg.Algorithm, k.rnd)
	if err != nil {
		return ringKey{}, err
	}
	defer clear(material)
	// Round-trip through UnixNano so the snapshot equals what is stored.
	now, at = time.Unix(0, now.UnixNano()), time.Unix(0, at.UnixNano())
	sk := storedKey{Kid: priv.kid, Alg: priv.alg, Created: now.UnixNano(), Activates: at.UnixNano(),
		Public: publicBytes(priv)}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(material)+k.aead.Overhead())
	if _, err := io.ReadFull(k.rnd, nonce); err != nil {
		return ringKey{}, fmt.Errorf("accesstoken: generating nonce: %w", err)
	}
	sk.Sealed = k.aead.Seal(nonce, nonce, material, aad(&sk))
	return ringKey{kid: priv.kid, alg: priv.alg, priv: priv, pub: priv.Public(), created: now, activates: at,
		sealed: sk.Sealed, publicBytes: sk.Public}, nil
}

// generateKey makes a signing key of alg and the private key material
// that privateFromBytes turns back into it: a 32-byte Ed25519 seed or
// P-256 scalar, or a PKCS #1 RSA private key.
func generateKey(alg Algorithm, rnd io.Reader) (*Key, []byte, error) {
	if alg == RS256 {
		// crypto/rsa draws from the system's CSPRNG whatever reader it is
		// given (Go 1.26); rnd is not used for RSA.
		rk, err := rsa.GenerateKey(rand.Reader, RSAKeyBits)
		if err != nil {
			return nil, nil, fmt.Errorf("accesstoken: generating key: %w", err)
		}
		priv, err := NewRS256Key("", rk)
		if err != nil {
			return nil, nil, err
		}
		return priv, x509.MarshalPKCS1PrivateKey(rk), nil
	}
	seed := make([]byte, 32)
	for range 100 {
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, nil, fmt.Errorf("accesstoken: generating key: %w", err)
		}
		if priv, err := privateFromBytes(alg, seed); err == nil {
			return priv, seed, nil
		}
	}
	return nil, nil, errors.New("accesstoken: generating key failed")
}

// open decrypts a stored key and checks it against its public half and kid.
func (k *Keyring) open(sk storedKey) (ringKey, error) {
	ns := k.aead.NonceSize()
	if len(sk.Sealed) < ns {
		return ringKey{}, wrap(ErrKeyring, "sealed key too short")
	}
	seed, err := k.aead.Open(nil, sk.Sealed[:ns], sk.Sealed[ns:], aad(&sk))
	if err != nil {
		return ringKey{}, wrap(ErrKeyring, "cannot decrypt a private key (wrong KEK, or the stored keyring was altered)")
	}
	defer clear(seed)
	priv, err := privateFromBytes(sk.Alg, seed)
	if err != nil || priv.kid != sk.Kid || !bytes.Equal(publicBytes(priv), sk.Public) {
		return ringKey{}, wrap(ErrKeyring, "stored key does not match its ID")
	}
	return ringKey{kid: priv.kid, alg: priv.alg, priv: priv, pub: priv.Public(), created: time.Unix(0, sk.Created),
		activates: time.Unix(0, sk.Activates), sealed: sk.Sealed, publicBytes: sk.Public}, nil
}

// privateFromBytes makes a signing key (kid: its thumbprint) from its
// private key material: an Ed25519 seed, a P-256 scalar or a PKCS #1 RSA
// private key.
func privateFromBytes(alg Algorithm, b []byte) (*Key, error) {
	switch alg {
	case RS256:
		p, err := x509.ParsePKCS1PrivateKey(b)
		if err != nil {
			return nil, err
		}
		return NewRS256Key("", p)
	case EdDSA:
		return NewEd25519Key("", ed25519.NewKeyFromSeed(b))
	case ES256:
		p, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
		if err != nil {
			return nil, err
		}
		return NewES256Key("", p)
	}
	return nil, errors.New("accesstoken: unsupported key algorithm")
}

func publicBytes(k *Key) []byte {
	if k.edPub != nil {
		return slices.Clone(k.edPub)
	}
	if k.rsaPub != nil {
		return x509.MarshalPKCS1PublicKey(k.rsaPub)
	}
	b, _ := k.ecPub.Bytes()
	return b
}

// memKeyStore is the KeyStore of a keyring without a store.
type memKeyStore struct {
	mu      sync.Mutex
	blob    []byte
	version uint64
}

func (m *memKeyStore) LoadKeyring(context.Context) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blob, m.version, nil
}

func (m *memKeyStore) SaveKeyring(_ context.Context, blob []byte, expect uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if expect != m.version {
		return store.ErrConflict
	}
	m.blob, m.version = slices.Clone(blob), m.version+1
	return nil
}
