package store

import "strings"

// Every Redis key the service reads or writes is named in this file, so the
// README's key table and an operator's redis-cli session can trust it.
//
// Layout:
//
//	scs:session:<hash>       session (string: JSON, PXAT = idle or absolute deadline)
//	user:{<name>}            user record (hash: password, created_at)
//	user:{<name>}:sessions   the user's sessions (sorted set: <hash> scored by absolute deadline, ms)
//	throttle:user:{<name>}   failed logins for one account (sorted set)
//	throttle:ip:{<ip>}       failed logins from one client address (sorted set)
//
// Sessions keep scs/redisstore's prefix so the two stores are
// interchangeable; <hash> is base64url(sha256(cookie token)) because the
// session manager hashes tokens before they reach the store.
//
// Redis Cluster: the keys of one user (record, session index, throttle)
// share the hash tag {<name>}, so the steps that must be atomic across them
// (create a session only while the user and the password it was granted
// for still exist) run as one script in one slot. A session key has no tag
// (scs/redisstore compatibility), so every step that spans a session key
// and an index is two commands, ordered to be safe when split: a session is
// written before it joins the index and leaves Redis before it leaves the
// index, so a failure in between leaves at worst an index member without a
// session, which the next read prunes, and never a live session that the
// index does not know.

const (
	// SessionPrefix is scs/redisstore's default prefix, kept for
	// compatibility with it. The session cache asks Redis to report
	// every write under it (CLIENT TRACKING BCAST PREFIX).
	SessionPrefix = "scs:session:"

	userPrefix         = "user:"
	userSessionsSuffix = ":sessions"
	throttleUserPrefix = "throttle:user:"
	throttleIPPrefix   = "throttle:ip:"
)

// SessionKey is the key of the session whose stored token (already hashed
// by the session manager) is hash.
func SessionKey(hash string) string { return SessionPrefix + hash }

// sessionPattern matches every session key, for SCAN.
func sessionPattern() string { return SessionPrefix + "*" }

// hashFromSessionKey is SessionKey's inverse.
func hashFromSessionKey(key string) string { return strings.TrimPrefix(key, SessionPrefix) }

// userKey is the key of one user's record.
func userKey(name string) string { return userPrefix + hashTag(name) }

// UserSessionsKey is the key of one user's session index.
func UserSessionsKey(name string) string { return userPrefix + hashTag(name) + userSessionsSuffix }

// userPattern matches user records only (not the indexes beside them):
// the pattern must end with '}'.
func userPattern() string { return userPrefix + "{*}" }

// userFromKey returns the name held in a user record's key.
func userFromKey(key string) string {
	s := key[len(userPrefix):]
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		return s[1 : len(s)-1]
	}
	return s
}

// ThrottleUserKey is the key counting failed logins for one account.
func ThrottleUserKey(name string) string { return throttleUserPrefix + hashTag(name) }

// ThrottleIPKey is the key counting failed logins from one client address.
func ThrottleIPKey(ip string) string { return throttleIPPrefix + hashTag(ip) }

func hashTag(s string) string { return "{" + s + "}" }
