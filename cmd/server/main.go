// Command server is the login service: it serves the login pages, keeps
// sessions in Redis, and lets an operator manage users and sessions from
// the command line (against the same REDIS_URL), and follow the security
// events.
//
//	server                         run the service (configured by environment or flags)
//	server user add NAME           create a user (password from stdin or a prompt)
//	server user passwd NAME        change a password and end the user's sessions
//	server user list               list users
//	server user delete NAME        delete a user and end the user's sessions
//	server user unlock NAME        forget the account's failed logins (lift a lockout)
//	server user mfa status NAME [--json]
//	                               the user's second factors, when added, recovery codes left
//	server user mfa reset NAME [--yes]
//	                               remove every second factor and recovery code, end the user's
//	                               sessions (asks on a terminal; needs --yes otherwise)
//	server sessions list [--user NAME] [--json]
//	                               one line per session, with its amr (all: streamed with SCAN; one user's: the index)
//	server sessions show ID        every field of one session, with how the user authenticated (amr)
//	server sessions revoke ID      end one session
//	server sessions revoke --user NAME
//	                               end every session of a user, print how many
//	server sessions count [--by-user]
//	                               how many sessions (per user, sorted by name)
//	server events tail [--user NAME] [--json] [--follow] [-n N]
//	                               the last N (20) security events, oldest first: service-wide, or
//	                               one user's own; --follow then prints new ones (XREAD BLOCK)
//	server healthcheck             exit 0 if this host's /readyz answers 200
//
// Every command answers -h/--help with its arguments, what it changes and
// an example (cli_usage.go).
//
// Unknown users and session ids exit 1 with one line on stderr; usage
// mistakes exit 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"loginsvc/internal/activity"
	"loginsvc/internal/store"
)

func main() {
	// go-redis prints its own pool errors to stderr; the store already
	// reports every failure it meets through the service's log, once.
	store.DiscardClientLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program; it returns instead of exiting so tests can run
// it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	var err error
	if cmd := command(args); cmd != nil {
		// Events the commands record say they came from the command line.
		err = cmd(activity.WithActor(ctx, activity.Actor{Via: "cli"}), args[1:], getenv, stdin, stdout)
	} else {
		var cfg config
		if cfg, err = parseConfig(args, getenv); err == nil {
			cfg.GC = gcDefaults(getenv, readCgroupMemoryMax())
			return serve(ctx, cfg, stdout)
		}
	}
	// -h/--help is an answer, not an error, for every command.
	var help helpRequested
	if errors.As(err, &help) {
		_, _ = io.WriteString(stdout, help.usage)
		return nil
	}
	return err
}

// command is the subcommand args name (user, sessions, events, healthcheck), nil
// when they are flags for the server.
func command(args []string) func(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return nil
	}
	switch args[0] {
	case "user":
		return runUser
	case "sessions":
		return func(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, stdout io.Writer) error {
			return runSessions(ctx, args, getenv, stdout)
		}
	case "events":
		return func(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, stdout io.Writer) error {
			return runEvents(ctx, args, getenv, stdout)
		}
	case "healthcheck":
		return func(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, _ io.Writer) error {
			if err := verbHelp("healthcheck", args); err != nil {
				return err
			}
			if len(args) > 0 {
				return verbUsageError("healthcheck", fmt.Sprintf("unexpected argument %q", args[0]))
			}
			return runHealthcheck(ctx, getenv)
		}
	}
	return nil
}
