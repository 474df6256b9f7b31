package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// With AOF, what was written survives a shutdown, and a crash once an
// appendfsync everysec tick has passed, on the same port.
func TestDataSurvivesRestartWithAOF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, srv *Server)
	}{
		{"Stop", func(t *testing.T, srv *Server) { srv.Stop(t) }},
		{"Kill", func(t *testing.T, srv *Server) {
			time.Sleep(1500 * time.Millisecond) // past one appendfsync everysec tick
			srv.Kill(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv, rdb := startHoldingAlice(t, WithAOF())
			port := srv.Port()

			tc.end(t, srv)
			if srv.Running() {
				t.Fatalf("Running() after %s", tc.name)
			}
			srv.Restart(t)

			if srv.Port() != port {
				t.Fatalf("Restart moved the server from port %d to %d", port, srv.Port())
			}
			got, err := rdb.Get(ctx, "session:1").Result()
			if err != nil || got != "alice" {
				t.Fatalf("after %s+Restart: GET session:1 = %q, %v; want alice", tc.name, got, err)
			}
		})
	}
}

func TestWithoutAOFRestartStartsEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := startHoldingAlice(t)

	srv.Restart(t) // from running: stops it first

	if n, err := rdb.Exists(ctx, "session:1").Result(); err != nil || n != 0 {
		t.Fatalf("without AOF after Restart: EXISTS session:1 = %d, %v; want 0", n, err)
	}
}

func TestFrozenServerTimesOutClientsUntilThawed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t)
	rdb := redis.NewClient(&redis.Options{
		Addr:        srv.Addr(),
		ReadTimeout: 300 * time.Millisecond,
		MaxRetries:  -1, // one attempt, so the timeout is what we observe
	})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Freeze(t)
	start := time.Now()
	err := rdb.Get(ctx, "session:1").Err()
	elapsed := time.Since(start)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("GET on a frozen server: err = %v; want a timeout", err)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("GET on a frozen server took %v; want about the 300ms ReadTimeout", elapsed)
	}
	if !srv.Running() {
		t.Fatal("a frozen server should still count as running")
	}

	srv.Thaw(t)
	if err := rdb.Set(ctx, "session:1", "alice", 0).Err(); err != nil {
		t.Fatalf("SET after Thaw: %v", err)
	}
}

func TestCleanupKillsAFrozenServer(t *testing.T) {
	t.Parallel()
	var pid int
	t.Run("test that leaves its server frozen", func(t *testing.T) {
		srv := Start(t)
		pid = srv.proc.Pid()
		srv.Freeze(t)
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server pid %d still exists after its test ended (kill -0: %v)", pid, err)
	}
}

// A test in steps restarts its server in one step and uses it in the next.
func TestRestartInASubtestOutlivesTheSubtest(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	t.Run("step that restarts the server", func(t *testing.T) {
		srv.Restart(t)
	})
	if !srv.Running() {
		t.Fatal("the server restarted in a subtest was stopped when the subtest ended; want it running until its test ends")
	}
	if err := srv.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after the subtest's Restart: %v", err)
	}
}

func TestCleanupAfterStopIsQuiet(t *testing.T) {
	t.Parallel()
	t.Run("test that stops its own server", func(t *testing.T) {
		srv := Start(t)
		srv.Stop(t)
	})
	// The subtest would have failed, failing this test too, had the cleanup complained.
}

func TestFlushAllEmptiesTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := startHoldingAlice(t)

	srv.FlushAll(t)

	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FlushAll = %d, %v; want 0", n, err)
	}
}

func TestURLIsUsableByGoRedis(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING via %s: %v", srv.URL(), err)
	}
}

func TestAPortTakenByAnotherServerIsNotMistakenForOurs(t *testing.T) {
	t.Parallel()
	other := Start(t)
	// The race Start retries on: a port that was free when probed has been
	// taken by another redis-server, which would happily answer our PING.
	srv := newServer(t, other.binary)
	srv.port = other.Port()

	if err := srv.launch(); !errors.Is(err, errPortTaken) {
		t.Fatalf("launch on a taken port: err = %v; want errPortTaken\n%s", err, srv.logTail())
	}
}

func TestStartFailsLoudlyWithoutTheBinary(t *testing.T) {
	t.Parallel()
	msg := fatalMessage(t, func(tb testing.TB) { startWith(tb, "redis-server-that-does-not-exist") })
	for _, want := range []string{"not found on PATH", "./scripts/test.sh", "apt-get install -y redis-server"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Fatalf message %q does not mention %q", msg, want)
		}
	}
}

func TestStartFailsLoudlyWhenTheServerExits(t *testing.T) {
	t.Parallel()
	// "false" stands in for a redis-server that dies on startup.
	msg := fatalMessage(t, func(tb testing.TB) { startWith(tb, "false") })
	if !strings.Contains(msg, "exited before answering PING") {
		t.Errorf("Fatalf message %q does not say the server exited", msg)
	}
}

// startHoldingAlice starts a server holding session:1 = alice and returns
// it with a client of it.
func startHoldingAlice(t *testing.T, opts ...Option) (*Server, *redis.Client) {
	t.Helper()
	srv := Start(t, opts...)
	rdb := srv.Client(t)
	if err := rdb.Set(context.Background(), "session:1", "alice", 0).Err(); err != nil {
		t.Fatalf("SET session:1 alice: %v", err)
	}
	return srv, rdb
}

// fatalRecorder is a testing.TB whose Fatalf ends the calling goroutine
// without failing the real test, so a test can check that something fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalMessage runs f and returns what it passed to Fatalf, failing the test
// if it did not call Fatalf.
func fatalMessage(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(rec)
	}()
	<-done
	if rec.msg == "" {
		t.Fatal("expected Fatalf, got none")
	}
	return rec.msg
}
