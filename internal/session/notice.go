package session

import (
	"context"
	"encoding/json"
	"fmt"
)

// fieldNotice holds a one-time notice for the session's next page view:
// the kind of a security event that happened elsewhere (a sign-in from a
// new device, a password or factor change). It rides in the session
// record, so a page view pays no extra Redis read for it.
const fieldNotice = "notice"

// Notify leaves notice on every live session of user but the one whose
// public id is except, for their next page view. It returns how many it
// reached. A session saved by its own request at the same moment may
// lose the notice (the last write wins); the event is in the user's
// activity all the same.
func (m *Manager) Notify(ctx context.Context, user, except, notice string) (int, error) {
	stored, err := m.sessions.OfUser(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("notify sessions of %q: %w", user, err)
	}
	changed := stored[:0]
	for _, st := range stored {
		if except != "" && publicID(st.Hash) == except {
			continue
		}
		// The document as stored, deadline untouched: this replica's
		// lifetime clamp is not the notice's business.
		var doc sessionDoc
		if len(st.Data) > maxSessionBytes || json.Unmarshal(st.Data, &doc) != nil || doc.Values == nil {
			continue
		}
		doc.Values[fieldNotice] = notice
		b, err := json.Marshal(doc)
		if err != nil {
			continue
		}
		st.Data = b
		changed = append(changed, st)
	}
	// One pipeline for all of them: a sign-in from a new device pays one
	// round trip here, however many sessions the user has.
	n, err := m.sessions.UpdateEach(ctx, changed)
	if err != nil {
		return n, fmt.Errorf("notify sessions of %q: %w", user, err)
	}
	return n, nil
}

// TakeNotice returns the notice left on this request's session (see
// Notify), and clears it: it is shown once.
func (m *Manager) TakeNotice(ctx context.Context) string {
	if m.User(ctx) == "" {
		return ""
	}
	notice := m.scs.GetString(ctx, fieldNotice)
	if notice != "" {
		m.scs.Remove(ctx, fieldNotice)
		forget(ctx)
	}
	return notice
}

// SetNotice leaves notice on this request's own session, for the page
// after this one (a login that found a notice waiting for the account).
func (m *Manager) SetNotice(ctx context.Context, notice string) {
	if m.User(ctx) != "" && notice != "" {
		m.scs.Put(ctx, fieldNotice, notice)
		forget(ctx)
	}
}

// EndedElsewhere says why the session this request's cookie named was
// ended by someone else, once: activity.ByUser (from another device),
// ByPasswordChange, ByFactorChange, ByOperator, ByUserDeleted or
// store.EndedByCap. It is "" for a request that is logged in, sent no
// cookie, or whose session ended on its own (timed out) or was logged
// out by this browser, and on the second asking. It costs one Redis
// command, and only for a cookie that named no session, so only the
// pages a signed-out browser lands on (home, login) ask.
func (m *Manager) EndedElsewhere(ctx context.Context) (string, error) {
	r := requestOf(ctx)
	if r == nil || m.User(ctx) != "" {
		return "", nil
	}
	r.mu.Lock()
	hash := r.missing
	r.missing = ""
	r.mu.Unlock()
	if hash == "" {
		return "", nil
	}
	why, err := m.sessions.TakeEnded(ctx, hash)
	if err != nil {
		return "", fmt.Errorf("why the session ended: %w", err)
	}
	return why, nil
}
