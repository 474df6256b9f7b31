package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// seedManySessions writes n valid sessions for users users straight into
// Redis (pipelined, thousands a round trip), each in its user's index
// exactly as a login would leave it: the document the codec writes, the
// key expiring in an hour, the index member scored by the absolute
// deadline. Logging in n times would take minutes of password hashing.
func seedManySessions(t *testing.T, c *redis.Client, n, users int) {
	t.Helper()
	ctx := context.Background()
	agents := []string{firefoxUA, androidUA, "curl/8.5.0", ""}
	now := time.Now().UTC()
	ends := now.Add(24 * time.Hour)
	const batch = 5000
	for i := 0; i < n; {
		pipe := c.Pipeline()
		for j := 0; j < batch && i < n; j, i = j+1, i+1 {
			user := fmt.Sprintf("user%04d", i%users)
			hash := testkit.TokenHash("scale-" + strconv.Itoa(i))
			loginAt := now.Add(-time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
			// The session values a login stores (see package session's
			// record.go): strings, times in RFC 3339.
			doc, err := session.JSONCodec{}.Encode(ends, map[string]any{
				"username":     user,
				"login_at":     loginAt,
				"last_seen_at": loginAt,
				"expires_at":   ends.Format(time.RFC3339Nano),
				"login_ip":     fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
				"user_agent":   agents[i%len(agents)],
			})
			if err != nil {
				t.Fatalf("encode session %d: %v", i, err)
			}
			pipe.Set(ctx, store.SessionKey(hash), doc, time.Hour)
			pipe.ZAdd(ctx, store.UserSessionsKey(user), redis.Z{Score: float64(ends.UnixMilli()), Member: hash})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("write sessions up to %d: %v", i, err)
		}
	}
	pipe := c.Pipeline()
	for u := range users {
		pipe.PExpireAt(ctx, store.UserSessionsKey(fmt.Sprintf("user%04d", u)), ends)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("expire session indexes: %v", err)
	}
}

// cliRun is one run of the built binary.
type cliRun struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

// runBinary runs the built server with args against redisURL, hands each
// line of its stdout to line as it comes (so the test holds no more of
// the output than it keeps), and fails unless the process exits 0.
func runBinary(t *testing.T, redisURL string, line func(string), args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(testkit.ServerBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + redisURL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server %s: %v", strings.Join(args, " "), err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Errorf("read output of server %s: %v", strings.Join(args, " "), err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server %s: %v (stderr %q)", strings.Join(args, " "), err, stderr.String())
	}
	r := cliRun{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	t.Logf("server %-28s %6.2fs wall, peak RSS %4d MiB", strings.Join(args, " "), r.wall.Seconds(), r.maxRSS>>10)
	return r
}

// The CLI against 200,000 sessions: the listing and the counts return all
// of them, and the test prints what each run cost (figures, not limits).
// It runs alone (not in parallel) so the figures are the CLI's own. The
// text listing streams through the same walk as --json; its format is
// tested on a few sessions.
func TestSessionsCLIAt200kSessions(t *testing.T) {
	const n, users = 200_000, 2_000
	const perUser = n / users
	rs := redistest.Start(t)
	testkit.ServerBinary(t) // build before the clock starts

	start := time.Now()
	seedManySessions(t, rs.Client(t), n, users)
	t.Logf("wrote %d sessions of %d users in %.2fs", n, users, time.Since(start).Seconds())

	ids := make(map[string]struct{}, n)
	perUserSeen := map[string]int{}
	bad := 0
	runBinary(t, rs.URL(), func(line string) {
		var s struct{ ID, User string }
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.ID == "" {
			if bad++; bad <= 3 {
				t.Errorf("list --json: line %q: want a session object (%v)", line, err)
			}
			return
		}
		ids[s.ID] = struct{}{}
		perUserSeen[s.User]++
	}, "sessions", "list", "--json")
	if len(ids) != n {
		t.Errorf("list --json: got %d distinct sessions, want %d", len(ids), n)
	}
	checkPerUser(t, "list --json", perUserSeen, users, perUser)

	var count []string
	runBinary(t, rs.URL(), func(l string) { count = append(count, l) }, "sessions", "count")
	if got, want := strings.Join(count, "\n"), strconv.Itoa(n); got != want {
		t.Errorf("count: got %q, want %q", got, want)
	}

	byUser := map[string]int{}
	runBinary(t, rs.URL(), func(l string) {
		name, num, _ := strings.Cut(l, " ")
		v, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil {
			t.Errorf("count --by-user: line %q: want NAME COUNT", l)
		}
		byUser[name] = v
	}, "sessions", "count", "--by-user")
	checkPerUser(t, "count --by-user", byUser, users, perUser)

	one := 0
	runBinary(t, rs.URL(), func(string) { one++ }, "sessions", "list", "--user", "user0042")
	if one != perUser+1 {
		t.Errorf("list --user user0042: got %d lines, want a header and %d sessions", one, perUser)
	}
}

func checkPerUser(t *testing.T, what string, got map[string]int, users, perUser int) {
	t.Helper()
	if len(got) != users {
		t.Errorf("%s: got %d users, want %d", what, len(got), users)
	}
	wrong := 0
	for name, c := range got {
		if c != perUser {
			if wrong++; wrong <= 3 {
				t.Errorf("%s: user %q has %d sessions, want %d", what, name, c, perUser)
			}
		}
	}
}
