package web

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/session"
)

// The JSON API, for scripts and other services: a login that returns a
// session token, who that token belongs to, and its logout. A token is
// accepted only as "Authorization: Bearer TOKEN", never as a cookie, and
// these endpoints ignore cookies, so a cross-site page cannot ride a
// browser's login into them. Every answer is JSON; every error is
// {"error": CODE} with one of the codes below.

// Error codes of the JSON API and the forward-auth endpoints.
const (
	codeBadRequest         = "bad_request"
	codeInvalidCredentials = "invalid_credentials" //nolint:gosec // G101: an error code of the API, not a credential
	codeUnauthorized       = "unauthorized"
	codeForbidden          = "forbidden"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeTooLarge           = "too_large"
	codeUnsupportedMedia   = "unsupported_media_type"
	codeThrottled          = "throttled"
	codeServerError        = "server_error"
	codeUnavailable        = "unavailable"
	// codeSecondFactorRequired: the password was right (or the session
	// is valid) but a second factor is due: send "totp" or
	// "recovery_code" with the login, or step up in a browser.
	codeSecondFactorRequired = "second_factor_required"
	// codeInvalidCode: the second factor's code was wrong or used.
	codeInvalidCode = "invalid_code"
	// codeEnrolmentRequired: REQUIRE_TWO_FACTOR, and the user has no
	// second factor yet: set one up in a browser first.
	codeEnrolmentRequired = "two_factor_enrolment_required"
)

// machinePath reports whether path is answered in JSON, never with a page:
// the API and forward auth.
func machinePath(path string) bool {
	return path == "/api" || path == "/auth" || strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/auth/")
}

// errorCode is the code of an error status.
func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeBadRequest
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusMethodNotAllowed:
		return codeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return codeTooLarge
	case http.StatusUnsupportedMediaType:
		return codeUnsupportedMedia
	case http.StatusTooManyRequests:
		return codeThrottled
	case http.StatusServiceUnavailable:
		return codeUnavailable
	}
	return codeServerError
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the handlers' own response types reach here; none fails.
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSONError answers status with {"error": code}.
func writeJSONError(w http.ResponseWriter, status int, code string) {
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="loginsvc"`)
	}
	writeJSON(w, status, map[string]string{"error": code})
}

// methodNotAllowed answers a known API path asked with another method.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSONError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed)
	}
}

// machine is the middleware of the JSON API and forward auth: nothing is
// cached, bodies are bounded, and no page session is loaded or saved, so
// no cookie is ever set and no error is a page.
func machine(next http.Handler) http.Handler {
	return noStore(limitBody(next))
}

var errTrailingData = errors.New("data after the JSON object")

// errAmbiguousKey refuses a login request with a key twice, or a key that
// differs from a field's name only by case or Unicode folding.
var errAmbiguousKey = errors.New("duplicate or case-folded key")

// decodeAPILogin reads exactly one JSON object, and nothing after it, into
// a login request. Its keys are the fields' names byte for byte, each at
// most once: encoding/json would take the last of duplicate keys and match
// keys case-insensitively with Unicode folding ("uſername" is username),
// so {"username":"nobody","uſername":"carol"} would log in carol while a
// WAF or a log reads "nobody". Both are refused (errAmbiguousKey); other
// unknown keys are ignored, as before.
func decodeAPILogin(body io.Reader) (apiLoginRequest, error) {
	var req apiLoginRequest
	fields := map[string]*string{
		"username": &req.Username, "password": &req.Password, "device": &req.Device,
		"totp": &req.TOTP, "recovery_code": &req.RecoveryCode,
	}
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err != nil {
		return req, err
	} else if t != json.Delim('{') {
		return req, errNotAnObject
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return req, err
		}
		key, _ := t.(string) // inside an object the decoder gives keys only
		dst, known := fields[key]
		if !known {
			for name := range fields {
				if strings.EqualFold(key, name) {
					return req, errAmbiguousKey
				}
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return req, err
			}
			continue
		}
		if seen[key] {
			return req, errAmbiguousKey
		}
		seen[key] = true
		var v *string // null leaves the field empty, as encoding/json does
		if err := dec.Decode(&v); err != nil {
			return req, err
		}
		if v != nil {
			*dst = *v
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return req, err
	}
	// One JSON object and nothing after it: "{...}xyz" or two objects is
	// not a login request.
	if _, next := dec.Token(); !errors.Is(next, io.EOF) {
		return req, errTrailingData
	}
	return req, nil
}

// errNotAnObject refuses a login request that is JSON but not an object.
var errNotAnObject = errors.New("not a JSON object")

type apiLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Device is the device token an earlier login returned, if the
	// script kept it: the API's device cookie.
	Device string `json:"device,omitempty"`
	// TOTP is the authenticator app's current code, for a user with a
	// second factor; RecoveryCode a recovery code in its place.
	TOTP         string `json:"totp,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

type apiLoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	SessionID string    `json:"session_id"`
	// Device is a fresh device token for this user, to send with the next
	// login, and DeviceExpiresAt when it stops counting.
	Device          string    `json:"device"`
	DeviceExpiresAt time.Time `json:"device_expires_at"`
	// AMR is how the user authenticated (RFC 8176 names).
	AMR []string `json:"amr"`
}

