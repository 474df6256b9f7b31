// Package redistest runs a real redis-server for integration tests, because
// the behaviour we depend on in production (persistence across restarts,
// clients hitting deadlines on a stalled server) cannot be faked faithfully.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/testkit"
)

const (
	// readyTimeout bounds a start so a broken server fails the test instead of hanging it.
	readyTimeout = 10 * time.Second
	// exitTimeout bounds waiting for the process to go away after a signal.
	exitTimeout = 10 * time.Second
	// portAttempts covers the window between closing our probe listener and
	// redis-server binding the port, in which someone else may take it.
	portAttempts = 5
	// tailLines is enough of redis.log to see why it failed without drowning the test output.
	tailLines = 20
)

// errPortTaken tells Start to pick another port rather than give up.
var errPortTaken = errors.New("port already in use")

// Server is one redis-server process owned by a test.
//
// Methods are meant to be called from the test's own goroutine.
type Server struct {
	binary string
	dir    string
	port   int
	// busPort is the Cluster bus port of a cluster node (0 otherwise),
	// drawn with port.
	busPort int
	cfg     config
	// proc runs redis-server, once per launch; it is killed when the test
	// that called Start ends, also after a Restart from a subtest.
	proc *testkit.Process
}

type config struct {
	aof       bool
	replicaOf string   // "host:port" of the master, for a replica
	sentinel  *monitor // run as a Sentinel watching this master
	cluster   bool     // a Redis Cluster node
}

// Option adjusts how redis-server is configured, for tests that need more
// than a throwaway in-memory server.
type Option func(*config)

// WithAOF turns on appendonly yes / appendfsync everysec, so a test can
// restart Redis and find its data again, as in production.
func WithAOF() Option {
	return func(c *config) { c.aof = true }
}

// Start launches redis-server on a free 127.0.0.1 port in its own temporary
// directory, so parallel tests never share state, and returns once it answers
// PING. It never skips: a missing binary or a server that does not come up
// fails the test, because a silently skipped integration test hides exactly
// the bugs it exists to catch. The process is killed in t.Cleanup, also when
// the test fails, and so is anything it forked.
//
// The server is redis-server, or the program named by the environment
// variable REDISTEST_SERVER (valkey-server: the test command runs the
// Redis-facing tests a second time against Valkey).
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return startWith(tb, ServerBinary(), opts...)
}

// ServerBinary is the server the tests run: REDISTEST_SERVER, or
// redis-server when that is unset.
func ServerBinary() string {
	if b := os.Getenv("REDISTEST_SERVER"); b != "" {
		return b
	}
	return "redis-server"
}

// cliBinary is the command-line client that goes with the server:
// valkey-cli for valkey-server, redis-cli otherwise.
func cliBinary() string {
	if strings.HasPrefix(filepath.Base(ServerBinary()), "valkey") {
		return "valkey-cli"
	}
	return "redis-cli"
}

// startWith takes the binary name so tests can see Start fail loudly.
func startWith(tb testing.TB, binary string, opts ...Option) *Server {
	tb.Helper()
	path, err := exec.LookPath(binary)
	if err != nil {
		install := "apt-get install -y redis-server"
		if strings.Contains(binary, "valkey") {
			install = "apt-get install -y -t bookworm-backports valkey-server valkey-tools"
		}
		tb.Fatalf("%s not found on PATH: run ./scripts/test.sh, which installs it (%s)", binary, install)
	}
	s := newServer(tb, path)
	for _, opt := range opts {
		opt(&s.cfg)
	}

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: find a free port: %v", err)
		}
		s.port = port
		if s.cfg.cluster {
			if s.busPort, err = freePort(); err != nil {
				tb.Fatalf("redistest: find a free port: %v", err)
			}
		}
		err = s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == portAttempts {
			tb.Fatalf("redistest: start redis-server on %s: %v\n%s", s.Addr(), err, s.logTail())
		}
	}
}

// Addr is what go-redis and most clients take: "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port is the TCP port, stable across Restart.
func (s *Server) Port() int { return s.port }

// URL is for code configured the way the service is, with a redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a go-redis client for assertions on what the code under
// test stored; it is closed in t.Cleanup so tests need not bother.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts redis-server down the way an orchestrator does (SIGTERM), which
// lets it fsync the AOF, and waits until it has exited. A frozen server is
// thawed so that it can act on the signal.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	p := s.mustBeRunning(tb, "Stop")
	// SIGTERM goes to redis-server alone: it stops its own children.
	s.signal(tb, p.Signal, syscall.SIGTERM)
	s.signal(tb, p.SignalGroup, syscall.SIGCONT)
	if !p.WaitExit(exitTimeout) {
		tb.Fatalf("redistest: redis-server on %s ignored SIGTERM for %v\n%s", s.Addr(), exitTimeout, s.logTail())
	}
	if err := p.Err(); err != nil {
		tb.Fatalf("redistest: redis-server on %s did not shut down cleanly: %v\n%s", s.Addr(), err, s.logTail())
	}
}

// Kill simulates a crash (SIGKILL): no shutdown work, so only what Redis
// already wrote to its AOF survives.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	p := s.mustBeRunning(tb, "Kill")
	if err := p.Kill(exitTimeout); err != nil {
		tb.Fatalf("redistest: redis-server on %s: %v", s.Addr(), err)
	}
}

// Restart brings the server back on the same port, directory and options, as
// a restarted production instance would be, and returns once it answers
// PING, which with AOF means it has loaded its data. A running server is
// stopped first with Stop.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if s.Running() {
		s.Stop(tb)
	}
	if err := s.launch(); err != nil {
		tb.Fatalf("redistest: restart redis-server on %s: %v\n%s", s.Addr(), err, s.logTail())
	}
}

