package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestKeySlotMatchesRedis: the slot of a key, as CLUSTER KEYSLOT says
// (Redis Cluster specification's examples), hash tags included.
func TestKeySlotMatchesRedis(t *testing.T) {
	for _, c := range []struct {
		key  string
		want int
	}{
		{"foo", 12182},
		{"somekey", 11058},
		{"{user1000}.following", keySlot("user1000")},
		{"foo{}{bar}", keySlot("foo{}{bar}")},
	} {
		if got := keySlot(c.key); got != c.want {
			t.Errorf("keySlot(%q): got %d, want %d", c.key, got, c.want)
		}
	}
}

// TestRetryableIsWhatAPromotionEnds: connection failures and the
// failover errors are waited through; a missing key, a script error or
// the caller's own deadline are not.
func TestRetryableIsWhatAPromotionEnds(t *testing.T) {
	// A dial that timed out, as to a killed container's address, which
	// nothing answers: errors.Is calls it context.DeadlineExceeded too.
	_, dialTimeout := (&net.Dialer{Timeout: time.Nanosecond}).Dial("tcp", "192.0.2.1:6379")
	if !errors.Is(dialTimeout, context.DeadlineExceeded) {
		t.Fatalf("a dial past its deadline: %v; want an i/o timeout", dialTimeout)
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("find: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("find: %w", dialTimeout), true},
		{redis.Nil, false},
		{context.DeadlineExceeded, false},
		{errors.New("READONLY You can't write against a read only replica."), false}, // not a Redis reply
		{nil, false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v): got %v, want %v", c.err, got, c.want)
		}
	}
}

// TestReplicaOffsetOnlyOfReplicas: a node that says role:master is never
// taken for a replica, whatever its offset.
func TestReplicaOffsetOnlyOfReplicas(t *testing.T) {
	if off, ok := replicaOffset("# Replication\r\nrole:slave\r\nslave_repl_offset:1234\r\n"); !ok || off != 1234 {
		t.Errorf("replica: got %d, %v; want 1234, true", off, ok)
	}
	if _, ok := replicaOffset("# Replication\r\nrole:master\r\nmaster_repl_offset:99999\r\n"); ok {
		t.Error("master: got ok, want not a replica")
	}
}
