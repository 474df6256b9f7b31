package main

import (
	"errors"
	"strings"
	"testing"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
)

// Every command answers -h and --help with its own usage (arguments, what
// it changes, an example) on stdout and exit 0, wherever the flag stands,
// and changes nothing: `user add --help` once created a user "--help" and
// `user delete --help` deleted it. Redis is real here, so a command that
// ran anyway would show.
func TestEveryCommandAnswersHelp(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	mustUserCmd(t, redis.URL(), "a password of alice\n", "add", "alice")
	for _, tc := range []struct {
		args []string
		want string // how the usage starts
	}{
		{[]string{"user", "--help"}, "usage: server user add NAME"},
		{[]string{"user", "help"}, "usage: server user add NAME"},
		{[]string{"sessions", "-h"}, "usage: server sessions list"},
		{[]string{"user", "mfa", "--help"}, "usage: server user mfa status NAME"},
		{[]string{"user", "add", "--help"}, "usage: server user add NAME\n"},
		{[]string{"user", "add", "-h"}, "usage: server user add NAME\n"},
		{[]string{"user", "add", "bob", "--help"}, "usage: server user add NAME\n"},
		{[]string{"user", "passwd", "alice", "-h"}, "usage: server user passwd NAME\n"},
		{[]string{"user", "delete", "--help"}, "usage: server user delete NAME\n"},
		{[]string{"user", "delete", "alice", "-help"}, "usage: server user delete NAME\n"},
		{[]string{"user", "unlock", "-h"}, "usage: server user unlock NAME\n"},
		{[]string{"user", "list", "--help"}, "usage: server user list\n"},
		{[]string{"user", "mfa", "status", "-h"}, "usage: server user mfa status NAME [--json]\n"},
		{[]string{"user", "mfa", "reset", "alice", "--help"}, "usage: server user mfa reset NAME [--yes]\n"},
		{[]string{"sessions", "list", "--help"}, "usage: server sessions list [--user NAME] [--json]\n"},
		{[]string{"sessions", "show", "-h"}, "usage: server sessions show ID [--json]\n"},
		{[]string{"sessions", "revoke", "--user", "alice", "--help"}, "usage: server sessions revoke ID | revoke --user NAME\n"},
		{[]string{"sessions", "count", "-h"}, "usage: server sessions count [--by-user]\n"},
		{[]string{"events", "--help"}, "usage: server events tail"},
		{[]string{"events", "tail", "--help"}, "usage: server events tail [--user NAME] [--json] [--follow] [-n N]\n"},
		{[]string{"events", "tail", "--user", "alice", "-h"}, "usage: server events tail [--user NAME] [--json] [--follow] [-n N]\n"},
		{[]string{"healthcheck", "--help"}, "usage: server healthcheck\n"},
		{[]string{"healthcheck", "-h"}, "usage: server healthcheck\n"},
	} {
		name := strings.Join(tc.args, " ")
		out, err := cliCmd(t, redis.URL(), "a new password\n", tc.args...)
		if err != nil {
			t.Errorf("server %s: got error %v, want nil (exit 0)", name, err)
			continue
		}
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("server %s: got %q, want it to start with %q", name, out, tc.want)
		}
		// A verb's own help says what it changes and shows an example.
		if strings.HasSuffix(tc.want, "\n") && !strings.Contains(out, "\nexample:\n  ") {
			t.Errorf("server %s: got %q, want an example", name, out)
		}
	}
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "alice\n" {
		t.Errorf("user list after every --help: got %q, want alice alone (help must change nothing)", out)
	}
	checkPassword(t, authService(t, openRedis(t, redis.URL()), auth.Config{}), "alice", "a password of alice", true)
}

// A user name may not start with '-': on the command line it is a flag.
// `user add -x` is a usage error (exit 2) that creates nobody, also after
// "--"; a name made before this rule can still be named after "--".
func TestUserNamesMayNotStartWithADash(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	for _, args := range [][]string{{"add", "-x"}, {"add", "--", "-x"}, {"add", "-"}, {"passwd", "-x"}, {"delete", "-x"}, {"unlock", "--name"}} {
		out, err := userCmd(t, redis.URL(), "a new password\n", args...)
		checkUsageError(t, err, "may not start with '-'")
		if out != "" {
			t.Errorf("user %s: stdout got %q, want nothing", strings.Join(args, " "), out)
		}
	}
	if out := mustUserCmd(t, redis.URL(), "", "list"); out != "" {
		t.Errorf("user list: got %q, want nobody created", out)
	}

	// A user "-h" left by the old bug: deleted by name after "--".
	rdb := openRedis(t, redis.URL())
	if err := rdb.Users.Create(t.Context(), "-h", "hash"); err != nil {
		t.Fatalf("create user -h: %v", err)
	}
	if out := mustUserCmd(t, redis.URL(), "", "delete", "--", "-h"); !strings.Contains(out, `deleted user "-h"`) {
		t.Errorf("user delete -- -h: got %q, want it deleted", out)
	}
	if _, err := rdb.Users.Get(t.Context(), "-h"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("user -h after delete: got %v, want %v", err, store.ErrUserNotFound)
	}
}
