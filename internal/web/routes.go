package web

import (
	"net/http"
	"time"
)

// Handler returns the service's handler: every route, with the middleware
// in the one order production and the tests share. Middleware reads
// outside in: request log, recover, security headers, cross-origin check,
// and for pages no-store, body limit and the session load/save.
func (a *App) Handler() http.Handler {
	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", a.index)
	pages.HandleFunc("GET /login/{$}", a.loginForm)
	pages.HandleFunc("POST /login/{$}", a.login)
	pages.HandleFunc("GET /logout/{$}", a.logoutPage)
	pages.HandleFunc("POST /logout/{$}", a.logout)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /static/{file}", cacheFor(time.Hour, http.FileServerFS(a.static)))
	// Browsers ask for it on every first visit; answering "nothing here"
	// keeps 404 lines out of the log.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("/login", redirectTo("/login/"))
	mux.Handle("/logout", redirectTo("/logout/"))
	withSession := noStore(limitBody(a.loadAndSave(pages)))
	mux.Handle("/{$}", withSession)
	mux.Handle("/login/{$}", withSession)
	mux.Handle("/logout/{$}", withSession)
	mux.HandleFunc("/", a.notFound)

	// The request log sits outside panic recovery so that a panicking
	// request still gets its request id in the error line and its own
	// access-log line with status 500.
	return a.logRequests(a.recoverPanics(a.securityHeaders(a.crossOrigin(mux))))
}
