package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"loginsvc/internal/store"
)

// ErrNoRequest is returned when scs saves a session outside a context
// prepared by Manager.Load: without it the store cannot tell an update
// from a new session, and guessing would reopen the logout-resurrection
// hole.
var ErrNoRequest = errors.New("session saved outside a request loaded by session.Manager")

// errAnonymous refuses to store a session that no login started: the
// service keeps nothing for visitors who are not logged in.
var errAnonymous = errors.New("refusing to store a session without a login")

// request is what this package remembers about one request's session
// between Load and Save. It lives in the request's context under a key
// only this package knows.
type request struct {
	mu sync.Mutex
	// loaded is the stored token this request found in Redis (and, after
	// a successful create, the one it made): saves of it are updates.
	loaded string
	// user owns loaded: deleting it also takes it out of user's index.
	user string
	// presented is the token of the session the request's cookie named
	// and that loaded: a save that keeps it needs no Set-Cookie, the
	// browser has it with the same expiry.
	presented string
	// owner, when set by Start or Renew, is whom the next new token is
	// created for.
	owner *store.Owner
	// evicted counts sessions ended by the per-user cap at creation.
	evicted int
	// siblings are the other live sessions the request's cookies named
	// (see Manager.Load): End ends them too.
	siblings []storedSession
	// bearer marks a request that named its session with a bearer token
	// (LoadToken): only an API session loads, and no cookie is written.
	bearer bool
	// doc is the stored document FindCtx read, decoded (shared, never
	// changed): while scs reports the session unmodified, it is what scs
	// holds, and the verbs read their fields from it (Manager.stored)
	// instead of asking scs for each and parsing times again.
	doc *doc
	// current is the session as Current decoded it, kept so that a
	// request decodes its record once however often it asks; every verb
	// that changes the session forgets it.
	current *Record
	// missing is the stored token a cookie named and Redis did not hold
	// (ended, timed out): EndedElsewhere asks the store why, on the pages
	// that say so.
	missing string
}

// storedSession names one stored session and the user whose index holds
// it.
type storedSession struct{ hash, user string }

type requestKey struct{}

func (r *request) presentedToken() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.presented
}

// forget drops the request's decoded record after a change.
func forget(ctx context.Context) {
	if r := requestOf(ctx); r != nil {
		r.mu.Lock()
		r.current = nil
		r.doc = nil
		r.mu.Unlock()
	}
}

func requestOf(ctx context.Context) *request {
	r, _ := ctx.Value(requestKey{}).(*request)
	return r
}

// scsStore is the scs.CtxStore the manager runs on: it turns scs's find,
// commit and delete into the store's find, update, create-and-index and
// delete-and-unindex, using what Load and Start recorded in the request.
type scsStore struct {
	sessions *store.SessionStore
	max      int
	// idle is the idle timeout: every save ends the key at the earlier of
	// the absolute deadline scs passes and now + idle.
	idle time.Duration
	// codec decodes what FindCtx reads, once (scs's Decode of the same
	// bytes then finds it in the codec's memo).
	codec JSONCodec
}

// FindCtx implements scs.CtxStore.
func (s scsStore) FindCtx(ctx context.Context, hash string) ([]byte, bool, error) {
	b, found := takePrefetched(ctx, hash)
	if !found {
		var err error
		b, found, err = s.sessions.Find(ctx, hash)
		if err != nil {
			return nil, false, err
		}
	}
	if !found {
		if r := requestOf(ctx); r != nil {
			r.mu.Lock()
			r.missing = hash
			r.mu.Unlock()
		}
		return nil, false, nil
	}
	if r := requestOf(ctx); r != nil {
		d, err := s.codec.doc(b)
		if err != nil {
			d = nil // scs's Decode fails on it too, and Load says why
		}
		r.mu.Lock()
		r.loaded = hash
		r.doc = d
		r.mu.Unlock()
	}
	return b, true, nil
}

// CommitCtx implements scs.CtxStore.
func (s scsStore) CommitCtx(ctx context.Context, hash string, b []byte, expiry time.Time) error {
	r := requestOf(ctx)
	if r == nil {
		return ErrNoRequest
	}
	if s.idle > 0 {
		if e := time.Now().Add(s.idle); e.Before(expiry) {
			expiry = e
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if hash == r.loaded {
		return s.sessions.Update(ctx, hash, b, expiry)
	}
	if r.owner == nil {
		return errAnonymous
	}
	n, err := s.sessions.Create(ctx, hash, b, expiry, *r.owner, s.max)
	if err != nil {
		return err
	}
	r.loaded, r.user, r.owner = hash, r.owner.User, nil
	r.evicted += n
	return nil
}

// DeleteCtx implements scs.CtxStore.
func (s scsStore) DeleteCtx(ctx context.Context, hash string) error {
	user := ""
	if r := requestOf(ctx); r != nil {
		r.mu.Lock()
		if hash == r.loaded {
			user, r.loaded = r.user, ""
		}
		r.mu.Unlock()
	}
	return s.sessions.Delete(ctx, hash, user)
}

// Find implements scs.Store; scs always calls the context variants.
func (s scsStore) Find(hash string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), hash)
}

// Commit implements scs.Store. Without a request there is no load
// tracking, so it fails with ErrNoRequest.
func (s scsStore) Commit(hash string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), hash, b, expiry)
}

// Delete implements scs.Store.
func (s scsStore) Delete(hash string) error {
	return s.DeleteCtx(context.Background(), hash)
}
