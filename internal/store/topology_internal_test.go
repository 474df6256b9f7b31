package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every REDIS_URL form lands on the right go-redis client with the master's
// and the Sentinels' credentials where the README says they go.
func TestParseURLForms(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		topology string
		want     string // the options that matter, as endpointSummary prints them
	}{
		{"redis://localhost:6379/2", Standalone, "addr=localhost:6379 db=2 user= pass= tls=false"},
		{"rediss://u:p@r.example:6380/0", Standalone, "addr=r.example:6380 db=0 user=u pass=p tls=true"},
		{"redis+sentinel://s1:26379,s2:26380,s3/mymaster", Sentinel,
			"master=mymaster sentinels=[s1:26379 s2:26380 s3:26379] db=0 user= pass= sentinel_user= sentinel_pass= tls=false"},
		{"redis+sentinel://app:s%40cret@s1:26379/my%2Fmaster/3?sentinel_password=sp", Sentinel,
			"master=my/master sentinels=[s1:26379] db=3 user=app pass=s@cret sentinel_user= sentinel_pass=sp tls=false"},
		{"rediss+sentinel://:mp@[::1]:26379,10.0.0.2/m/?sentinel_username=su&sentinel_password=sp", Sentinel,
			"master=m sentinels=[[::1]:26379 10.0.0.2:26379] db=0 user= pass=mp sentinel_user=su sentinel_pass=sp tls=true"},
		{"redis+cluster://n1:7000,n2:7001,n3", Cluster, "addrs=[n1:7000 n2:7001 n3:6379] user= pass= tls=false"},
		{"rediss+cluster://default:pw@n1:7000/0", Cluster, "addrs=[n1:7000] user=default pass=pw tls=true"},
		{"redis+cluster://[::1]:7000,[::1]:7001/", Cluster, "addrs=[[::1]:7000 [::1]:7001] user= pass= tls=false"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			ep, err := ParseURL(tc.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if ep.Topology != tc.topology {
				t.Errorf("topology: got %q, want %q", ep.Topology, tc.topology)
			}
			if got := endpointSummary(ep); got != tc.want {
				t.Errorf("options:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestParseURLRejects(t *testing.T) {
	for _, raw := range []string{
		"", "localhost:6379", "http://x", "redis://", "redis:///0", "redis+ring://h:1",
		"redis+sentinel://", "redis+sentinel://h1:26379", "redis+sentinel://h1:26379/", "redis+sentinel://h1/m/1/2",
		"redis+sentinel://h1/m/-1", "redis+sentinel://h1/m/x", "redis+sentinel://h1:0/m", "redis+sentinel://h1:99999/m",
		"redis+sentinel://h1,,h2/m", "redis+sentinel://h1,/m", "redis+sentinel://h1/m?master_name=x",
		"redis+sentinel://h1/m#frag", "redis+sentinel://::1/m", "redis+sentinel://u:%zz@h1/m",
		"redis+cluster://", "redis+cluster://h1:x", "redis+cluster://h1/1", "redis+cluster://h1/0/0",
		"redis+cluster://h1?read_only=true", "rediss+cluster://@",
	} {
		if ep, err := ParseURL(raw); err == nil {
			t.Errorf("ParseURL(%q): got %s, want an error", raw, endpointSummary(ep))
		} else if !strings.HasPrefix(err.Error(), "want ") {
			t.Errorf("ParseURL(%q): got error %q, want it to start with the form (\"want ...\")", raw, err)
		}
	}
}

// Sentinel and Cluster clients get the same deadlines and retries as one
// Redis: a failover window or a dead primary answers 503 within a second,
// it does not hang requests.
func TestEveryTopologyGetsTheDeadlines(t *testing.T) {
	tm := Timeouts{Dial: 111 * time.Millisecond, IO: 222 * time.Millisecond, Op: 333 * time.Millisecond}
	want := "dial=111ms read=222ms write=222ms pool=333ms retries=1 dial_retries=1 ctx=true"
	for _, raw := range []string{"redis://h:1/0", "redis+sentinel://h:1/m", "redis+cluster://h:1"} {
		ep, err := ParseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		c := ep.newClient(tm)
		var got string
		switch c := c.(type) {
		case *redis.Client:
			o := c.Options()
			got = fmt.Sprintf("dial=%v read=%v write=%v pool=%v retries=%d dial_retries=%d ctx=%v",
				o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries, o.DialerRetries, o.ContextTimeoutEnabled)
		case *redis.ClusterClient:
			o := c.Options()
			got = fmt.Sprintf("dial=%v read=%v write=%v pool=%v retries=%d dial_retries=%d ctx=%v",
				o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries, o.DialerRetries, o.ContextTimeoutEnabled)
		}
		_ = c.Close()
		if got != want {
			t.Errorf("%s: got %s, want %s", raw, got, want)
		}
	}
}

func endpointSummary(ep Endpoint) string {
	switch {
	case ep.standalone != nil:
		o := ep.standalone
		return fmt.Sprintf("addr=%s db=%d user=%s pass=%s tls=%v", o.Addr, o.DB, o.Username, o.Password, o.TLSConfig != nil)
	case ep.failover != nil:
		o := ep.failover
		return fmt.Sprintf("master=%s sentinels=%v db=%d user=%s pass=%s sentinel_user=%s sentinel_pass=%s tls=%v",
			o.MasterName, o.SentinelAddrs, o.DB, o.Username, o.Password, o.SentinelUsername, o.SentinelPassword, o.TLSConfig != nil)
	case ep.cluster != nil:
		o := ep.cluster
		return fmt.Sprintf("addrs=%v user=%s pass=%s tls=%v", o.Addrs, o.Username, o.Password, o.TLSConfig != nil)
	}
	return "(none)"
}
