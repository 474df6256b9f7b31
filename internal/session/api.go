package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/alexedwards/scs/v2"

	"loginsvc/internal/store"
)

// StartAPI begins an API session for l, for a script rather than a
// browser: a session like a cookie's (same per-user index, cap, idle and
// absolute lifetime, listed on the sessions page and by the CLI, revoked
// the same way), marked as an API session, whose token the caller hands
// out as a bearer token. No cookie is ever written for it. It returns the
// token and the session as the sessions page shows it.
func (m *Manager) StartAPI(ctx context.Context, l Login) (string, Record, error) {
	ctx, err := m.load(ctx, "", true)
	if err != nil {
		return "", Record{}, err
	}
	l.Remember = false
	if err := m.start(ctx, l, true); err != nil {
		return "", Record{}, err
	}
	rec, _ := m.Current(ctx)
	return m.scs.Token(ctx), rec, nil
}

// LoadToken is Load for a bearer token: it loads the API session token
// names into the returned context, which the other verbs take. A token
// that names no live API session (a browser's cookie among them) means
// "not logged in"; only a Redis failure is an error. It costs one Redis
// read, and touches the session as a page view does; Flush stores that.
func (m *Manager) LoadToken(ctx context.Context, token string) (context.Context, error) {
	if !ValidToken(token) {
		token = ""
	}
	return m.load(ctx, token, true)
}

// Flush stores what this request changed, the last-seen touch of Load or
// LoadToken, without writing a cookie: for requests that answer a proxy or
// a script rather than a browser (forward auth, the JSON API). A session
// that ended meanwhile stays ended.
func (m *Manager) Flush(ctx context.Context) error {
	if m.scs.Status(ctx) != scs.Modified || m.scs.Token(ctx) == "" {
		return nil
	}
	if _, _, err := m.scs.Commit(ctx); err != nil && !errors.Is(err, store.ErrSessionGone) {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}
