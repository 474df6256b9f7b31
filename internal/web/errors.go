package web

import (
	"errors"
	"net/http"

	"loginsvc/internal/auth"
	"loginsvc/internal/store"
)

// serverError logs err once with the request's identity and shows a
// generic page: a browser never sees err.Error(). A Redis outage is not a
// bug and answers 503 instead of 500, and so does a full hashing queue
// (auth.ErrBusy): both pass by themselves.
func (a *App) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, auth.ErrBusy) {
		a.unavailable(w, r, err)
		return
	}
	a.log.Error("server error", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r.Context()), "err", err)
	a.errorPage(w, r, http.StatusInternalServerError, errServer)
}

// unavailable answers 503 with a short page and a Retry-After, for failures
// that go away by themselves (Redis down or too slow, too many logins
// being hashed).
func (a *App) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Warn("service unavailable", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r.Context()), "err", err)
	w.Header().Set("Retry-After", "2")
	a.errorPage(w, r, http.StatusServiceUnavailable, errUnavailable)
}

// badRequest answers 400 for a request that cannot be understood.
func (a *App) badRequest(w http.ResponseWriter, r *http.Request) {
	a.errorPage(w, r, http.StatusBadRequest, errBadRequest)
}

// parseForm reads a posted form (bounded by limitBody) and reports whether
// the handler may go on; if not, it has answered 413 for an oversized
// form or 400 for an unreadable one.
func (a *App) parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		a.errorPage(w, r, http.StatusRequestEntityTooLarge, errTooLarge)
		return false
	}
	a.badRequest(w, r)
	return false
}
