package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// recoverPanics turns a panic in a handler into a logged 500 page, so one
// bad request neither kills the connection silently nor shows a stack.
func (a *App) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				w.Header().Set("Connection", "close")
				a.serverError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests gives every request an id (echoed in X-Request-Id) and logs
// one line per request. It logs the path, never the query, cookies or form,
// so no token or password reaches the log.
func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		next.ServeHTTP(rec, r)
		a.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "client", a.clientIP(r).String(), "request_id", id)
	})
}

// securityHeaders sets the headers every response carries: which replica
// answered, and the browser hardening headers.
func (a *App) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Served-By", a.cfg.InstanceID)
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if a.cfg.CookieSecure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// noStore keeps pages that may show user data out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// maxFormBytes bounds a form body: a login form is well under 2 KB.
const maxFormBytes = 4 << 10

// limitBody caps request bodies, so a huge POST is refused after 4 KB
// instead of being read into memory.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		next.ServeHTTP(w, r)
	})
}

// crossOrigin refuses state-changing requests that a browser marks as
// cross-site (Sec-Fetch-Site, Origin), login included: login CSRF would
// sign a victim into the attacker's account.
func (a *App) crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.log.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r.Context()))
		a.errorPage(w, r, http.StatusForbidden, errForbidden)
	}))
	return cop.Handler(next)
}

// cacheFor lets browsers keep static files for d: embedded files carry no
// modification time, so without it every page view fetches them again.
func cacheFor(d time.Duration, next http.Handler) http.Handler {
	value := fmt.Sprintf("public, max-age=%d", int(d.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", value)
		next.ServeHTTP(w, r)
	})
}

// requireLogin lets only logged-in users through to the account pages.
// Anyone else is sent (303) to the login form, which comes back here
// afterwards: to the page asked for on a GET, to the section's own page
// (/sessions/, /password/) after a form post, whose data is not kept. It
// runs inside loadAndSave.
func (a *App) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.currentUser(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		back := r.URL.RequestURI()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			section, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			back = "/" + section + "/"
		}
		http.Redirect(w, r, "/login/?next="+url.QueryEscape(safeNext(back)), http.StatusSeeOther)
	})
}
