package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/store"
)

// ErrNotFound means no live session has that id (for that user).
var ErrNotFound = errors.New("no such session")

// ErrLoginRaced means the user was deleted, or the password changed,
// between checking the login and starting its session: no session was
// started, and the login must be refused.
var ErrLoginRaced = errors.New("user changed during login")

// Login is what a successful login tells Start.
type Login struct {
	// User is the canonical username.
	User string
	// Stamp is the password hash the login was checked against (see
	// store.Owner): the session is only started while it is current.
	Stamp string
	// IP is the client address.
	IP string
	// UserAgent is the browser's User-Agent header.
	UserAgent string
	// Remember makes the cookie outlive the browser session.
	Remember bool
	// Methods are how the user authenticated (RFC 8176 names, see
	// MethodPassword); none means a password.
	Methods []string
}

// Start begins a session for l in place of whatever session the request
// had: a new token (so a token planted before login is worthless), empty
// values (nothing a planted session held carries over), and the login
// record. It is stored at once, so a login racing a delete or password
// change is refused here (ErrLoginRaced) rather than after the page said
// "welcome".
func (m *Manager) Start(ctx context.Context, l Login) error {
	return m.start(ctx, l, false)
}

// start is Start of a browser session or, when api, of an API session.
func (m *Manager) start(ctx context.Context, l Login, api bool) error {
	r := requestOf(ctx)
	if r == nil {
		return ErrNoRequest
	}
	if err := m.scs.RenewToken(ctx); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	if err := m.scs.Clear(ctx); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	now := time.Now().UTC()
	ends := now.Add(m.cfg.Lifetime)
	m.scs.Put(ctx, fieldUsername, l.User)
	m.scs.Put(ctx, fieldLoginAt, now.Format(time.RFC3339Nano))
	m.scs.Put(ctx, fieldLastSeenAt, now.Format(time.RFC3339Nano))
	m.scs.Put(ctx, fieldExpiresAt, ends.Format(time.RFC3339Nano))
	m.scs.Put(ctx, fieldLoginIP, l.IP)
	m.scs.Put(ctx, fieldUserAgent, truncate(l.UserAgent, maxUserAgentBytes))
	methods := l.Methods
	if len(methods) == 0 {
		methods = []string{MethodPassword}
	}
	m.scs.Put(ctx, fieldAMR, slices.Clone(methods))
	m.scs.Put(ctx, fieldAuthTime, now.Format(time.RFC3339Nano))
	if api {
		m.scs.Put(ctx, fieldKind, kindAPI)
	}
	m.scs.RememberMe(ctx, l.Remember)
	// The key, the cookie and the index score end at the same instant.
	m.scs.SetDeadline(ctx, ends)
	if err := m.create(ctx, r, store.Owner{User: l.User, Stamp: l.Stamp, Until: ends}); err != nil {
		return err
	}
	m.cfg.Events.SessionStarted()
	return nil
}

// create stores the request's session under its new token for owner.
func (m *Manager) create(ctx context.Context, r *request, owner store.Owner) error {
	r.mu.Lock()
	r.owner = &owner
	r.current = nil
	r.mu.Unlock()
	if _, _, err := m.scs.Commit(ctx); err != nil {
		if errors.Is(err, store.ErrOwnerChanged) {
			// Drop the refused session, so that Save clears the cookie
			// instead of trying to create it again and failing the page.
			r.mu.Lock()
			r.owner = nil
			r.mu.Unlock()
			if err := m.scs.Destroy(ctx); err != nil {
				return fmt.Errorf("drop refused session of %q: %w", owner.User, err)
			}
			return ErrLoginRaced
		}
		return fmt.Errorf("store new session of %q: %w", owner.User, err)
	}
	r.mu.Lock()
	evicted := r.evicted
	r.evicted = 0
	r.mu.Unlock()
	if evicted > 0 {
		m.cfg.Activity.Record(ctx, activity.Event{User: owner.User, Kind: activity.SessionRevoked, Fields: map[string]string{"by": activity.ByCap, "count": strconv.Itoa(evicted)}})
		m.cfg.Events.SessionsEnded("cap", evicted)
		m.log.Info("oldest sessions ended: too many for one user", "user", owner.User, "ended", evicted, "max", m.cfg.MaxPerUser)
	}
	return nil
}

