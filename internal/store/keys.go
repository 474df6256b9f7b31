package store

// Every Redis key the service reads or writes is named in this file, so the
// README's key table and an operator's redis-cli session can trust it.
//
// Layout:
//
//	scs:session:<hash>     session (string: JSON, PXAT = idle or absolute deadline)
//	user:{<name>}          user record (hash: password, created_at)
//	throttle:user:{<name>} failed logins for one account (sorted set)
//	throttle:ip:{<ip>}     failed logins from one client address (sorted set)
//
// Sessions keep scs/redisstore's prefix so the two stores are
// interchangeable; <hash> is base64url(sha256(cookie token)) because the
// session manager hashes tokens before they reach the store. Keys that
// belong to one user share the Cluster hash tag {<name>}, so a future
// per-user session index can change together with the user record in one
// MULTI or script.

const (
	// SessionPrefix is scs/redisstore's default prefix, kept for
	// compatibility with it.
	SessionPrefix = "scs:session:"

	userPrefix         = "user:"
	throttleUserPrefix = "throttle:user:"
	throttleIPPrefix   = "throttle:ip:"
)

// SessionKey is the key of the session whose stored token (already hashed
// by the session manager) is token.
func SessionKey(token string) string { return SessionPrefix + token }

// sessionPattern matches every session key, for SCAN.
func sessionPattern() string { return SessionPrefix + "*" }

// userKey is the key of one user's record.
func userKey(name string) string { return userPrefix + hashTag(name) }

// userPattern matches user records only (not other keys under user:).
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
