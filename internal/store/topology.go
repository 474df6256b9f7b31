package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The three shapes of Redis the service runs on, as (*Redis).Topology
// names them in the start-up line.
const (
	// Standalone is one Redis (redis://, rediss://); a replica of it is a
	// backup, not a failover target the service knows about.
	Standalone = "standalone"
	// Sentinel is a master with replicas watched by Sentinels
	// (redis+sentinel://, rediss+sentinel://): the client asks the
	// Sentinels where the master is, and follows a failover.
	Sentinel = "sentinel"
	// Cluster is Redis Cluster (redis+cluster://, rediss+cluster://):
	// keys are spread over several primaries by hash slot.
	Cluster = "cluster"
)

// urlForms is the accepted REDIS_URL forms, for error messages.
const urlForms = "redis://[user:pass@]host:port/db, " +
	"redis+sentinel://[user:pass@]host:26379,host2:26379/MASTER[/db][?sentinel_username=U&sentinel_password=P] or " +
	"redis+cluster://[user:pass@]host:7000,host2:7001 (rediss, rediss+sentinel, rediss+cluster for TLS)"

// Endpoint is a checked REDIS_URL: which topology it names and the
// go-redis options to reach it. Get one from ParseURL.
type Endpoint struct {
	// Topology is Standalone, Sentinel or Cluster.
	Topology string

	standalone *redis.Options
	failover   *redis.FailoverOptions
	cluster    *redis.ClusterOptions
}

// ParseURL checks a REDIS_URL and returns where it points. It is used at
// start, so a bad REDIS_URL is reported before anything connects. The
// error never contains the URL, which may hold a password.
//
// Forms:
//
//	redis://[user:pass@]host:port/db            standalone (rediss:// for TLS); go-redis's query options apply
//	redis+sentinel://[user:pass@]h1:26379,h2:26379/MASTER[/db][?sentinel_username=U&sentinel_password=P]
//	redis+cluster://[user:pass@]h1:7000,h2:7001,...
//
// and rediss+sentinel://, rediss+cluster:// for TLS to every node.
//
// The userinfo is always the data nodes' credentials (the master and its
// replicas, or the cluster's nodes), as in redis://. Sentinels are
// authenticated only with sentinel_username and sentinel_password (password
// alone: requirepass; both: an ACL user); without them the Sentinels are
// asked without AUTH. A Sentinel host without a port is on 26379, a Cluster
// node on 6379. A Cluster has database 0 only.
func ParseURL(raw string) (Endpoint, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Endpoint{}, errors.New("want " + urlForms)
	}
	switch scheme {
	case "redis", "rediss":
		opt, err := parseStandalone(raw)
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{Topology: Standalone, standalone: opt}, nil
	case "redis+sentinel", "rediss+sentinel":
		opt, err := parseSentinel(rest, scheme == "rediss+sentinel")
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{Topology: Sentinel, failover: opt}, nil
	case "redis+cluster", "rediss+cluster":
		opt, err := parseCluster(rest, scheme == "rediss+cluster")
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{Topology: Cluster, cluster: opt}, nil
	}
	return Endpoint{}, errors.New("want " + urlForms)
}

func parseStandalone(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, errors.New("want redis://[user:pass@]host:port/db or rediss://[user:pass@]host:port/db")
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errors.New("want redis://[user:pass@]host:port/db or rediss://[user:pass@]host:port/db")
	}
	return opt, nil
}

// multiHost is the part of a sentinel or cluster URL after the scheme.
type multiHost struct {
	user, password string
	hasUser        bool
	addrs          []string
	path           []string // path segments, unescaped
	query          url.Values
}