// Renew gives the request's session a new token, keeping its record and
// deadlines, and binds it to stamp (the new password hash): after a
// password change, the token that was in use with the old password is
// worthless.
func (m *Manager) Renew(ctx context.Context, stamp string) error {
	return m.renew(ctx, stamp)
}

// Elevate records a full authentication of the request's session just
// now, by methods (a re-authentication, or the second factor of a step-up:
// the caller passes every method the session now stands on), and gives
// it a new token bound to stamp, the password hash that is current: the
// token that was in use before is worthless, as after a login. It stays
// the same session otherwise: same login time, deadlines and place on
// the sessions page.
func (m *Manager) Elevate(ctx context.Context, methods []string, stamp string) error {
	if m.User(ctx) == "" {
		return errAnonymous
	}
	m.scs.Put(ctx, fieldAMR, slices.Clone(methods))
	m.scs.Put(ctx, fieldAuthTime, time.Now().UTC().Format(time.RFC3339Nano))
	return m.renew(ctx, stamp)
}

func (m *Manager) renew(ctx context.Context, stamp string) error {
	r := requestOf(ctx)
	if r == nil {
		return ErrNoRequest
	}
	user := m.User(ctx)
	if user == "" {
		return errAnonymous
	}
	ends := m.scs.Deadline(ctx)
	if t, ok := timeValue(m.values(ctx), fieldExpiresAt); ok && t.Before(ends) {
		ends = t
	}
	if err := m.scs.RenewToken(ctx); err != nil {
		return fmt.Errorf("renew session: %w", err)
	}
	// RenewToken restarts scs's deadline at now + Lifetime; the key and
	// the cookie would outlive the absolute deadline the index holds.
	m.scs.SetDeadline(ctx, ends)
	return m.create(ctx, r, store.Owner{User: user, Stamp: stamp, Until: ends})
}

// User is the name of the user logged in with this request's session, or
// "" when not logged in (or ctx was not loaded by Load).
func (m *Manager) User(ctx context.Context) string {
	if requestOf(ctx) == nil {
		// Not a request loaded by Load (a command-line tool, a test of
		// the use cases): nobody is logged in, and scs would panic.
		return ""
	}
	return m.scs.GetString(ctx, fieldUsername)
}

// Current is this request's session, or false when not logged in. Its
// ExpiresAt is the idle deadline as of this request: the last save (which
// is the last-seen time) plus the idle timeout.
func (m *Manager) Current(ctx context.Context) (Record, bool) {
	if r, d := m.stored(ctx); d != nil {
		// The document as read: its record was built when it was first
		// decoded, by this replica, for any request.
		if d.base.User == "" {
			return Record{}, false
		}
		r.mu.Lock()
		hash := r.loaded
		r.mu.Unlock()
		return d.record(hash, m.cfg.IdleTimeout), true
	}
	if m.User(ctx) == "" {
		return Record{}, false
	}
	r := requestOf(ctx)
	hash := ""
	if r != nil {
		r.mu.Lock()
		hash = r.loaded
		cached := r.current
		r.mu.Unlock()
		if cached != nil {
			return *cached, true
		}
	}
	values := m.values(ctx)
	expires := time.Time{}
	if seen, ok := timeValue(values, fieldLastSeenAt); ok && m.cfg.IdleTimeout > 0 {
		expires = seen.Add(m.cfg.IdleTimeout)
	}
	rec := recordOf(hash, m.scs.Deadline(ctx), values, expires)
	if r != nil {
		r.mu.Lock()
		r.current = &rec
		r.mu.Unlock()
	}
	return rec, true
}

// End logs this request's session out: it is deleted in Redis, so its
// token is worthless on every replica, and Save clears the cookie. Any
// other live session a cookie of the request named (see Load) ends too,
// with its index entry: a cookie planted beside the real one cannot make
// logout end the wrong session and leave the real one alive.
func (m *Manager) End(ctx context.Context) error {
	var siblings []storedSession
	if r := requestOf(ctx); r != nil {
		r.mu.Lock()
		siblings, r.siblings = r.siblings, nil
		r.mu.Unlock()
	}
	ended := 0
	if cur, ok := m.Current(ctx); ok {
		ended = 1
		m.cfg.Activity.Record(ctx, activity.Event{User: cur.User, Kind: activity.SignOut, Session: cur.ID})
	}
	forget(ctx)
	if err := m.scs.Destroy(ctx); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	for _, s := range siblings {
		if err := m.sessions.Delete(ctx, s.hash, s.user); err != nil {
			m.cfg.Events.SessionsEnded("logout", ended)
			return fmt.Errorf("end session named by another cookie: %w", err)
		}
		ended++
	}
	m.cfg.Events.SessionsEnded("logout", ended)
	return nil
}

