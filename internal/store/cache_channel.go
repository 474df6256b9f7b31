package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The invalidation channel is ONE connection of its own, outside
// go-redis's pool, so that nothing reconnects it behind the cache's back:
// it asks Redis to track every key under SessionPrefix (BCAST mode, so the
// pool's data connections need no tracking at all), redirects the
// invalidations to itself (Redis 6+ allows a client to name its own id) and
// subscribes to __redis__:invalidate in RESP2. When it drops, tracking
// ends with it; the cache is flushed and every read goes to Redis until a
// new channel is subscribed.

const (
	// cacheHealthEvery is how often the channel is pinged.
	cacheHealthEvery = 500 * time.Millisecond
	// cacheInDoubtAfter is how old the newest answered ping may be before
	// the channel is in doubt: nothing is served from memory, and the
	// connection is dropped and made again.
	cacheInDoubtAfter = 1500 * time.Millisecond
	// invalidateChannel is where Redis publishes invalidations to RESP2
	// clients.
	invalidateChannel = "__redis__:invalidate"
	// maxBackoff bounds the wait between attempts to open the channel.
	maxBackoff = 2 * time.Second
)

// channelDialer opens the channel's connection to the same server as the
// data connections: go-redis's dialer (TLS included; with Sentinel, the
// current primary) and its credentials.
type channelDialer struct {
	network, addr string
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	credentials   func(ctx context.Context) (user, password string, err error)
	timeouts      Timeouts
}

func newChannelDialer(c *redis.Client, t Timeouts) channelDialer {
	opt := c.Options()
	creds := func(context.Context) (string, string, error) { return opt.Username, opt.Password, nil }
	switch {
	case opt.CredentialsProviderContext != nil:
		creds = opt.CredentialsProviderContext
	case opt.CredentialsProvider != nil:
		creds = func(context.Context) (string, string, error) {
			u, p := opt.CredentialsProvider()
			return u, p, nil
		}
	}
	return channelDialer{network: opt.Network, addr: opt.Addr, dial: opt.Dialer, credentials: creds, timeouts: t}
}

// redisError is an error reply: Redis answered, and said no.
type redisError string

func (e redisError) Error() string { return string(e) }

// open dials and sets the channel up: AUTH, CLIENT ID, CLIENT TRACKING
// on REDIRECT <own id> BCAST PREFIX SessionPrefix, SUBSCRIBE. A refusal of
// the tracking commands is ErrCacheUnsupported; anything else is worth
// retrying.
func (d channelDialer) open(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeouts.Dial+4*d.timeouts.IO)
	defer cancel()
	conn, err := d.dial(ctx, d.network, d.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("set deadline: %w", err)
	}
	r := bufio.NewReader(conn)
	call := func(args ...string) (any, error) {
		if err := writeCommand(conn, args...); err != nil {
			return nil, err
		}
		return readReply(r)
	}
	fail := func(step string, err error) (net.Conn, *bufio.Reader, error) {
		_ = conn.Close()
		var re redisError
		if step != "AUTH" && errors.As(err, &re) {
			return nil, nil, fmt.Errorf("%w: Redis refused %s: %w", ErrCacheUnsupported, step, err)
		}
		return nil, nil, fmt.Errorf("%s: %w", step, err)
	}
	user, password, err := d.credentials(ctx)
	if err != nil {
		return fail("AUTH", err)
	}
	if password != "" {
		args := []string{"AUTH", password}
		if user != "" {
			args = []string{"AUTH", user, password}
		}
		if _, err := call(args...); err != nil {
			return fail("AUTH", err)
		}
	}
	reply, err := call("CLIENT", "ID")
	if err != nil {
		return fail("CLIENT ID", err)
	}
	id, ok := reply.(int64)
	if !ok {
		return fail("CLIENT ID", fmt.Errorf("unexpected reply %v", reply))
	}
	if _, err := call("CLIENT", "TRACKING", "on", "REDIRECT", strconv.FormatInt(id, 10), "BCAST", "PREFIX", SessionPrefix); err != nil {
		return fail("CLIENT TRACKING", err)
	}
	reply, err = call("SUBSCRIBE", invalidateChannel)
	if err != nil {
		return fail("SUBSCRIBE", err)
	}
	if a, ok := reply.([]any); !ok || len(a) != 3 || string(asBytes(a[0])) != "subscribe" {
		return fail("SUBSCRIBE", fmt.Errorf("unexpected reply %v", reply))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fail("SUBSCRIBE", err)
	}
	return conn, r, nil
}

