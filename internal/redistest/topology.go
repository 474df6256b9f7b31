package redistest

// Sentinel setups and Redis Clusters of real servers, for the tests that
// prove the service through a failover and across shards.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// monitor is what a Sentinel watches.
type monitor struct {
	name   string
	master string // host:port
	quorum int
}

func (s *Server) sentinelConfPath() string { return filepath.Join(s.dir, "sentinel.conf") }

// writeSentinelConf writes the Sentinel's settings for this launch's port.
// Sentinel rewrites the file as it learns the setup, so it lives in the
// Sentinel's own directory, writable. The timeouts make a failover take a
// few seconds instead of the default half minute: down after 1s without an
// answer, failover-timeout 3s.
func (s *Server) writeSentinelConf() error {
	m := s.cfg.sentinel
	host, port, _ := net.SplitHostPort(m.master)
	conf := strings.Join([]string{
		"port " + strconv.Itoa(s.port),
		"bind 127.0.0.1",
		"daemonize no",
		"protected-mode no",
		"dir " + s.dir,
		"logfile " + s.logPath(),
		fmt.Sprintf("sentinel monitor %s %s %s %d", m.name, host, port, m.quorum),
		"sentinel down-after-milliseconds " + m.name + " 1000",
		"sentinel failover-timeout " + m.name + " 3000",
		"sentinel parallel-syncs " + m.name + " 1",
	}, "\n") + "\n"
	return os.WriteFile(s.sentinelConfPath(), []byte(conf), 0o644)
}

// SentinelSet is a master, its replicas and the Sentinels that watch them,
// each a Server on its own loopback port.
type SentinelSet struct {
	// Name is the master's name in Sentinel (the path of the URL).
	Name string
	// Master is the master at start; after a failover it may be a replica
	// or gone: ask MasterAddr.
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
}

// sentinelName is the master name every SentinelSet uses.
const sentinelName = "loginsvc"

// StartSentinel starts a master with replicas replicas and sentinels
// Sentinels (quorum: a majority of them), and returns once every replica
// is in sync and every Sentinel knows every replica and every other
// Sentinel, so a failover can start the moment the master fails.
// Everything is killed in tb.Cleanup.
func StartSentinel(tb testing.TB, replicas, sentinels int) *SentinelSet {
	tb.Helper()
	set := &SentinelSet{Name: sentinelName}
	set.Master = Start(tb)
	for range replicas {
		r := Start(tb, func(c *config) { c.replicaOf = set.Master.Addr() })
		set.Replicas = append(set.Replicas, r)
	}
	for _, r := range set.Replicas {
		waitFor(tb, "replica "+r.Addr()+" in sync", func() (bool, string) {
			info, err := roundTrip(r.Addr(), "INFO replication")
			return err == nil && strings.Contains(info, "master_link_status:up"), firstLineOf(info, err, "master_link_status")
		})
	}
	quorum := sentinels/2 + 1
	for range sentinels {
		s := Start(tb, func(c *config) {
			c.sentinel = &monitor{name: set.Name, master: set.Master.Addr(), quorum: quorum}
		})
		set.Sentinels = append(set.Sentinels, s)
	}
	want := fmt.Sprintf("slaves=%d,sentinels=%d", replicas, sentinels)
	for _, s := range set.Sentinels {
		waitFor(tb, "sentinel "+s.Addr()+" knows the whole setup", func() (bool, string) {
			info, err := roundTrip(s.Addr(), "INFO sentinel")
			return err == nil && strings.Contains(info, "status=ok") && strings.Contains(info, want),
				firstLineOf(info, err, "master0:") + "; want " + want
		})
	}
	return set
}

