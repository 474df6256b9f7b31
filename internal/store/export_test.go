package store

import "github.com/redis/go-redis/v9"

// Hooks for the tests in package store_test, which use the API as the
// service does and need only these looks inside.

// ClientOf is the client r's stores share, so a test can fill its
// connection pool before restarting Redis under it.
func ClientOf(r *Redis) *redis.Client { return r.client.(*redis.Client) }

// KeySlot is a key's Cluster hash slot, for the slot test.
var KeySlot = keySlot

// UserKey is the key of a user record, for the Cluster slot test.
var UserKey = userKey

// The second-factor keys, for the slot test and for checking what the
// Factors store wrote.
var (
	UserTOTPKey          = userTOTPKey
	UserTOTPPendingKey   = userTOTPPendingKey
	UserRecoveryKey      = userRecoveryKey
	UserRecoveryCodesKey = userRecoveryCodesKey
	LoginPendingKey      = loginPendingKey
)
