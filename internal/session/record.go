package session

import (
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Names of the session values a login stores. They are strings (times in
// RFC 3339), so `redis-cli GET` shows a readable document.
const (
	fieldUsername   = "username"
	fieldLoginAt    = "login_at"
	fieldLoginIP    = "login_ip"
	fieldUserAgent  = "user_agent"
	fieldLastSeenAt = "last_seen_at"
	// fieldExpiresAt is the absolute deadline fixed at login: the score
	// of the session in its user's index, which the deadline may never
	// pass.
	fieldExpiresAt = "expires_at"
	// fieldKind marks a session started by POST /api/login (kindAPI),
	// whose token travels as a bearer token. Absent in every record from
	// before API sessions: those, and every login by the form, are
	// browser sessions.
	fieldKind = "kind"
	// fieldAMR is how the user authenticated, as RFC 8176 method names
	// (a JSON array: ["pwd"], ["pwd","otp"]). Absent in records from
	// before two-step login: those read as ["pwd"].
	fieldAMR = "amr"
	// fieldAuthTime is the last full authentication: the login, or the
	// last re-authentication. Absent in older records: login_at.
	fieldAuthTime = "auth_time"
)

// kindAPI is fieldKind's value for an API session.
const kindAPI = "api"

// maxUserAgentBytes bounds the stored user agent: enough for any real
// browser, and a hostile header cannot bloat every session read.
const maxUserAgentBytes = 256

// Record is one session as people see it on the sessions page and in the
// command-line tools.
type Record struct {
	// ID is the session's public id: short, not secret, and useless as a
	// cookie. It names the session on pages and in the CLI.
	ID string
	// User is the canonical name of the user logged in.
	User string
	// CreatedAt is the login time.
	CreatedAt time.Time
	// LastSeenAt is the last request with this session, to within
	// LastSeenEvery.
	LastSeenAt time.Time
	// ExpiresAt is when the session ends if unused: the earlier of the
	// idle and the absolute deadline.
	ExpiresAt time.Time
	// EndsAt is the absolute deadline, login + lifetime.
	EndsAt time.Time
	// IP is the client address at login.
	IP string
	// UserAgent is the browser's User-Agent header at login, cut to 256 bytes.
	UserAgent string
	// Device summarises UserAgent. List, Find and Each fill it in; the
	// request's own record (Current, Check) leaves it empty, since parsing
	// a user agent is wasted on the forward-auth check that every request
	// to every app pays: a page that shows it asks Manager.Device.
	Device Device
	// API marks a session started by POST /api/login: its token is a
	// bearer token for scripts, never a cookie.
	API bool
	// AMR is how the user authenticated (RFC 8176 method names: "pwd",
	// "otp", "hwk", "swk", "user"), in the order they were proved.
	AMR []string
	// AuthTime is the last full authentication: the login, or the last
	// re-authentication, whichever is later.
	AuthTime time.Time
}

// LastSeenEvery is how stale a session's last-seen time may get: it is
// stored at most this often (or a tenth of the idle timeout, if shorter),
// never on every page view.
const LastSeenEvery = time.Minute

// publicIDLen is the length of a public id: 16 base64url characters, 96
// bits, so ids never collide and cannot be guessed for another user's
// session (not that a guess would let anyone act on it).
const publicIDLen = 16

// publicID derives a session's public id from its stored token (the key
// hash). One-way twice over, it reveals neither the key nor the cookie, and
// needs no storage of its own: the CLI can name sessions while scanning
// keys, and the index can resolve an id without reading any session.
func publicID(hash string) string {
	sum := sha256.Sum256([]byte("loginsvc session id\x00" + hash))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:publicIDLen]
}

// validID reports whether s has the shape of a public id, so malformed
// input from a URL or the CLI is refused before it reaches Redis.
func validID(s string) bool { return isBase64URLOfLen(s, publicIDLen) }

// isBase64URLOfLen reports whether s is n characters of the base64url
// alphabet, the shape of both tokens and public ids.
func isBase64URLOfLen(s string, n int) bool {
	if len(s) != n {
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

// recordOf builds a Record from decoded values.
func recordOf(hash string, deadline time.Time, values map[string]any, expires time.Time) Record {
	str := func(k string) string { s, _ := values[k].(string); return s }
	r := Record{
		User:      str(fieldUsername),
		IP:        str(fieldLoginIP),
		UserAgent: str(fieldUserAgent),
		EndsAt:    deadline,
		ExpiresAt: expires,
		API:       str(fieldKind) == kindAPI,
	}
	if hash != "" { // "": a memo's document, read under any hash
		r.ID = publicID(hash)
	}
	r.CreatedAt, _ = timeValue(values, fieldLoginAt)
	r.LastSeenAt, _ = timeValue(values, fieldLastSeenAt)
	if r.LastSeenAt.IsZero() {
		r.LastSeenAt = r.CreatedAt
	}
	if r.ExpiresAt.IsZero() || r.ExpiresAt.After(deadline) {
		r.ExpiresAt = deadline
	}
	r.AMR = amrValue(values[fieldAMR])
	r.AuthTime, _ = timeValue(values, fieldAuthTime)
	if r.AuthTime.IsZero() {
		r.AuthTime = r.CreatedAt
	}
	return r
}

// amrValue reads the stored methods: a JSON array decodes as []any, a
// value put in this request is still a []string. A record from before
// two-step login has none, and was a password login.
func amrValue(v any) []string {
	var out []string
	switch v := v.(type) {
	case []string:
		out = append(out, v...)
	case []any:
		for _, m := range v {
			if s, ok := m.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	if len(out) == 0 {
		return []string{MethodPassword}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
