// Command server is the login service: it serves the login pages, keeps
// sessions in Redis, and manages users from the command line.
//
//	server                      run the service (configured by environment or flags)
//	server user add NAME        create a user (password from stdin or a prompt)
//	server user passwd NAME     change a password and end the user's sessions
//	server user list            list users
//	server user delete NAME     delete a user and end the user's sessions
//	server healthcheck          exit 0 if this host's /readyz answers 200
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
	if len(args) > 0 {
		switch args[0] {
		case "user":
			return runUser(ctx, args[1:], getenv, stdin, stdout)
		case "healthcheck":
			if len(args) > 1 {
				return usageError{fmt.Sprintf("unexpected argument %q: usage: server healthcheck (checks http://127.0.0.1:<port of ADDR>/readyz)", args[1])}
			}
			return runHealthcheck(ctx, getenv)
		}
	}
	cfg, err := parseConfig(args, getenv)
	var help helpRequested
	if errors.As(err, &help) {
		_, _ = io.WriteString(stdout, help.usage)
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout)
}
