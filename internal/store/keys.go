package store

import "strings"

// Every Redis key the service reads or writes is named in this file, so the
// README's key table and an operator's redis-cli session can trust it.
//
// Layout:
//
//	scs:session:<hash>       session (string: JSON, PXAT = idle or absolute deadline)
//	user:{<name>}            user record (hash: password, created_at, device_epoch)
//	user:{<name>}:sessions   the user's sessions (sorted set: <hash> scored by absolute deadline, ms)
//	user:{<name>}:totp       the user's TOTP factor (hash: secret (sealed), added_at, last_step)
//	user:{<name>}:totp-pending   a TOTP enrolment not yet confirmed (string: sealed secret, with TTL)
//	user:{<name>}:recovery   the user's recovery codes (hash: salt, added_at)
//	user:{<name>}:recovery-codes the unused recovery code hashes (set; written with user:{<name>}:recovery)
//	login-pending:<hash>     a login waiting for its second step (string: the caller's bytes, with TTL)
//	user:{<name>}:passkeys   the user's passkeys (hash: credential id -> JSON record)
//	user:{<name>}:webauthn   the user's WebAuthn user handle (string: base64url of 32 random bytes)
//	passkey-user:{<handle>}  the user a WebAuthn user handle belongs to (string: name), for passkey sign-in
//	webauthn-ceremony:<hash> a passkey ceremony waiting for the browser (string: JSON, with TTL), single use
//	user:{<name>}:events     the user's security events (stream, MAXLEN ~ 200)
//	events                   every security event, service-wide (stream, MAXLEN ~ EVENTS_MAXLEN; one slot)
//	user-skeleton:{<skel>}   the name holding one confusable skeleton (string; see skeletons.go)
//	throttle:user:{<name>}   failed logins for one account (sorted set)
//	throttle:ip:{<ip>}       failed logins from one client address (sorted set)
//	throttle:ip-attempts:{<ip>}  every login attempt from one client address (sorted set)
//	throttle:device:{<nonce>}    failed logins with one device cookie (sorted set)
//	throttle:lockout:{<name>}    the account's lockout was recorded as an event (string, TTL = the lockout)
//	user:{<name>}:notice     a notice for the user's next login (string: the event's kind, TTL 30 days)
//	session-ended:<hash>     why someone else ended that session (string: user, password_change, factor_change,
//	                         operator, user_deleted or cap; PXAT = the session's absolute deadline), read once
//	                         (GETDEL) by the next page its browser opens
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
//
// Per operation on Cluster (TestEveryStoreOperationWorksOnCluster runs each
// on three primaries):
//
//	Sessions.Create     SET NX session, then script joinIndex on user:{n} + user:{n}:sessions (one slot);
//	                    split: if the script fails the session is deleted again, its token never handed out
//	  past the cap      ZRANGE index, EXISTS per session (pipeline, one per slot), ZREM, then as EndOfUser
//	Sessions.Update     SET XX on one key
//	Sessions.UpdateEach SET XX per session, in one pipeline (one per slot on Cluster)
//	Sessions.Delete     DEL session on its primary's own connection, WAIT 1 there, then ZREM index: split, session first
//	Sessions.EndOfUser  ZRANGE index, DEL per session (never a multi-key DEL) grouped by primary, each group on
//	                    its own connection and WAIT 1 there, then ZREM: split, sessions first;
//	                    then SET session-ended:<hash> per ended session (best effort, one key each)
//	Sessions.OfUser     ZREMRANGEBYSCORE, ZRANGE, GET+PTTL per session, ZREM of the gone: reads, then pruning only
//	Each, Count, Lookup SCAN on every primary (scanBatches), reads on the node that holds the batch
//	Users.Create, SetPassword, Delete   one key (scripts with one key)
//	Users.List          SCAN on every primary
//	Throttle            one key per script call (throttle:user:{n} and throttle:ip:{ip} are never touched together)
//	Factors             one key per command or script, except SetRecovery and DeleteRecovery: one script on
//	                    user:{n}:recovery + user:{n}:recovery-codes (one slot); DeleteAll is a DEL per key
//
// Deleting a user (package auth) is the record's DEL, then EndOfUser: split,
// record first, so no new session can be created in between; a failure in
// between leaves the old sessions, which `server sessions revoke --user
// NAME` ends (the CLI says the delete failed).
//
// Sentinel and Cluster: the writes that end sessions (Delete, EndOfUser,
// the cap) wait for one replica with WAIT 1 100 on their own connection
// (topology.go): on Cluster, to the primary that holds each session key,
// and only when that primary has a replica connected.

const (
	// SessionPrefix is scs/redisstore's default prefix, kept for
	// compatibility with it. The session cache asks Redis to report
	// every write under it (CLIENT TRACKING BCAST PREFIX).
	SessionPrefix = "scs:session:"

	userPrefix         = "user:"
	userSessionsSuffix = ":sessions"
	userSkeletonPrefix = "user-skeleton:"
	throttleUserPrefix = "throttle:user:"
	throttleIPPrefix   = "throttle:ip:"

	throttleIPAttemptsPrefix = "throttle:ip-attempts:"
	throttleDevicePrefix     = "throttle:device:"

	userTOTPSuffix          = ":totp"
	userTOTPPendingSuffix   = ":totp-pending"
	userRecoverySuffix      = ":recovery"
	userRecoveryCodesSuffix = ":recovery-codes"
	loginPendingPrefix      = "login-pending:"
	userPasskeysSuffix      = ":passkeys"
	userWebAuthnSuffix      = ":webauthn"
	passkeyUserPrefix       = "passkey-user:"
	ceremonyPrefix          = "webauthn-ceremony:"
	userEventsSuffix        = ":events"
	userNoticeSuffix        = ":notice"
	throttleLockoutPrefix   = "throttle:lockout:"
	sessionEndedPrefix      = "session-ended:"
)

