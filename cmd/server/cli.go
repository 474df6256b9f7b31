package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/backend"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

const userUsage = "usage: server user add|passwd|delete|unlock NAME | user list | user mfa status NAME [--json] | user mfa reset NAME [--yes] (needs REDIS_URL; server user COMMAND --help explains one)"

// runUser runs the user management subcommands against the Redis at
// REDIS_URL. Every argument is checked before Redis is opened: --help, a
// missing name or a name that starts with '-' changes nothing.
func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) { //nolint:gosec // G602 false positive: len(args) == 1 is checked first
		return helpRequested{overview(userVerbs)}
	}
	if len(args) == 0 {
		return usageError{userUsage}
	}
	cmd, args := args[0], args[1:]
	if cmd == "mfa" {
		return runMFA(ctx, args, getenv, stdin, stdout)
	}
	wantArgs := map[string]int{"add": 1, "passwd": 1, "delete": 1, "unlock": 1, "list": 0}
	n, ok := wantArgs[cmd]
	if !ok {
		return usageError{userUsage}
	}
	verb := "user " + cmd
	if err := verbHelp(verb, args); err != nil {
		return err
	}
	args, err := nameArgs(verb, args)
	if err != nil {
		return err
	}
	if len(args) != n {
		return verbUsageError(verb, "")
	}
	if cmd == "add" {
		if err := newNameError(args[0]); err != nil {
			return err
		}
	}
	op, err := openOperator(getenv, "user")
	if err != nil {
		return err
	}
	defer op.close()
	svc := op.auth

	// What is confirmed is the name as stored (NFKC: "Ｅve" is "Eve"), not
	// as typed; a name the service refuses keeps its own error.
	shown := ""
	if len(args) > 0 {
		shown = args[0]
		if name, err := auth.NormalizeUsername(args[0]); err == nil {
			shown = name
		}
	}
	switch cmd {
	case "list":
		names, err := svc.ListUsers(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			if _, err := fmt.Fprintln(stdout, name); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
		return nil
	case "delete":
		ended, err := svc.DeleteUser(ctx, args[0])
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "deleted user %q, ended %d session(s)\n", shown, ended); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	case "unlock":
		if err := svc.Unlock(ctx, args[0]); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "unlocked %q: its failed logins are forgotten\n", shown); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}

	if cmd == "add" {
		// Before the password is asked for: a name that cannot be added
		// is said at once.
		if _, err := auth.CheckNewUsername(args[0]); err != nil {
			return usageError{fmt.Sprintf("cannot add user %q: %v", args[0], err)}
		}
	}
	password, err := readPassword(stdin, stdout, cmd == "add")
	if err != nil {
		return err
	}
	if cmd == "add" {
		if err := svc.AddUser(ctx, args[0], password); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "added user %q\n", shown); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	ended, err := svc.SetPassword(ctx, args[0], password)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "changed password of %q, ended %d session(s)\n", shown, ended); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// operator is what the user and sessions commands work on: the stores at
// REDIS_URL and the same session manager the server runs, so a command
// ends sessions exactly as the service would.
type operator struct {
	rdb      *store.Redis
	sessions *session.Manager
	auth     *auth.Service
	backend  *backend.Backend
	// eventsOn is EVENTS_STREAM: whether the service-wide stream is
	// written (and so can be tailed).
	eventsOn bool
}

// cliLifetime turns off the session manager's lifetime clamp in the
// commands: the server clamped each deadline when it wrote it, and a clamp
// here would apply the CLI's own idea of SESSION_LIFETIME (its default,
// 24h) to sessions a server with a longer one started, showing them ending
// too early. The commands never start a session.
const cliLifetime = 100 * 365 * 24 * time.Hour

// openOperator opens the Redis at REDIS_URL for the commands called what
// (for the error message). Every operation has its own 5s timeout, more
// than a page gets, as an operator would rather wait than retry; a walk
// over all sessions is bounded only by ctx (see session.Manager.Each).
func openOperator(getenv func(string) string, what string) (*operator, error) {
	redisURL := getenv("REDIS_URL")
	if redisURL == "" {
		return nil, usageError{fmt.Sprintf("invalid REDIS_URL \"\": %s commands need redis://host:port/db (the embedded Redis's address is printed when the server starts)", what)}
	}
	// The commands record events too (user add and delete, an operator's
	// revocations, unlock): to the service-wide stream as the server
	// would, so a SIEM following it sees what operators do.
	eventsOn, eventsMaxLen, err := parseEvents(envOr(getenv, "EVENTS_STREAM", "on"), envOr(getenv, "EVENTS_MAXLEN", strconv.Itoa(activity.DefaultServiceWide)))
	if err != nil {
		return nil, err
	}
	if !eventsOn {
		eventsMaxLen = 0
	}
	be, err := backend.Open(backend.Config{
		RedisURL: redisURL,
		Timeouts: store.Timeouts{Op: 5 * time.Second},
		Sessions: session.Config{Lifetime: cliLifetime},
		Activity: activity.Config{Replica: envOr(getenv, "INSTANCE_ID", "cli"), ServiceWide: eventsMaxLen},
	})
	if err != nil {
		return nil, badVar("REDIS_URL", "redis://[user:pass@]host:port/db or rediss://...", maskURL(redisURL))
	}
	return &operator{rdb: be.Redis, sessions: be.Sessions, auth: be.Auth, backend: be, eventsOn: eventsOn}, nil
}

func (o *operator) close() { _ = o.backend.Close() }

// envOr is getenv(name), or def when it is unset or empty.
func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// isHelp reports whether arg asks for the usage text.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// readPassword reads a password without echo from a terminal (asking twice
// for a new one), or as the first line of stdin otherwise, so scripts can
// pipe it in. It is never taken from the command line, where ps and shell
// history would show it.
func readPassword(stdin io.Reader, stdout io.Writer, confirm bool) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// The prompts are courtesy: if the terminal cannot show them, the
		// read below still succeeds or fails on its own.
		_, _ = fmt.Fprint(stdout, "Password: ")
		p, err := term.ReadPassword(int(f.Fd()))
		_, _ = fmt.Fprintln(stdout)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if confirm {
			_, _ = fmt.Fprint(stdout, "Again: ")
			again, err := term.ReadPassword(int(f.Fd()))
			_, _ = fmt.Fprintln(stdout)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			if string(again) != string(p) {
				return "", errors.New("passwords do not match")
			}
		}
		return string(p), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, auth.MaxPasswordBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

// runHealthcheck asks this host's /readyz, for container health checks in
// an image without a shell or curl.
func runHealthcheck(ctx context.Context, getenv func(string) string) error {
	addr := getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badVar("ADDR", "host:port or :port", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_ = resp.Body.Close() // the status is the answer; the body is not read
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