// apiLogin serves POST /api/login: JSON {"username", "password"}, checked
// by the same auth.Service Login as the form (same throttle, same argon2id
// cost, one error for every refusal). It starts an API session and
// returns its token, absolute deadline and public id, and a device token:
// a script that sends it back with its next login ("device") is counted
// as a known client, by that token's own budget rather than the account
// lockout, as a browser with its device cookie is.
func (a *App) apiLogin(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// curl -d without -H sends a form: say so rather than misread it.
		writeJSONError(w, http.StatusUnsupportedMediaType, codeUnsupportedMedia)
		return
	}
	req, err := decodeAPILogin(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, codeTooLarge)
			return
		}
		writeJSONError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	ctx := a.actorContext(r)
	ip := a.clientIP(r)
	code := req.TOTP
	if code == "" {
		code = req.RecoveryCode
	}
	login := auth.LoginRequest{Username: req.Username, Password: req.Password, Code: code, IP: ip, UserAgent: r.UserAgent()}
	if req.Device != "" {
		login.DeviceCookies = []string{req.Device}
	}
	token, rec, res, err := a.auth.LoginAPI(ctx, login)
	switch {
	case errors.Is(err, auth.ErrSecondFactorRequired):
		a.cfg.Observer.Login(LoginSecondStep)
		a.log.Info("api login: second factor required", "request_id", requestID(ctx), "client", ip.String())
		writeJSONError(w, http.StatusUnauthorized, codeSecondFactorRequired)
		return
	case errors.Is(err, auth.ErrEnrolmentRequired):
		a.cfg.Observer.Login(LoginInvalid)
		a.log.Info("api login refused: no second factor set up under REQUIRE_TWO_FACTOR", "request_id", requestID(ctx), "client", ip.String())
		writeJSONError(w, http.StatusForbidden, codeEnrolmentRequired)
		return
	case err != nil:
		a.refuse(w, r, "api", err, func(status int) {
			switch {
			case errors.Is(err, auth.ErrInvalidCode):
				writeJSONError(w, http.StatusUnauthorized, codeInvalidCode)
			case status == http.StatusTooManyRequests:
				// retry_after repeats the Retry-After header in the body,
				// for clients that show the error: the same for every
				// account, existing or not.
				var throttled *auth.ThrottledError
				errors.As(err, &throttled)
				writeJSON(w, status, map[string]any{"error": codeThrottled, "retry_after": retryAfterSeconds(throttled)})
			default:
				writeJSONError(w, http.StatusUnauthorized, codeInvalidCredentials)
			}
		})
		return
	}
	a.cfg.Observer.Login(LoginSuccess)
	if res.SecondMethod != "" {
		a.cfg.Observer.SecondStep(res.SecondMethod, SecondStepSuccess)
	}
	a.log.Info("api login", "user", res.User, "session", rec.ID, "methods", joinMethods(res.Methods), "second", res.SecondMethod,
		"request_id", requestID(ctx), "client", ip.String())
	writeJSON(w, http.StatusOK, apiLoginResponse{
		Token: token, ExpiresAt: rec.EndsAt.UTC(), SessionID: rec.ID, Device: res.Device.Value, DeviceExpiresAt: res.Device.Expires.UTC(),
		AMR: res.Methods,
	})
}

type whoamiResponse struct {
	User          string    `json:"user"`
	SessionID     string    `json:"session_id"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	// AMR is how the user authenticated (RFC 8176 names) and AuthTime
	// when last in full.
	AMR      []string  `json:"amr"`
	AuthTime time.Time `json:"auth_time"`
}

// bearerSession loads the API session of r's bearer token and reports
// whether there is one; if not, it has answered (401, or 503 when Redis is
// away). A cookie is never looked at.
func (a *App) bearerSession(w http.ResponseWriter, r *http.Request) (*http.Request, session.Record, bool) {
	token, ok := bearerToken(r)
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, codeUnauthorized)
		return nil, session.Record{}, false
	}
	ctx, err := a.sessions.LoadToken(r.Context(), token)
	if err != nil {
		a.serverError(w, r, err)
		return nil, session.Record{}, false
	}
	cur, ok := a.sessions.Current(ctx)
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, codeUnauthorized)
		return nil, session.Record{}, false
	}
	return r.WithContext(ctx), cur, true
}

// whoami serves GET /api/whoami: who the bearer token belongs to and when
// its session ends (expires_at, absolute; idle_expires_at, if unused).
// It counts as a use of the session, like a page view.
func (a *App) whoami(w http.ResponseWriter, r *http.Request) {
	token, ok := bearerToken(r)
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, codeUnauthorized)
		return
	}
	// Any live API session answers, whatever REQUIRE_TWO_FACTOR says
	// (Enrolling): whoami tells a script about its token, it guards
	// nothing. The read-only check, as forward auth's.
	cur, verdict, err := a.sessions.VerifyToken(r.Context(), session.Need{Enrolling: true}, token)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if verdict != session.Allowed {
		writeJSONError(w, http.StatusUnauthorized, codeUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, whoamiResponse{
		User: cur.User, SessionID: cur.ID, CreatedAt: cur.CreatedAt.UTC(),
		ExpiresAt: cur.EndsAt.UTC(), IdleExpiresAt: cur.ExpiresAt.UTC(),
		AMR: cur.AMR, AuthTime: cur.AuthTime.UTC(),
	})
}

// apiLogout serves POST /api/logout: it ends the bearer token's session
// on every replica at once and answers 204.
func (a *App) apiLogout(w http.ResponseWriter, r *http.Request) {
	r, cur, ok := a.bearerSession(w, r.WithContext(a.actorContext(r)))
	if !ok {
		return
	}
	if err := a.sessions.End(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.log.Info("api logout", "user", cur.User, "session", cur.ID, "request_id", requestID(r.Context()))
	w.WriteHeader(http.StatusNoContent)
}
