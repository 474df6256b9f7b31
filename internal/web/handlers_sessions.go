package web

import (
	"errors"
	"net/http"
	"time"

	"loginsvc/internal/session"
)

// sessionRow is one session on the sessions page.
type sessionRow struct {
	session.Record
	// Current marks the session of this request ("this device").
	Current bool
}

type sessionsPage struct {
	Rows []sessionRow
	// Others counts the rows that are not this session.
	Others int
}

// sessionsPage serves GET /sessions/: the user's live sessions, newest
// first, each but this one with a button that signs it out.
func (a *App) sessionsPage(w http.ResponseWriter, r *http.Request) {
	a.showSessions(w, r, http.StatusOK, nil)
}

// showSessions renders the sessions page with status and, when f is not
// nil, f as its message.
func (a *App) showSessions(w http.ResponseWriter, r *http.Request, status int, f *flash) {
	ctx := r.Context()
	records, err := a.sessions.List(ctx, a.currentUser(ctx))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	cur, _ := a.sessions.Current(ctx)
	p := sessionsPage{Rows: make([]sessionRow, 0, len(records))}
	for _, rec := range records {
		row := sessionRow{Record: rec, Current: rec.ID == cur.ID}
		if row.Current {
			// In use right now: the stored time lags by up to
			// session.LastSeenEvery.
			row.LastSeenAt = time.Now()
		} else {
			p.Others++
		}
		p.Rows = append(p.Rows, row)
	}
	if f == nil {
		a.render(w, r, status, "sessions.html", p)
		return
	}
	a.renderNotice(w, r, status, "sessions.html", p, f)
}

// revokeSession serves POST /sessions/{id}/revoke: it ends one of the
// user's sessions, on every replica at once, and goes back to the list. An
// id that names none of the user's live sessions (someone else's, one that
// already ended) answers 404 with the list and a message. Naming this
// very session logs out.
func (a *App) revokeSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.currentUser(ctx)
	id := r.PathValue("id")
	if cur, ok := a.sessions.Current(ctx); ok && cur.ID == id {
		a.logout(w, r)
		return
	}
	err := a.sessions.Revoke(ctx, user, id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		a.showSessions(w, r, http.StatusNotFound, newFlash("session_not_found", 0))
		return
	case err != nil:
		a.serverError(w, r, err)
		return
	}
	a.log.Info("session revoked", "user", user, "session", id, "request_id", requestID(ctx))
	a.setFlash(w, newFlash("session_revoked", 0))
	http.Redirect(w, r, "/sessions/", http.StatusSeeOther)
}

// revokeOtherSessions serves POST /sessions/revoke-others: it ends every
// session of the user but this one and says how many ended.
func (a *App) revokeOtherSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	user := a.currentUser(ctx)
	cur, _ := a.sessions.Current(ctx)
	n, err := a.sessions.RevokeAll(ctx, user, cur.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("other sessions revoked", "user", user, "ended", n, "request_id", requestID(ctx))
	a.setFlash(w, newFlash("others_revoked", n))
	http.Redirect(w, r, "/sessions/", http.StatusSeeOther)
}
