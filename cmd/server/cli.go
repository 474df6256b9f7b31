package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"loginsvc/internal/auth"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

const userUsage = "usage: server user add|passwd|delete NAME, or server user list (needs REDIS_URL)"

// runUser runs the user management subcommands against the Redis at
// REDIS_URL.
func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{userUsage}
	}
	cmd, args := args[0], args[1:]
	wantArgs := map[string]int{"add": 1, "passwd": 1, "delete": 1, "list": 0}
	n, ok := wantArgs[cmd]
	if !ok || len(args) != n {
		return usageError{userUsage}
	}
	redisURL := getenv("REDIS_URL")
	if redisURL == "" {
		return usageError{"invalid REDIS_URL \"\": user commands need redis://host:port/db (the embedded Redis's address is printed when the server starts)"}
	}
	rdb, err := store.Open(redisURL, store.Timeouts{Op: 5 * time.Second})
	if err != nil {
		return badVar("REDIS_URL", "redis://[user:pass@]host:port/db or rediss://...", maskURL(redisURL))
	}
	defer rdb.Close()
	sessions := session.New(rdb.Sessions, session.Config{}, slog.New(slog.DiscardHandler))
	svc, err := auth.NewService(rdb, sessions, auth.Config{})
	if err != nil {
		return err
	}

	switch cmd {
	case "list":
		names, err := svc.ListUsers(ctx)
		if err != nil {
			return err
		}
		for _, name := range names {
			fmt.Fprintln(stdout, name)
		}
		return nil
	case "delete":
		ended, err := svc.DeleteUser(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %q, ended %d session(s)\n", args[0], ended)
		return nil
	}

	password, err := readPassword(stdin, stdout, cmd == "add")
	if err != nil {
		return err
	}
	if cmd == "add" {
		if err := svc.AddUser(ctx, args[0], password); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added user %q\n", args[0])
		return nil
	}
	ended, err := svc.SetPassword(ctx, args[0], password)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "changed password of %q, ended %d session(s)\n", args[0], ended)
	return nil
}

// readPassword reads a password without echo from a terminal (asking twice
// for a new one), or as the first line of stdin otherwise, so scripts can
// pipe it in. It is never taken from the command line, where ps and shell
// history would show it.
func readPassword(stdin io.Reader, stdout io.Writer, confirm bool) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if confirm {
			fmt.Fprint(stdout, "Again: ")
			again, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(stdout)
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
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
