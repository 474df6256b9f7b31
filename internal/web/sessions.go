package web

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"

	"loginsvc/internal/store"
)

// tokenLen is the length of an scs token: 32 random bytes, base64url.
const tokenLen = 43

// validToken reports whether s has the shape of an scs token. Anything
// else (empty, oversized, binary, forged by hand) is treated as no cookie
// without asking Redis.
func validToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// sessionToken returns the first well-formed session cookie of r, or "".
func (a *App) sessionToken(r *http.Request) string {
	for _, c := range r.CookiesNamed(a.sessions.Cookie.Name) {
		if validToken(c.Value) {
			return c.Value
		}
	}
	return ""
}

// bufferedResponse holds a handler's whole response until the session is
// saved: if saving fails, none of it is sent and the user gets a clean 503
// page instead of a page mixed with an error (scs's own LoadAndSave writes
// both).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// loadAndSave replaces scs's LoadAndSave: it loads the session (a cookie
// that does not name a live, readable session means "not logged in"),
// buffers the handler's response, saves the session, and only then writes
// headers and body.
func (a *App) loadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Cookie")
		ctx, err := a.loadSession(store.TrackLoads(r.Context()), a.sessionToken(r))
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		r = r.WithContext(ctx)

		buf := &bufferedResponse{header: http.Header{}}
		next.ServeHTTP(buf, r)

		if !a.saveSession(w, r) {
			return
		}
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		if buf.status == 0 {
			buf.status = http.StatusOK
		}
		w.WriteHeader(buf.status)
		_, _ = buf.body.WriteTo(w)
	})
}

// loadSession loads the session named by token into ctx. Only a Redis
// failure is an error; an undecodable or expired session counts as none.
func (a *App) loadSession(ctx context.Context, token string) (context.Context, error) {
	loaded, err := a.sessions.Load(ctx, token)
	if errors.Is(err, store.ErrUnavailable) {
		return nil, err
	}
	if err != nil {
		a.log.Warn("unreadable session treated as logged out", "request_id", requestID(ctx), "err", err)
		return a.sessions.Load(ctx, "")
	}
	if a.sessions.Token(loaded) != "" && !a.sessions.Deadline(loaded).After(time.Now()) {
		// Past its absolute lifetime (for example after SESSION_LIFETIME
		// was shortened): end it now rather than serve it once more.
		if err := a.sessions.Destroy(loaded); err != nil {
			return nil, err
		}
		return a.sessions.Load(ctx, "")
	}
	return loaded, nil
}

// saveSession commits a changed session and writes or clears the cookie.
// It reports false if it has already answered the request with an error.
func (a *App) saveSession(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	switch a.sessions.Status(ctx) {
	case scs.Modified:
		token, _, err := a.sessions.Commit(ctx)
		if errors.Is(err, store.ErrSessionGone) {
			// Logged out while this request ran: keep it logged out and
			// do not hand the browser a cookie again.
			return true
		}
		if err != nil {
			a.serverError(w, r, err)
			return false
		}
		// The cookie lives as long as the session could (its absolute
		// deadline); Redis enforces the idle timeout on the server side.
		a.sessions.WriteSessionCookie(ctx, w, token, a.sessions.Deadline(ctx))
		w.Header().Set("Cache-Control", "no-store")
	case scs.Destroyed:
		a.sessions.WriteSessionCookie(ctx, w, "", time.Time{})
		w.Header().Set("Cache-Control", "no-store")
	}
	return true
}

// currentUser is the logged-in user's name, or "" when not logged in.
func (a *App) currentUser(ctx context.Context) string {
	return a.sessions.GetString(ctx, store.FieldUsername)
}
