package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
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

// Observer is told what the HTTP layer sees, for metrics. It is called on
// every request's goroutine, so it must be quick and safe for concurrent
// use.
type Observer interface {
	// Request is one answered request: the route pattern that served it
	// (bounded, unlike the path), its status and how long it took.
	Request(route string, status int, elapsed time.Duration)
	// Login is one login attempt's result: LoginSuccess, LoginInvalid,
	// LoginThrottled, LoginUnavailable, LoginError or LoginSecondStep.
	Login(result string)
	// SecondStep is one second-factor check: its method ("totp",
	// "recovery", or "code" when a wrong code matched neither) and
	// SecondStepSuccess or SecondStepFailure.
	SecondStep(method, result string)
}

// Login results, as the Observer hears them.
const (
	LoginSuccess     = "success"
	LoginInvalid     = "invalid"
	LoginThrottled   = "throttled"
	LoginUnavailable = "unavailable" // Redis down or too slow: 503
	LoginError       = "error"       // anything else: 500
	LoginSecondStep  = "second_step" // right password, second step due
)

// Second-step results, as the Observer hears them.
const (
	SecondStepSuccess = "success"
	SecondStepFailure = "failure"
)

// loginFailure is the result of a login that failed with an error other
// than bad credentials or a throttle.
func loginFailure(err error) string {
	// A full hashing queue is answered like a lost Redis: 503, retry.
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, auth.ErrBusy) {
		return LoginUnavailable
	}
	return LoginError
}

type noObserver struct{}

func (noObserver) Request(string, int, time.Duration) {}
func (noObserver) Login(string)                       {}
func (noObserver) SecondStep(string, string)          {}

type requestInfoKey struct{}

// requestInfo is what the request log learns about a request while it
// runs: its id, and the pattern of the innermost mux that routed it.
type requestInfo struct {
	id    string
	route string
}

func requestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
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

// maxRequestIDLen bounds an X-Request-Id taken from the client.
const maxRequestIDLen = 64

// saneRequestID reports whether an incoming X-Request-Id may be kept: 1 to
// 64 of [A-Za-z0-9._-], so it can neither forge a log line nor carry
// anything long.
func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// logRequests gives every request an id (a sane incoming X-Request-Id, as
// a load balancer or a caller tracing a request sets it, else a new one;
// echoed in X-Request-Id), then logs one line per request (at debug for
// the health checks, see requestLogLevel) and tells the Observer. It logs
// the path and the route pattern, never the query, headers, cookies or
// form, so no token or password reaches the log.
func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// One allocation for what the log learns about the request: the
		// status, the route, and the id's header value.
		rec := &loggedRequest{statusRecorder: statusRecorder{ResponseWriter: w}}
		rec.id[0] = r.Header.Get("X-Request-Id")
		if !saneRequestID(rec.id[0]) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			rec.id[0] = hex.EncodeToString(b[:])
		}
		id := rec.id[0]
		w.Header()["X-Request-Id"] = rec.id[:1:1]
		rec.info.id = id
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, &rec.info))
		next.ServeHTTP(&rec.statusRecorder, r)
		elapsed := time.Since(start)
		if rec.status == 0 {
			rec.status = http.StatusOK // a handler that wrote nothing
		}
		// The outermost mux set r.Pattern on this very request; an inner
		// one (noteRoute) knows the more precise "POST /login/{$}".
		route := rec.info.route
		if route == "" {
			route = r.Pattern
		}
		a.cfg.Observer.Request(route, rec.status, elapsed)
		level := requestLogLevel(r)
		if !a.log.Enabled(r.Context(), level) {
			return
		}
		attrs := [...]slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", route),
			slog.Int("status", rec.status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("client", a.clientIP(r).String()), slog.String("replica", a.cfg.InstanceID),
			slog.String("request_id", id),
		}
		if a.requestLog != nil {
			// The same line, formatted straight into a buffer
			// (logging.Handler.LogAttrs).
			a.requestLog.LogAttrs(r.Context(), level, "request", attrs[:]...)
			return
		}
		a.log.LogAttrs(r.Context(), level, "request", attrs[:]...)
	})
}

// loggedRequest is logRequests' state for one request, allocated once.
type loggedRequest struct {
	statusRecorder
	info requestInfo
	// id backs the X-Request-Id header's value.
	id [1]string
}

