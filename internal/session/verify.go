package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"loginsvc/internal/store"
)

// The session check of forward auth and the JSON API is the service's hot
// path: every request to every protected app pays it. It only reads the
// session, except for the idle touch (at most once per touchEvery), so in
// the steady state it needs none of what Load prepares for a page (scs's
// session data in the context, a copy of the values to change, a save).
// Verify reads the stored document and judges it directly; whenever a
// rule has to write (the touch, ending an expired or unindexed session)
// it takes the full path of Load, Check and Flush on the bytes it already
// read, so the rules and their Redis commands are exactly those of a
// loaded session.

// Verify is Load, Check and Flush in one, for a request that answers a
// proxy or a script rather than a browser (forward auth): the session
// the cookie values tokens name, whether it meets need, and the touch
// stored when one is due (only for a session that meets need, as before:
// a refused check uses nothing). Only a Redis failure is an error. A
// steady check costs one Redis read (none with the session cache) and no
// write, and writes no cookie.
func (m *Manager) Verify(ctx context.Context, need Need, tokens ...string) (Record, Verdict, error) {
	switch len(tokens) {
	case 0:
		return Record{}, NotLoggedIn, nil
	case 1:
		return m.verify(ctx, need, tokens[0], false)
	}
	// Several cookies: Load's rules pick the session among them.
	loaded, err := m.Load(ctx, tokens...)
	if err != nil {
		return Record{}, NotLoggedIn, err
	}
	return m.checkAndFlush(loaded, need)
}

// VerifyToken is Verify for a bearer token (as LoadToken is Load's): only
// an API session answers to it.
func (m *Manager) VerifyToken(ctx context.Context, need Need, token string) (Record, Verdict, error) {
	if !ValidToken(token) {
		return Record{}, NotLoggedIn, nil
	}
	return m.verify(ctx, need, token, true)
}

// verify is Verify of one token, sent as a cookie or, when bearer, as a
// bearer token.
func (m *Manager) verify(ctx context.Context, need Need, token string, bearer bool) (Record, Verdict, error) {
	hash := hashToken(token)
	b, found, err := m.sessions.View(ctx, hash)
	if errors.Is(err, store.ErrUnavailable) {
		return Record{}, NotLoggedIn, err
	}
	if err != nil {
		m.log.Warn("unreadable session treated as logged out", "err", err)
		return Record{}, NotLoggedIn, nil
	}
	if !found {
		return Record{}, NotLoggedIn, nil
	}
	d, err := m.codec.doc(b)
	if err != nil {
		m.log.Warn("unreadable session treated as logged out", "err", err)
		return Record{}, NotLoggedIn, nil
	}
	if d.base.API != bearer {
		// As in load: a page cannot ride a script's token, nor a script
		// a browser's cookie.
		return Record{}, NotLoggedIn, nil
	}
	now := time.Now()
	if d.deadline.After(now) && d.base.User == "" {
		return Record{}, NotLoggedIn, nil
	}
	if !d.deadline.After(now) || !d.indexed || m.touchDue(d.lastSeen, now) {
		// A rule writes: the full path, on the bytes just read (see
		// request.prefetched), so this costs no second read.
		loaded, err := m.loadPrefetched(ctx, token, bearer, hash, b)
		if err != nil {
			return Record{}, NotLoggedIn, err
		}
		return m.checkAndFlush(loaded, need)
	}
	rec := d.record(hash, m.cfg.IdleTimeout)
	return rec, m.judge(rec, need, now), nil
}

// checkAndFlush is Check on a loaded context, then Flush when the session
// meets need.
func (m *Manager) checkAndFlush(loaded context.Context, need Need) (Record, Verdict, error) {
	cur, verdict := m.Check(loaded, need)
	if verdict != Allowed {
		return Record{}, verdict, nil
	}
	if err := m.Flush(loaded); err != nil {
		return Record{}, NotLoggedIn, err
	}
	return cur, verdict, nil
}

// loadPrefetched is load of token, whose stored bytes b (under hash) were
// just read: the store's find answers with them instead of reading again.
func (m *Manager) loadPrefetched(ctx context.Context, token string, bearer bool, hash string, b []byte) (context.Context, error) {
	pre := &prefetched{hash: hash, data: b}
	return m.load(context.WithValue(ctx, prefetchedKey{}, pre), token, bearer)
}

// touchDue reports whether a session last seen at seen is due the touch
// that moves its idle deadline (see touch).
func (m *Manager) touchDue(seen, now time.Time) bool {
	return seen.IsZero() || now.Sub(seen) >= m.touchEvery()
}

// prefetched is a session document read moments ago, which the next find
// of its hash in the same request uses instead of reading Redis again.
// Its bytes may be the session cache's own: they are only read (decoded).
type prefetched struct {
	hash string
	data []byte
}

type prefetchedKey struct{}

// takePrefetched returns the prefetched document of hash in ctx, once.
func takePrefetched(ctx context.Context, hash string) ([]byte, bool) {
	p, _ := ctx.Value(prefetchedKey{}).(*prefetched)
	if p == nil || p.hash != hash || p.data == nil {
		return nil, false
	}
	b := p.data
	p.data = nil
	return b, true
}

// hashToken is the key hash of token, as scs computes it with
// HashTokenInStore (which New sets): SHA-256, base64url without padding.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
