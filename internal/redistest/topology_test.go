package redistest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// A killed master is replaced by one of its replicas, which holds what the
// master had, and the Sentinels say where it is.
func TestSentinelPromotesAReplicaWhenTheMasterDies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := StartSentinel(t, 1, 3)
	old := set.MasterAddr(t)
	if old != set.Master.Addr() {
		t.Fatalf("MasterAddr at start: got %s, want the master %s", old, set.Master.Addr())
	}
	if err := set.Master.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := set.Master.Client(t).Wait(ctx, 1, 0).Err(); err != nil {
		t.Fatal(err)
	}

	set.Master.Kill(t)
	promoted := set.WaitFailover(t, old)

	if promoted != set.Replicas[0] {
		t.Fatalf("promoted: got %v, want the replica %s", promoted, set.Replicas[0].Addr())
	}
	if got, err := promoted.Client(t).Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k on the promoted replica: got %q, %v; want v", got, err)
	}
}

// Keys spread over every primary, and the cluster client finds each.
func TestClusterSpreadsKeysOverEveryPrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := StartCluster(t, 3)
	c := set.Client(t)
	for i := range 30 {
		if err := c.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	counts := set.KeysPerPrimary(t, "key:*")
	total := 0
	for i, n := range counts {
		if n == 0 {
			t.Errorf("primary %s holds no key of 30: %v", set.Primaries[i].Addr(), counts)
		}
		total += n
	}
	if total != 30 {
		t.Errorf("keys over all primaries: got %d, want 30", total)
	}
	set.FlushAll(t)
	if counts := set.KeysPerPrimary(t, "*"); counts[0]+counts[1]+counts[2] != 0 {
		t.Errorf("after FlushAll: got %v keys per primary, want none", counts)
	}
}

// REDISTEST_SERVER picks the server: the Valkey run of the test command
// must really talk to Valkey.
func TestTheServerIsTheOneAskedFor(t *testing.T) {
	t.Parallel()
	info, err := roundTrip(Start(t).Addr(), "INFO server")
	if err != nil {
		t.Fatal(err)
	}
	valkey := strings.Contains(info, "server_name:valkey")
	if want := strings.Contains(ServerBinary(), "valkey"); valkey != want {
		t.Fatalf("REDISTEST_SERVER=%q: INFO says server_name:valkey = %v, want %v", os.Getenv("REDISTEST_SERVER"), valkey, want)
	}
}