// Freeze stops the process (SIGSTOP) without closing its socket: connections
// still succeed but nothing is answered, which is how a stalled server looks
// to a client and what client deadlines are for.
func (s *Server) Freeze(tb testing.TB) {
	tb.Helper()
	p := s.mustBeRunning(tb, "Freeze")
	s.signal(tb, p.SignalGroup, syscall.SIGSTOP)
}

// Thaw lets a frozen server carry on (SIGCONT), including with whatever
// commands queued up on its sockets meanwhile.
func (s *Server) Thaw(tb testing.TB) {
	tb.Helper()
	p := s.mustBeRunning(tb, "Thaw")
	s.signal(tb, p.SignalGroup, syscall.SIGCONT)
}

// FlushAll lets tests that share one server start from an empty one.
func (s *Server) FlushAll(tb testing.TB) {
	tb.Helper()
	reply, err := roundTrip(s.Addr(), "FLUSHALL")
	if err == nil && reply != "+OK" {
		err = fmt.Errorf("reply %q", reply)
	}
	if err != nil {
		tb.Fatalf("redistest: FLUSHALL on %s: %v\n%s", s.Addr(), err, s.logTail())
	}
}

// Running reports whether the process is alive (frozen counts as alive), so a
// test can check that the code under test did not outlive or kill it.
func (s *Server) Running() bool { return s.proc.Running() }

func (s *Server) mustBeRunning(tb testing.TB, op string) *testkit.Process {
	tb.Helper()
	if !s.Running() {
		tb.Fatalf("redistest: %s: redis-server on %s is not running", op, s.Addr())
	}
	return s.proc
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *Server) args() []string {
	if s.cfg.sentinel != nil {
		// Sentinel takes its settings from a file it rewrites as it learns
		// the replicas and the other Sentinels (writeSentinelConf).
		return []string{s.sentinelConfPath(), "--sentinel"}
	}
	appendonly := "no"
	if s.cfg.aof {
		appendonly = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", appendonly,
	}
	if s.cfg.aof {
		args = append(args, "--appendfsync", "everysec")
	}
	if s.cfg.replicaOf != "" {
		host, port, _ := net.SplitHostPort(s.cfg.replicaOf)
		args = append(args, "--replicaof", host, port)
	}
	if s.cfg.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(s.busPort),
			"--cluster-node-timeout", "2000",
		)
	}
	return append(args,
		"--daemonize", "no",
		"--logfile", s.logPath(),
		"--protected-mode", "no",
	)
}

// newServer returns a Server of binary in a fresh directory of tb, not
// started yet. Its process is killed in tb.Cleanup, before TempDir's cleanup
// removes the directory.
func newServer(tb testing.TB, binary string) *Server {
	tb.Helper()
	s := &Server{binary: binary, dir: tb.TempDir()}
	// Stdout and stderr go to redis.log too, because errors from before Redis
	// opens its logfile (bad arguments) are printed there.
	s.proc = testkit.NewProcess(tb, s.logPath())
	return s
}

// launch starts one run of redis-server and waits until it is ready.
func (s *Server) launch() error {
	p := s.proc
	if s.cfg.sentinel != nil {
		if err := s.writeSentinelConf(); err != nil {
			return err
		}
	}
	if err := p.Start(exec.Command(s.binary, s.args()...)); err != nil {
		return err
	}

	if err := s.waitReady(p); err != nil {
		// Output, not the whole log: a bind failure of an earlier attempt
		// is not one of this attempt.
		if !p.Running() && strings.Contains(p.Output(), "Address already in use") {
			return errPortTaken
		}
		return err
	}
	return nil
}

// waitReady polls until this run of redis-server answers PING. While it
// loads an AOF it answers -LOADING, which is simply retried.
func (s *Server) waitReady(p *testkit.Process) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("redis-server exited before answering PING: %v", p.Err())
		}
		last = s.answersAsUs(p)
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no answer to PING within %v: %v", readyTimeout, last)
}

// answersAsUs checks both that the port answers PING and that it is our
// process answering: if another test's server grabbed the port first, ours
// is about to exit on a failed bind and must not be reported as ready.
func (s *Server) answersAsUs(p *testkit.Process) error {
	reply, err := roundTrip(s.Addr(), "PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	info, err := roundTrip(s.Addr(), "INFO server")
	if err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(p.Pid()) + "\r\n"
	if !strings.Contains(info, want) {
		return errors.New("another process answers on this port")
	}
	return nil
}

// logTail is the end of redis.log, every run of this Server included.
func (s *Server) logTail() string { return testkit.LogTail(s.logPath(), tailLines) }

// signal sends sig with send (a Process's Signal or SignalGroup), failing
// the test if it cannot be sent. A process that is already gone needs no
// signal, and the caller's wait for exit tells the rest.
func (s *Server) signal(tb testing.TB, send func(syscall.Signal) error, sig syscall.Signal) {
	tb.Helper()
	if err := send(sig); err != nil {
		tb.Fatalf("redistest: redis-server on %s: %v", s.Addr(), err)
	}
}

// freePort asks the kernel for an unused port; it can be taken again before
// redis-server binds it, which Start handles by retrying.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// roundTrip sends one inline command on a fresh connection and returns a
// simple/error reply line as is ("+PONG", "-LOADING ...") or a bulk reply's
// payload. It avoids go-redis so that readiness checks involve no client
// handshake, pooling or retries of their own.
func roundTrip(addr, command string) (string, error) {
	const timeout = 500 * time.Millisecond
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, command+"\r\n"); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return "", fmt.Errorf("unexpected reply %q", line)
	}
	payload := make([]byte, n+2) // +2 for the trailing CRLF
	if _, err := io.ReadFull(r, payload); err != nil {
		return "", err
	}
	return string(payload[:n]), nil
}