// URL is the service's REDIS_URL for the setup: every Sentinel, the
// master's name, database 0.
func (set *SentinelSet) URL() string {
	addrs := make([]string, len(set.Sentinels))
	for i, s := range set.Sentinels {
		addrs[i] = s.Addr()
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + set.Name + "/0"
}

// MasterAddr is where the Sentinels say the master is now (the first
// Sentinel that answers).
func (set *SentinelSet) MasterAddr(tb testing.TB) string {
	tb.Helper()
	var last error
	for _, s := range set.Sentinels {
		if !s.Running() {
			continue
		}
		addr, err := sentinelMaster(s.Addr(), set.Name)
		if err == nil {
			return addr
		}
		last = err
	}
	tb.Fatalf("redistest: no Sentinel names the master: %v", last)
	return ""
}

// Server returns the server of the setup at addr (the master or a
// replica), or nil.
func (set *SentinelSet) Server(addr string) *Server {
	for _, s := range append([]*Server{set.Master}, set.Replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// WaitFailover waits until every running Sentinel names a master other than
// old and that server says it is a master, and returns it.
func (set *SentinelSet) WaitFailover(tb testing.TB, old string) *Server {
	tb.Helper()
	var now string
	waitFor(tb, "failover away from "+old, func() (bool, string) {
		for _, s := range set.Sentinels {
			if !s.Running() {
				continue
			}
			addr, err := sentinelMaster(s.Addr(), set.Name)
			if err != nil || addr == old {
				return false, fmt.Sprintf("sentinel %s names %q (%v)", s.Addr(), addr, err)
			}
			now = addr
		}
		info, err := roundTrip(now, "INFO replication")
		return err == nil && strings.Contains(info, "role:master"), firstLineOf(info, err, "role:")
	})
	return set.Server(now)
}

func sentinelMaster(sentinel, name string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: sentinel, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hp, err := c.GetMasterAddrByName(ctx, name).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name: %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// ClusterSet is a Redis Cluster: primaries, each slot on exactly one of
// them, and (StartClusterWithReplicas) their replicas.
type ClusterSet struct {
	Primaries []*Server
	// Replicas are the nodes started as replicas; which primary each
	// follows is the cluster's choice: ask ReplicaOf.
	Replicas []*Server
}

// StartCluster starts n cluster-enabled servers, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`
// (valkey-cli with Valkey), and returns once every node reports
// cluster_state:ok and knows all n nodes. Everything is killed in
// tb.Cleanup.
func StartCluster(tb testing.TB, n int) *ClusterSet {
	tb.Helper()
	return startCluster(tb, n, 0)
}

// StartClusterWithReplicas is StartCluster with replicas replicas per
// primary (`--cluster-replicas`), and returns once every replica is in
// sync with its primary, so a failover can start at once.
func StartClusterWithReplicas(tb testing.TB, n, replicas int) *ClusterSet {
	tb.Helper()
	return startCluster(tb, n, replicas)
}

func startCluster(tb testing.TB, n, replicas int) *ClusterSet {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("redistest: StartCluster(%d): Redis Cluster needs at least 3 primaries", n)
	}
	cli, err := exec.LookPath(cliBinary())
	if err != nil {
		tb.Fatalf("%s not found on PATH: run ./scripts/test.sh, which installs it", cliBinary())
	}
	set := &ClusterSet{}
	args := []string{"--cluster", "create"}
	// redis-cli makes the first n nodes listed the primaries.
	for i := range n * (1 + replicas) {
		s := Start(tb, func(c *config) { c.cluster = true })
		if i < n {
			set.Primaries = append(set.Primaries, s)
		} else {
			set.Replicas = append(set.Replicas, s)
		}
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout*3)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: %s %s: %v\n%s", cli, strings.Join(args, " "), err, out)
	}
	want := "cluster_known_nodes:" + strconv.Itoa(n*(1+replicas)) + "\r\n"
	for _, s := range append(append([]*Server{}, set.Primaries...), set.Replicas...) {
		waitFor(tb, "cluster node "+s.Addr()+" ok", func() (bool, string) {
			info, err := roundTrip(s.Addr(), "CLUSTER INFO")
			ok := err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_ok:16384") && strings.Contains(info, want)
			return ok, firstLineOf(info, err, "cluster_state") + " " + firstLineOf(info, nil, "cluster_known_nodes")
		})
	}
	for _, r := range set.Replicas {
		waitFor(tb, "cluster replica "+r.Addr()+" in sync", func() (bool, string) {
			info, err := roundTrip(r.Addr(), "INFO replication")
			return err == nil && strings.Contains(info, "master_link_status:up"), firstLineOf(info, err, "master_link_status")
		})
	}
	return set
}

// ReplicaOf returns the replica that follows primary now, or nil.
func (set *ClusterSet) ReplicaOf(tb testing.TB, primary *Server) *Server {
	tb.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr())
	for _, r := range append(append([]*Server{}, set.Primaries...), set.Replicas...) {
		if !r.Running() {
			continue
		}
		info, err := roundTrip(r.Addr(), "INFO replication")
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_host:"+host+"\r\n") && strings.Contains(info, "master_port:"+port+"\r\n") {
			return r
		}
	}
	return nil
}

// Role is what the node at s says it is ("master", "slave"), or the error.
func (set *ClusterSet) Role(s *Server) string {
	info, err := roundTrip(s.Addr(), "INFO replication")
	return strings.TrimPrefix(firstLineOf(info, err, "role:"), "role:")
}

// URL is the service's REDIS_URL for the cluster: every primary.
func (set *ClusterSet) URL() string {
	addrs := make([]string, len(set.Primaries))
	for i, s := range set.Primaries {
		addrs[i] = s.Addr()
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// Client returns a cluster client for assertions, closed in tb.Cleanup.
func (set *ClusterSet) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	addrs := make([]string, len(set.Primaries))
	for i, s := range set.Primaries {
		addrs[i] = s.Addr()
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// FlushAll empties every primary.
func (set *ClusterSet) FlushAll(tb testing.TB) {
	tb.Helper()
	for _, s := range set.Primaries {
		s.FlushAll(tb)
	}
}

// KeysPerPrimary returns how many keys matching pattern each primary holds,
// in the order of Primaries, walking each with SCAN.
func (set *ClusterSet) KeysPerPrimary(tb testing.TB, pattern string) []int {
	tb.Helper()
	counts := make([]int, len(set.Primaries))
	for i, s := range set.Primaries {
		c := s.Client(tb)
		iter := c.Scan(context.Background(), 0, pattern, 500).Iterator()
		for iter.Next(context.Background()) {
			counts[i]++
		}
		if err := iter.Err(); err != nil {
			tb.Fatalf("redistest: SCAN %s on %s: %v", pattern, s.Addr(), err)
		}
	}
	return counts
}

// waitFor polls cond until it holds, failing the test with its last reason
// after readyTimeout*2.
func waitFor(tb testing.TB, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(readyTimeout * 2)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: %s: not the case after %v: %s", what, readyTimeout*2, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// firstLineOf is the line of an INFO reply that starts with prefix, or the
// error, for a wait's reason.
func firstLineOf(info string, err error, prefix string) string {
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return "(no " + prefix + " in the reply)"
}