// parseMultiHost splits [user:pass@]h1:p1,h2:p2[/path][?query]. net/url
// does not take a list of hosts, so the authority is read here; userinfo,
// path and query are unescaped as net/url would.
func parseMultiHost(rest string, defaultPort string) (multiHost, error) {
	var m multiHost
	if strings.Contains(rest, "#") {
		return m, errors.New("a fragment (#) is not allowed")
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return m, errors.New("bad query string")
	}
	m.query = q
	authority, rawPath, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		rawUser, rawPass, _ := strings.Cut(userinfo, ":")
		if m.user, err = url.PathUnescape(rawUser); err != nil {
			return m, errors.New("bad user name escape")
		}
		if m.password, err = url.PathUnescape(rawPass); err != nil {
			return m, errors.New("bad password escape")
		}
		m.hasUser = true
	}
	for _, hp := range strings.Split(authority, ",") {
		addr, err := hostPort(hp, defaultPort)
		if err != nil {
			return m, err
		}
		m.addrs = append(m.addrs, addr)
	}
	for _, seg := range strings.Split(rawPath, "/") {
		if seg == "" {
			continue
		}
		s, err := url.PathUnescape(seg)
		if err != nil {
			return m, errors.New("bad path escape")
		}
		m.path = append(m.path, s)
	}
	return m, nil
}