// List returns user's live sessions, newest first.
func (m *Manager) List(ctx context.Context, user string) ([]Record, error) {
	stored, err := m.sessions.OfUser(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", user, err)
	}
	records := make([]Record, 0, len(stored))
	for _, st := range stored {
		rec, ok := m.decode(st)
		if !ok || rec.User != user {
			continue
		}
		records = append(records, rec)
	}
	sortNewestFirst(records)
	return records, nil
}

func sortNewestFirst(records []Record) {
	slices.SortFunc(records, func(a, b Record) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// decode reads a stored session; a session that does not decode is left
// out of every listing (it also reads as "not logged in").
func (m *Manager) decode(st store.Stored) (Record, bool) {
	deadline, values, err := m.codec.Decode(st.Data)
	if err != nil {
		return Record{}, false
	}
	rec := recordOf(st.Hash, deadline, values, st.Expires)
	rec.Device = m.devices.describe(rec.UserAgent)
	return rec, true
}

// Revoke ends user's session id. A user can only ever name their own
// sessions: an id of someone else's is ErrNotFound, as is a malformed one.
// The browser that held it is told on its next page why it was signed
// out (EndedElsewhere), by ctx's activity reason.
func (m *Manager) Revoke(ctx context.Context, user, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	by := activity.ReasonOf(ctx, activity.ByUser)
	n, err := m.sessions.EndOfUser(ctx, user, by, func(hash string) bool { return publicID(hash) == id })
	m.cfg.Events.SessionsEnded("revoke", n)
	if n > 0 {
		m.cfg.Activity.Record(ctx, activity.Event{User: user, Kind: activity.SessionRevoked, Session: id, Fields: map[string]string{"by": by, "count": "1"}})
	}
	if err != nil {
		return fmt.Errorf("revoke session of %q: %w", user, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// RevokeAll ends every session of user except the one whose id is except
// ("" ends all), and returns how many it ended. Their browsers are told
// why, as by Revoke.
func (m *Manager) RevokeAll(ctx context.Context, user, except string) (int, error) {
	by := activity.ReasonOf(ctx, activity.ByUser)
	n, err := m.sessions.EndOfUser(ctx, user, by, func(hash string) bool { return except == "" || publicID(hash) != except })
	m.cfg.Events.SessionsEnded("revoke", n)
	if n > 0 {
		m.cfg.Activity.Record(ctx, activity.Event{User: user, Kind: activity.SessionRevoked, Fields: map[string]string{"by": by, "count": strconv.Itoa(n)}})
	}
	if err != nil {
		return n, fmt.Errorf("end sessions of %q: %w", user, err)
	}
	return n, nil
}

// Each calls fn for every session in Redis, in no particular order, with
// memory bounded by one SCAN batch: for operators' tools.
func (m *Manager) Each(ctx context.Context, fn func(Record) error) error {
	return m.sessions.Each(ctx, func(st store.Stored) error {
		rec, ok := m.decode(st)
		if !ok {
			return nil
		}
		return fn(rec)
	})
}

// Find returns the session with public id id. Ids carry no user, by
// design, so it walks every session key with SCAN, but it reads only the
// one whose id matches.
func (m *Manager) Find(ctx context.Context, id string) (Record, error) {
	if !validID(id) {
		return Record{}, ErrNotFound
	}
	st, found, err := m.sessions.Lookup(ctx, func(hash string) bool { return publicID(hash) == id })
	if err != nil {
		return Record{}, fmt.Errorf("find session %s: %w", id, err)
	}
	if !found {
		return Record{}, ErrNotFound
	}
	rec, ok := m.decode(st)
	if !ok {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Count returns how many sessions Redis holds (SCAN, no reads).
func (m *Manager) Count(ctx context.Context) (int, error) {
	return m.sessions.Count(ctx)
}
