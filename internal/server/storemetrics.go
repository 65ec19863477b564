package server

import (
	"context"
	"time"

	"github.com/latch-sessions/latch/store"
)

// instrument wraps s so that every operation is timed into m. The result
// implements exactly the optional interfaces (store.Sweeper, store.Pinger,
// store.KeyStore) that s implements, so capability checks on it give the
// same answers as on s.
func instrument(s store.Store, m *metrics) store.Store {
	in := &instStore{s: s, m: m}
	sw, sok := s.(store.Sweeper)
	pi, pok := s.(store.Pinger)
	ks, kok := s.(store.KeyStore)
	swm, pim, ksm := instSweeper{in, sw}, instPinger{in, pi}, instKeyStore{in, ks}
	switch {
	case sok && pok && kok:
		return struct {
			*instStore
			instSweeper
			instPinger
			instKeyStore
		}{in, swm, pim, ksm}
	case sok && pok:
		return struct {
			*instStore
			instSweeper
			instPinger
		}{in, swm, pim}
	case sok && kok:
		return struct {
			*instStore
			instSweeper
			instKeyStore
		}{in, swm, ksm}
	case pok && kok:
		return struct {
			*instStore
			instPinger
			instKeyStore
		}{in, pim, ksm}
	case sok:
		return struct {
			*instStore
			instSweeper
		}{in, swm}
	case pok:
		return struct {
			*instStore
			instPinger
		}{in, pim}
	case kok:
		return struct {
			*instStore
			instKeyStore
		}{in, ksm}
	}
	return in
}

type instStore struct {
	s store.Store
	m *metrics
}

func (i *instStore) Get(ctx context.Context, id store.ID) (*store.Record, error) {
	t := monoNow()
	r, err := i.s.Get(ctx, id)
	i.m.storeOp("get", t, err)
	return r, err
}

// GetFresh forwards to s's, or its Get where it has no cache to bypass
// (store.GetFresh), so every instrumented store is a store.FreshReader.
func (i *instStore) GetFresh(ctx context.Context, id store.ID) (*store.Record, error) {
	t := monoNow()
	r, err := store.GetFresh(ctx, i.s, id)
	i.m.storeOp("get", t, err)
	return r, err
}

func (i *instStore) Create(ctx context.Context, rec *store.Record, max int) ([]store.ID, error) {
	t := monoNow()
	ids, err := i.s.Create(ctx, rec, max)
	i.m.storeOp("create", t, err)
	return ids, err
}

func (i *instStore) Update(ctx context.Context, rec *store.Record) error {
	t := monoNow()
	err := i.s.Update(ctx, rec)
	i.m.storeOp("update", t, err)
	return err
}

func (i *instStore) RotateRefresh(ctx context.Context, r store.Rotation) (*store.Record, error) {
	t := monoNow()
	rec, err := i.s.RotateRefresh(ctx, r)
	i.m.storeOp("rotate_refresh", t, err)
	return rec, err
}

func (i *instStore) Revoke(ctx context.Context, id store.ID, reason string, at time.Time) error {
	t := monoNow()
	err := i.s.Revoke(ctx, id, reason, at)
	i.m.storeOp("revoke", t, err)
	return err
}

func (i *instStore) RevokeSubject(ctx context.Context, subject string, except store.ID, reason string, at time.Time) ([]store.ID, error) {
	t := monoNow()
	ids, err := i.s.RevokeSubject(ctx, subject, except, reason, at)
	i.m.storeOp("revoke_subject", t, err)
	return ids, err
}

func (i *instStore) List(ctx context.Context, subject string, now time.Time) ([]*store.Record, error) {
	t := monoNow()
	recs, err := i.s.List(ctx, subject, now)
	i.m.storeOp("list", t, err)
	return recs, err
}

type instSweeper struct {
	in *instStore
	s  store.Sweeper
}

func (i instSweeper) Sweep(ctx context.Context, now time.Time) (int, error) {
	t := monoNow()
	n, err := i.s.Sweep(ctx, now)
	i.in.m.storeOp("sweep", t, err)
	return n, err
}

type instPinger struct {
	in *instStore
	p  store.Pinger
}

func (i instPinger) Ping(ctx context.Context) error {
	t := monoNow()
	err := i.p.Ping(ctx)
	i.in.m.storeOp("ping", t, err)
	return err
}

type instKeyStore struct {
	in *instStore
	k  store.KeyStore
}

func (i instKeyStore) LoadKeyring(ctx context.Context) ([]byte, uint64, error) {
	t := monoNow()
	b, v, err := i.k.LoadKeyring(ctx)
	i.in.m.storeOp("load_keyring", t, err)
	return b, v, err
}

// KeyringVersion forwards to the store's store.KeyringVersioner, so the
// keyring's check on every access-token verification stays a version read
// (it was a LoadKeyring of the whole blob through this wrapper). A key
// store without one reports the version LoadKeyring reads.
func (i instKeyStore) KeyringVersion(ctx context.Context) (uint64, error) {
	t := monoNow()
	var v uint64
	var err error
	if kv, ok := i.k.(store.KeyringVersioner); ok {
		v, err = kv.KeyringVersion(ctx)
	} else {
		_, v, err = i.k.LoadKeyring(ctx)
	}
	i.in.m.storeOp("keyring_version", t, err)
	return v, err
}

func (i instKeyStore) SaveKeyring(ctx context.Context, blob []byte, expect uint64) error {
	t := monoNow()
	err := i.k.SaveKeyring(ctx, blob, expect)
	i.in.m.storeOp("save_keyring", t, err)
	return err
}
