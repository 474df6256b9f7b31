package store_test

import (
	"testing"

	"loginsvc/internal/store"
)

// The scripts that create a session (joinIndex) and count failed logins
// touch a user's record, index and throttle counter together, and the
// recovery code scripts both recovery keys; on Redis Cluster that works
// only if all of a user's keys hash to one slot.
func TestOneUsersKeysShareAClusterSlot(t *testing.T) {
	t.Parallel()
	if got := clusterSlot("123456789"); got != 12739 {
		t.Fatalf("clusterSlot(123456789): got %d, want 12739 (Redis Cluster spec's CRC16 check value)", got)
	}
	for _, name := range []string{"alice", "bob smith", "Émile", "ops-team_2.0@example", "Ωμέγα"} {
		keys := []string{store.UserKey(name), store.UserSessionsKey(name), store.ThrottleUserKey(name),
			store.UserTOTPKey(name), store.UserTOTPPendingKey(name), store.UserRecoveryKey(name), store.UserRecoveryCodesKey(name)}
		want := clusterSlot(name)
		for _, key := range keys {
			if got := clusterSlot(key); got != want {
				t.Errorf("slot of %q: got %d, want %d (the slot of {%s}, shared by %q)", key, got, want, name, keys)
			}
		}
	}
}

// clusterSlot is the store's own Redis Cluster HASH_SLOT, which the
// check value above proves against the spec.
var clusterSlot = store.KeySlot
