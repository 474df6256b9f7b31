package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSessionGone is returned by CommitCtx when the session it would save
// was deleted (logged out, revoked) after this request loaded it. The
// request's changes are dropped instead of resurrecting the session.
var ErrSessionGone = errors.New("session no longer exists")

// ErrNotTracked is returned by CommitCtx when the context was not prepared
// with TrackLoads: without it the store cannot tell an update from a new
// session, and guessing would reopen the logout-resurrection hole.
var ErrNotTracked = errors.New("session commit without TrackLoads context")

// SessionStore is an scs store (scs.CtxStore and scs.IterableCtxStore) on
// go-redis that keeps scs/redisstore's key layout but never brings a deleted
// session back: a session loaded by this request is saved only if it still
// exists (SET XX), a new one only if its key is free (SET NX).
type SessionStore struct {
	client   redis.UniversalClient
	timeouts Timeouts
}

// NewSessionStore returns a store on client. Any redis.UniversalClient
// works: a single node, Sentinel (failover) or Cluster client.
func NewSessionStore(client redis.UniversalClient, t Timeouts) *SessionStore {
	return &SessionStore{client: client, timeouts: t.withDefaults()}
}

type trackKey struct{}

// loads remembers which stored tokens this request found, so CommitCtx
// knows whether it is updating an existing session or creating one.
type loads struct {
	mu    sync.Mutex
	found map[string]bool
}

// TrackLoads returns a context in which the store remembers the sessions it
// finds. The session middleware calls it once per request before loading
// the session; CommitCtx refuses to work without it.
func TrackLoads(ctx context.Context) context.Context {
	return context.WithValue(ctx, trackKey{}, &loads{found: map[string]bool{}})
}

func tracked(ctx context.Context) *loads {
	l, _ := ctx.Value(trackKey{}).(*loads)
	return l
}

func (s *SessionStore) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeouts.Op)
}

// FindCtx implements scs.CtxStore.
func (s *SessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	b, err := s.client.Get(ctx, SessionKey(token)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("find session", err)
	}
	if l := tracked(ctx); l != nil {
		l.mu.Lock()
		l.found[token] = true
		l.mu.Unlock()
	}
	return b, true, nil
}

// CommitCtx implements scs.CtxStore. The key expires at expiry (PXAT), which
// scs sets to the earlier of the idle and the absolute deadline.
func (s *SessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	l := tracked(ctx)
	if l == nil {
		return fmt.Errorf("commit session: %w", ErrNotTracked)
	}
	l.mu.Lock()
	existing := l.found[token]
	l.mu.Unlock()

	args := redis.SetArgs{ExpireAt: expiry, Mode: "NX"}
	if existing {
		args.Mode = "XX"
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err := s.client.SetArgs(ctx, SessionKey(token), b, args).Err()
	switch {
	case errors.Is(err, redis.Nil) && existing:
		return fmt.Errorf("commit session: %w", ErrSessionGone)
	case errors.Is(err, redis.Nil):
		// A fresh 256-bit token whose key already exists: never by
		// chance, so refuse rather than overwrite someone's session.
		return errors.New("commit session: new session token already in use")
	case err != nil:
		return unavailable("commit session", err)
	}
	return nil
}

// DeleteCtx implements scs.CtxStore.
func (s *SessionStore) DeleteCtx(ctx context.Context, token string) error {
	if l := tracked(ctx); l != nil {
		l.mu.Lock()
		delete(l.found, token)
		l.mu.Unlock()
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if err := s.client.Del(ctx, SessionKey(token)).Err(); err != nil {
		return unavailable("delete session", err)
	}
	return nil
}

// AllCtx implements scs.IterableCtxStore with SCAN. It is meant for
// operators' tools, not for request paths.
func (s *SessionStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	all := map[string][]byte{}
	err := scan(ctx, s.client, sessionPattern(), func(ctx context.Context, c redis.Cmdable, key string) error {
		b, err := c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil // expired between SCAN and GET
		}
		if err != nil {
			return err
		}
		all[key[len(SessionPrefix):]] = b
		return nil
	})
	if err != nil {
		return nil, unavailable("list sessions", err)
	}
	return all, nil
}

// DeleteWhere deletes every session whose decoded values satisfy match and
// returns how many it deleted. Sessions that do not decode are left alone.
// It walks the keyspace with SCAN; the per-user session index planned next
// will replace the walk for per-user revocation.
func (s *SessionStore) DeleteWhere(ctx context.Context, codec JSONCodec, match func(values map[string]any) bool) (int, error) {
	n := 0
	err := scan(ctx, s.client, sessionPattern(), func(ctx context.Context, c redis.Cmdable, key string) error {
		b, err := c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		_, values, err := codec.Decode(b)
		if err != nil || !match(values) {
			return nil
		}
		if err := c.Del(ctx, key).Err(); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, unavailable("delete sessions", err)
	}
	return n, nil
}

// Find implements scs.Store for callers without a context.
func (s *SessionStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit implements scs.Store. Without a request context there is no load
// tracking, so it always fails with ErrNotTracked; use CommitCtx.
func (s *SessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete implements scs.Store.
func (s *SessionStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// All implements scs.IterableStore.
func (s *SessionStore) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}