// runChannel keeps the channel open until ctx ends, reopening it with
// backoff, and tells c when it is live and when it is lost. It returns at
// once if Redis refuses tracking. Every change of state is logged once,
// not every retry.
func (c *sessionCache) runChannel(ctx context.Context, d channelDialer, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	down := false
	for ctx.Err() == nil {
		conn, r, err := d.open(ctx)
		if errors.Is(err, ErrCacheUnsupported) {
			c.unsupported.Store(true)
			log.Warn("session cache off: every session is read from Redis", "err", err)
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !down {
				log.Warn("session cache: no invalidation channel; every session is read from Redis until it is back", "err", err)
				down = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		c.setLive(true, time.Now())
		if down {
			log.Info("session cache: invalidation channel back; sessions are cached again")
		}
		err = c.serveChannel(ctx, conn, r, d.timeouts.IO)
		c.setLive(false, time.Now())
		if ctx.Err() != nil {
			return
		}
		log.Warn("session cache: invalidation channel lost; cache flushed, every session is read from Redis until it is back", "err", err)
		down = true
	}
}

// serveChannel reads invalidations and answers to health pings until the
// connection fails, goes silent for cacheInDoubtAfter, or ctx ends.
func (c *sessionCache) serveChannel(ctx context.Context, conn net.Conn, r *bufio.Reader, ioTimeout time.Duration) error {
	// sent holds the send times of pings not answered yet, oldest first;
	// Redis answers in order.
	sent := make(chan time.Time, int(cacheInDoubtAfter/cacheHealthEvery)+1)
	readErr := make(chan error, 1)
	go func() { readErr <- c.readChannel(r, sent) }()
	defer func() {
		_ = conn.Close()
		<-readErr //nolint:errcheck // waits for the reader to end with the connection; why it ended is already handled
	}()
	tick := time.NewTicker(cacheHealthEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return err
		case now := <-tick.C:
			c.sweep(now)
			if !c.trusted(now) {
				return fmt.Errorf("no answer to health pings for %v", cacheInDoubtAfter)
			}
			select {
			case sent <- now:
			default:
				return errors.New("too many health pings unanswered")
			}
			if err := conn.SetWriteDeadline(now.Add(ioTimeout)); err != nil {
				return err
			}
			if err := writeCommand(conn, "PING"); err != nil {
				return fmt.Errorf("health ping: %w", err)
			}
		}
	}
}

// readChannel handles what Redis sends on the channel until it fails.
func (c *sessionCache) readChannel(r *bufio.Reader, sent <-chan time.Time) error {
	for {
		reply, err := readReply(r)
		if err != nil {
			return err
		}
		msg, ok := reply.([]any)
		if !ok || len(msg) == 0 {
			return fmt.Errorf("unexpected message %v", reply)
		}
		switch string(asBytes(msg[0])) {
		case "pong":
			select {
			case at := <-sent:
				c.confirmed.Store(at.UnixNano())
			default:
				return errors.New("pong without a ping")
			}
		case "message":
			if len(msg) != 3 {
				return fmt.Errorf("unexpected message %v", reply)
			}
			keys, isList := msg[2].([]any)
			if msg[2] == nil || !isList {
				// A null key list: FLUSHALL, FLUSHDB, or Redis
				// dropping its tracking table. Forget everything.
				c.flush()
				continue
			}
			hashes := make([]string, 0, len(keys))
			for _, k := range keys {
				if key := string(asBytes(k)); strings.HasPrefix(key, SessionPrefix) {
					hashes = append(hashes, hashFromSessionKey(key))
				}
			}
			c.invalidate(hashes)
		}
	}
}

// writeCommand writes args as a RESP array of bulk strings.
func writeCommand(conn net.Conn, args ...string) error {
	b := make([]byte, 0, 64)
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	_, err := conn.Write(b)
	return err
}

// Bounds on what readReply accepts: the channel carries key names and
// short replies only.
const (
	maxBulk  = 64 << 10
	maxArray = 1 << 16
	maxDepth = 3
)

// readReply reads one RESP2 reply: a simple string or bulk string as
// []byte (nil for a null bulk), an integer as int64, an array as []any
// (nil for a null array), an error reply as a redisError.
func readReply(r *bufio.Reader) (any, error) { return readValue(r, 0) }

func readValue(r *bufio.Reader, depth int) (any, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	kind, body := line[0], string(line[1:len(line)-2])
	switch kind {
	case '+':
		return []byte(body), nil
	case '-':
		return nil, redisError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("bad bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxArray || depth >= maxDepth {
			return nil, fmt.Errorf("bad array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readValue(r, depth+1); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", kind)
}

// asBytes is v as a string-ish reply, or nil.
func asBytes(v any) []byte {
	b, _ := v.([]byte)
	return b
}