// EventsKey is the service-wide stream of security events, which
// operators' tools follow (XREAD, XREADGROUP).
const EventsKey = "events"

// SessionKey is the key of the session whose stored token (already hashed
// by the session manager) is hash.
func SessionKey(hash string) string { return SessionPrefix + hash }

// sessionEndedKey is the key of the note a session ended by someone else
// leaves for its browser. It has no hash tag, as the session key has none.
func sessionEndedKey(hash string) string { return sessionEndedPrefix + hash }

// sessionPattern matches every session key, for SCAN.
func sessionPattern() string { return SessionPrefix + "*" }

// hashFromSessionKey is SessionKey's inverse.
func hashFromSessionKey(key string) string { return strings.TrimPrefix(key, SessionPrefix) }

// userKey is the key of one user's record.
func userKey(name string) string { return userPrefix + hashTag(name) }

// UserSessionsKey is the key of one user's session index.
func UserSessionsKey(name string) string { return userPrefix + hashTag(name) + userSessionsSuffix }

// userTOTPKey is the key of one user's confirmed TOTP factor.
func userTOTPKey(name string) string { return userPrefix + hashTag(name) + userTOTPSuffix }

// userTOTPPendingKey is the key of one user's TOTP enrolment awaiting
// its first code.
func userTOTPPendingKey(name string) string {
	return userPrefix + hashTag(name) + userTOTPPendingSuffix
}

// userRecoveryKey is the key of one user's recovery code salt.
func userRecoveryKey(name string) string { return userPrefix + hashTag(name) + userRecoverySuffix }

// userRecoveryCodesKey is the key of one user's unused recovery code
// hashes. A set of its own, so consuming one is a single SREM.
func userRecoveryCodesKey(name string) string {
	return userPrefix + hashTag(name) + userRecoveryCodesSuffix
}

// userFactorKeys are every key of one user's second factors, for
// DeleteAll (the handle's lookup key, in another slot, aside).
func userFactorKeys(name string) []string {
	return []string{userTOTPKey(name), userTOTPPendingKey(name), userRecoveryKey(name), userRecoveryCodesKey(name), userPasskeysKey(name), userWebAuthnKey(name)}
}

// userPasskeysKey is the key of one user's passkeys.
func userPasskeysKey(name string) string { return userPrefix + hashTag(name) + userPasskeysSuffix }

// userWebAuthnKey is the key of one user's WebAuthn user handle.
func userWebAuthnKey(name string) string { return userPrefix + hashTag(name) + userWebAuthnSuffix }

// passkeyUserKey names the user a WebAuthn user handle belongs to: a
// passkey sign-in knows the handle, not the name. Its tag is the handle,
// so it lives in another Cluster slot than the user's keys.
func passkeyUserKey(handle string) string { return passkeyUserPrefix + hashTag(handle) }

// ThrottleLockoutKey marks that one account's lockout has been recorded.
func ThrottleLockoutKey(name string) string { return throttleLockoutPrefix + hashTag(name) }

// userNoticeKey is the key of a notice waiting for a user's next login.
func userNoticeKey(name string) string { return userPrefix + hashTag(name) + userNoticeSuffix }

// userEventsKey is the key of one user's security events.
func userEventsKey(name string) string { return userPrefix + hashTag(name) + userEventsSuffix }

// ceremonyKey is the key of a passkey ceremony; hash is the caller's hash
// of the browser's token and the ceremony's challenge, never the token.
func ceremonyKey(hash string) string { return ceremonyPrefix + hash }

// loginPendingKey is the key of a login that passed its password step
// and waits for its second; hash is the caller's hash of the cookie
// token, never the token, so a Redis reader cannot finish the login.
func loginPendingKey(hash string) string { return loginPendingPrefix + hash }

// UserSkeletonKey is the key claiming a confusable skeleton for the one
// user whose name has it. Its tag is the skeleton, not the name: it is in
// another Cluster slot than the record (see skeletons.go for the order).
func UserSkeletonKey(skeleton string) string { return userSkeletonPrefix + hashTag(skeleton) }

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

// ThrottleIPAttemptsKey is the key counting every login attempt, the
// successful ones too, from one client address.
func ThrottleIPAttemptsKey(ip string) string { return throttleIPAttemptsPrefix + hashTag(ip) }

// ThrottleDeviceKey is the key counting failed logins made with one device
// cookie, named by the cookie's random nonce (never by the whole cookie,
// which would let a Redis reader replay it).
func ThrottleDeviceKey(nonce string) string { return throttleDevicePrefix + hashTag(nonce) }

func hashTag(s string) string { return "{" + s + "}" }