// hostPort checks one host[:port] of a host list.
func hostPort(hp, defaultPort string) (string, error) {
	if hp == "" {
		return "", errors.New("empty host in the host list")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		// No port: a name, an IPv4 address or a bracketed IPv6 one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), defaultPort
		if host == "" || strings.ContainsAny(hp, " ") || (strings.Contains(host, ":") && !strings.HasPrefix(hp, "[")) {
			return "", fmt.Errorf("bad host %q: want host:port", hp)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return "", fmt.Errorf("bad host %q: want host:port", hp)
	}
	return net.JoinHostPort(host, port), nil
}

// tlsFor is the TLS config of a topology with several hosts. ServerName is
// left empty so that each node is verified against its own host name (or
// IP address), as dialled: crypto/tls fills it in from the address.
func tlsFor(on bool) *tls.Config {
	if !on {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func parseSentinel(rest string, useTLS bool) (*redis.FailoverOptions, error) {
	const form = "want redis+sentinel://[user:pass@]host:26379,host2:26379/MASTER[/db][?sentinel_username=U&sentinel_password=P]"
	m, err := parseMultiHost(rest, "26379")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", form, err)
	}
	if len(m.path) < 1 || len(m.path) > 2 {
		return nil, errors.New(form + ": the path is the master's name, then optionally the database number")
	}
	opt := &redis.FailoverOptions{
		MasterName:    m.path[0],
		SentinelAddrs: m.addrs,
		Username:      m.user,
		Password:      m.password,
		TLSConfig:     tlsFor(useTLS),
	}
	if len(m.path) == 2 {
		db, err := strconv.Atoi(m.path[1])
		if err != nil || db < 0 {
			return nil, errors.New(form + ": the database is a whole number")
		}
		opt.DB = db
	}
	for k, v := range m.query {
		switch k {
		case "sentinel_username":
			opt.SentinelUsername = v[len(v)-1]
		case "sentinel_password":
			opt.SentinelPassword = v[len(v)-1]
		default:
			return nil, fmt.Errorf("%s: unknown query parameter %q", form, k)
		}
	}
	return opt, nil
}

func parseCluster(rest string, useTLS bool) (*redis.ClusterOptions, error) {
	const form = "want redis+cluster://[user:pass@]host:7000,host2:7001"
	m, err := parseMultiHost(rest, "6379")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", form, err)
	}
	if len(m.path) > 1 || len(m.path) == 1 && m.path[0] != "0" {
		return nil, errors.New(form + ": a Cluster has database 0 only")
	}
	if len(m.query) > 0 {
		return nil, errors.New(form + ": no query parameters are taken")
	}
	return &redis.ClusterOptions{
		Addrs:     m.addrs,
		Username:  m.user,
		Password:  m.password,
		TLSConfig: tlsFor(useTLS),
	}, nil
}

// newClient builds the client for e with NewClient's deadlines and
// retries, so a Sentinel or Cluster setup fails as fast as one Redis.
func (e Endpoint) newClient(t Timeouts) redis.UniversalClient {
	t = t.withDefaults()
	switch e.Topology {
	case Sentinel:
		o := *e.failover
		knobsOf(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries, &o.DialerRetryTimeout,
			&o.ContextTimeoutEnabled, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff).set(t)
		return redis.NewFailoverClient(&o)
	case Cluster:
		o := *e.cluster
		knobsOf(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries, &o.DialerRetryTimeout,
			&o.ContextTimeoutEnabled, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff).set(t)
		return redis.NewClusterClient(&o)
	}
	return NewClient(e.standalone, t)
}

// replicaReader returns what reads a session from a replica while the
// master does not answer (failover.go), nil on standalone Redis. Its
// connections to replicas have the data nodes' credentials and TLS, the
// deadlines of t and no retries: a replica that does not answer at once
// is not waited for.
func (e Endpoint) replicaReader(c redis.UniversalClient, t Timeouts) *replicaReader {
	node := func(base redis.Options) func(addr string) *redis.Options {
		return func(addr string) *redis.Options {
			o := base
			o.Addr = addr
			knobsOf(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.DialerRetries, &o.DialerRetryTimeout,
				&o.ContextTimeoutEnabled, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff).set(t)
			o.MaxRetries = -1
			o.PoolSize = 4
			return &o
		}
	}
	switch e.Topology {
	case Sentinel:
		f := e.failover
		rr := &replicaReader{clients: map[string]*redis.Client{},
			nodeOpt: node(redis.Options{Username: f.Username, Password: f.Password, DB: f.DB, TLSConfig: f.TLSConfig})}
		rr.listNodes = rr.sentinelReplicas(f)
		return rr
	case Cluster:
		cc, ok := c.(*redis.ClusterClient)
		if !ok {
			return nil
		}
		o := e.cluster
		rr := &replicaReader{cluster: true, clients: map[string]*redis.Client{},
			nodeOpt: node(redis.Options{Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig})}
		rr.listNodes = rr.clusterReplicas(cc)
		return rr
	}
	return nil
}

// Topology is Standalone, Sentinel or Cluster: what REDIS_URL named, for
// the start-up line.
func (r *Redis) Topology() string { return r.topology }

// SetLogger gives the stores a logger for what is worth an operator's
// attention but is no error to the caller: a revocation that no replica
// confirmed in time. Call it before the stores are used; without it such
// warnings are dropped.
func (r *Redis) SetLogger(log *slog.Logger) { r.Sessions.ack.log = log }

// ackReplicas is how many replicas a revocation waits for: one is enough
// for Sentinel, and for a Cluster's election, to promote a replica that
// has it (both promote the most up-to-date one).
const ackReplicas = 1

// replicaAck makes the writes that end sessions wait until a replica has
// them (WAIT 1 <Timeouts.ReplicaAck>), on the topologies that fail over to
// a replica: a logout the user saw succeed must not come back when the
// master dies and a replica takes over. replicas == 0 turns it off
// (standalone: no failover).
type replicaAck struct {
	replicas int
	timeout  time.Duration
	log      *slog.Logger // nil: warnings dropped
}

func ackFor(topology string, t Timeouts) replicaAck {
	if topology == Sentinel || topology == Cluster {
		return replicaAck{replicas: ackReplicas, timeout: t.ReplicaAck}
	}
	return replicaAck{}
}

// wait WAITs on c, the connection that made the writes to confirm, and
// logs (does not refuse) when no replica confirmed them in time.
func (a replicaAck) wait(ctx context.Context, c *redis.Conn, op string) error {
	n, err := c.Wait(ctx, a.replicas, a.timeout).Result()
	if err != nil {
		return unavailable(op+": wait for a replica", err)
	}
	if n < int64(a.replicas) && a.log != nil {
		what := "revocation"
		if op == "create session" {
			what = "new session"
		}
		a.log.Warn(what+" not yet confirmed by a replica: a failover in the next moments could undo it",
			"op", op, "replicas", n, "waited", a.timeout.String())
	}
	return nil
}

// durably runs write and, when writes that must outlive the master wait
// for a replica, WAITs on the same connection (WAIT counts only that
// connection's writes); on Sentinel, write and WAIT run again together if
// the master fails over meanwhile (failover.go), so write must be safe to
// repeat. If no replica confirms within the timeout, the write stands on
// the master and the call still succeeds: it is logged, not refused (see
// the README, "Redis topologies"). A WAIT that fails outright (the master
// went away and no new one came within the budget) is an error, so the
// caller can say the logout may not have happened. On a Cluster write
// runs on the cluster client and nothing waits: its keys may live on
// several primaries (durablyPerPrimary is the Cluster's way, for writes
// that name their keys).
func (s *SessionStore) durably(ctx context.Context, op string, write func(ctx context.Context, c redis.Cmdable) error) error {
	if s.ack.replicas == 0 {
		return write(ctx, s.client)
	}
	rc, ok := s.client.(*redis.Client)
	if !ok {
		return write(ctx, s.client)
	}
	return s.fo.retry(ctx, func(ctx context.Context) error {
		conn := rc.Conn()
		defer func() { _ = conn.Close() }()
		if err := write(ctx, conn); err != nil {
			return err
		}
		return s.ack.wait(ctx, conn, op)
	})
}

// durablyPerPrimary is durably on a Redis Cluster for a write of keys
// that may live on several primaries (revocations: session keys have no
// common hash tag). The keys are grouped by the primary that holds them,
// and each group is written (write(ctx, c, indexes into keys)) on a
// connection of its own to that primary, then WAITed for there: WAIT
// counts only that connection's writes on that node, which go-redis's
// cluster routing cannot give (in a cluster pipeline a keyless WAIT goes
// to any primary; inside MULTI, a TxPipeline, WAIT does not block).
// A primary that the slot map lists without a replica is not waited on:
// there is nothing to wait for, and a Cluster run without replicas would
// pay ReplicaAck on every logout. If a failover interrupts, the groups not
// yet confirmed run again (on their new primaries: a MOVED or a dead node
// is retried, with the slot map reloaded); write must be safe to repeat.
func (s *SessionStore) durablyPerPrimary(ctx context.Context, cc *redis.ClusterClient, op string, keys []string, write func(ctx context.Context, c redis.Cmdable, which []int) error) error {
	pending := make([]int, len(keys))
	for i := range pending {
		pending[i] = i
	}
	return s.fo.retry(ctx, func(ctx context.Context) error {
		groups := map[*redis.Client][]int{}
		var order []*redis.Client
		for _, i := range pending {
			node, err := cc.MasterForKey(ctx, keys[i])
			if err != nil {
				return unavailable(op, err)
			}
			if _, ok := groups[node]; !ok {
				order = append(order, node)
			}
			groups[node] = append(groups[node], i)
		}
		for _, node := range order {
			which := groups[node]
			if err := s.onPrimary(ctx, node, op, keys[which[0]], func(ctx context.Context, c redis.Cmdable) error {
				return write(ctx, c, which)
			}); err != nil {
				return err
			}
			pending = slices.DeleteFunc(pending, func(i int) bool { return slices.Contains(which, i) })
		}
		return nil
	})
}

// onPrimary runs write on a connection of its own to node, the primary
// that holds key, then WAITs there if the primary has a replica
// connected. Its own INFO says so: the slot map (CLUSTER SLOTS) lists a
// replica only once the cluster's gossip has carried a replication
// offset of it, seconds after it joined. A primary with no replica
// connected has nothing to wait for; if the slot map knows one of it,
// that is worth the same warning as a WAIT that timed out.
func (s *SessionStore) onPrimary(ctx context.Context, node *redis.Client, op, key string, write func(ctx context.Context, c redis.Cmdable) error) error {
	conn := node.Conn()
	defer func() { _ = conn.Close() }()
	if err := write(ctx, conn); err != nil {
		return err
	}
	info, err := conn.Info(ctx, "replication").Result()
	if err != nil {
		return unavailable(op+": count the replicas", err)
	}
	if connectedReplicas(info) > 0 {
		return s.ack.wait(ctx, conn, op)
	}
	if rr := s.fo.replicas; rr != nil && s.ack.log != nil {
		if known, err := rr.listNodes(ctx, key); err == nil && len(known) > 0 {
			s.ack.log.Warn("revocation not yet confirmed by a replica: a failover in the next moments could undo it",
				"op", op, "replicas", 0, "primary", node.Options().Addr, "reason", "no replica connected")
		}
	}
	return nil
}

// connectedReplicas is connected_slaves of INFO replication (0 if absent).
func connectedReplicas(info string) int {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