// requestLogLevel is debug for the health checks, info for the rest. A
// balancer, compose and Kubernetes ask /readyz and /healthz every few
// seconds on every replica: at info they were most of the log when idle.
// They still count in the metrics (Observer.Request), where a check that
// fails or slows down shows; a readiness failure's reason is logged at
// warn by readyz itself.
func requestLogLevel(r *http.Request) slog.Level {
	if r.Method == http.MethodGet && (r.URL.Path == "/readyz" || r.URL.Path == "/healthz") {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// noteRoute wraps a mux nested inside the top one, so that the request log
// and metrics name the pattern that actually served the request. A mux sets
// r.Pattern on the request it is given, which is the one this wrapper
// passed; the innermost mux returns first, and its pattern stays.
func noteRoute(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok && info.route == "" {
			info.route = r.Pattern
		}
	})
}

// securityHeaders sets the headers every response carries: which replica
// answered, and the browser hardening headers.
func (a *App) securityHeaders(next http.Handler) http.Handler {
	// The values never change: each response shares them instead of
	// allocating its own (Header.Set would). They are full slices (len ==
	// cap), so a handler's Header.Add appends to a copy, never to these.
	servedBy := constHeader(a.cfg.InstanceID)
	hsts := a.cfg.CookieSecure
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Served-By"] = servedBy
		h["Content-Security-Policy"] = cspValue
		h["X-Content-Type-Options"] = nosniffValue
		h["X-Frame-Options"] = denyValue
		h["Referrer-Policy"] = sameOriginValue
		if hsts {
			h["Strict-Transport-Security"] = hstsValue
		}
		next.ServeHTTP(w, r)
	})
}

// constHeader is a header value that responses share: see securityHeaders.
func constHeader(v string) []string { return []string{v}[:1:1] }

var (
	cspValue        = constHeader(contentSecurityPolicy)
	nosniffValue    = constHeader("nosniff")
	denyValue       = constHeader("DENY")
	sameOriginValue = constHeader("same-origin")
	hstsValue       = constHeader("max-age=63072000; includeSubDomains")
	noStoreValue    = constHeader("no-store")
)

// contentSecurityPolicy allows this site's own style sheet, images and
// one script file (the passkey ceremonies, /static/passkeys.js) and the
// fetches it makes, and nothing inline.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// noStore keeps pages that may show user data out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = noStoreValue
		next.ServeHTTP(w, r)
	})
}

// maxFormBytes bounds a form body: a login form is well under 2 KB.
const maxFormBytes = 4 << 10

// maxPasskeyFormBytes bounds a form that may carry a passkey's answer (a
// few kilobytes of JSON, URL-encoded).
const maxPasskeyFormBytes = 24 << 10

// passkeyForms are the forms a passkey's answer is posted to.
var passkeyForms = map[string]bool{
	"/login/passkey/": true, "/login/code/": true, "/login/step-up/": true, "/reauth/": true, "/security/passkeys/": true,
}

// limitBody caps request bodies, so a huge POST is refused after 4 KB
// (24 KB for a form that may carry a passkey's answer) instead of being
// read into memory.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == http.NoBody {
			// No body to bound (the server says so for a request
			// without one: every GET a proxy or script sends).
			next.ServeHTTP(w, r)
			return
		}
		limit := int64(maxFormBytes)
		if passkeyForms[r.URL.Path] {
			limit = maxPasskeyFormBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
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

// require lets through only requests whose session meets need (the one
// question, session.Manager.Check); it runs inside loadAndSave. Anyone
// else is sent (303) to the page that can meet it, which comes back here
// afterwards: the login form, the second factor's step-up (or its
// enrolment, for a user who has none), or the re-authentication. They come
// back to the page asked for on a GET, to the section's own page
// (/sessions/, /security/...) after a form post, whose data is not kept.
func (a *App) require(need session.Need, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, verdict := a.sessions.Check(r.Context(), need)
		if verdict == session.Allowed {
			next.ServeHTTP(w, r)
			return
		}
		back := r.URL.RequestURI()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			section, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			back = "/" + section + "/"
		}
		page := "/login/"
		switch verdict {
		case session.NeedsSecondFactor:
			page = "/login/step-up/"
		case session.NeedsReauth:
			page = "/reauth/"
		}
		http.Redirect(w, r, page+"?next="+url.QueryEscape(safeNext(back)), http.StatusSeeOther)
	})
}
