package web

import (
	"bytes"
	"net/http"
)

// bufferedResponse holds a handler's whole response until the session is
// saved: if saving fails, none of it is sent and the user gets a clean 503
// page instead of a page mixed with an error (scs's own LoadAndSave writes
// both).
type bufferedResponse struct {
	header http.Header
	status int
	body   *bytes.Buffer
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
		ctx, err := a.sessions.Load(a.actorContext(r), a.sessions.Tokens(r)...)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		r = r.WithContext(ctx)

		buf := &bufferedResponse{header: http.Header{}, body: a.buffers.get()}
		defer a.buffers.put(buf.body)
		next.ServeHTTP(buf, r)

		if err := a.sessions.Save(ctx, w); err != nil {
			a.serverError(w, r, err)
			return
		}
		for k, v := range buf.header {
			if k == "Set-Cookie" || k == "Vary" {
				// The session cookie Save wrote stays beside the
				// handler's own cookies (language, flash), and
				// "Vary: Cookie" beside the page's own Vary.
				w.Header()[k] = append(w.Header()[k], v...)
				continue
			}
			w.Header()[k] = v
		}
		if buf.status == 0 {
			buf.status = http.StatusOK
		}
		w.WriteHeader(buf.status)
		_, _ = buf.body.WriteTo(w)
	})
}
