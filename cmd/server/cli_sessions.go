package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

const sessionsUsage = "usage: server sessions list [--user NAME] [--json] | show ID [--json] | revoke ID | revoke --user NAME | count [--by-user] (needs REDIS_URL; server sessions COMMAND --help explains one)"

// runSessions runs the session subcommands against the Redis at REDIS_URL.
// Every argument is checked before Redis is opened, so a typo is a usage
// error (exit 2) whether or not Redis is up.
func runSessions(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{sessionsUsage}
	}
	if len(args) == 1 && isHelp(args[0]) {
		return helpRequested{overview(sessionsVerbs)}
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("server sessions "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var user *string
	var asJSON, byUser *bool
	wantIDs := 0
	switch cmd {
	case "list":
		user = fs.String("user", "", "only this user's sessions")
		asJSON = fs.Bool("json", false, "one JSON object per line")
	case "show":
		asJSON = fs.Bool("json", false, "one JSON object")
		wantIDs = 1
	case "revoke":
		user = fs.String("user", "", "every session of this user")
		wantIDs = 1
	case "count":
		byUser = fs.Bool("by-user", false, "one line per user")
	default:
		return usageError{sessionsUsage}
	}
	verb := "sessions " + cmd
	if err := verbHelp(verb, args); err != nil {
		return err
	}
	ids, err := parseFlags(fs, args, wantIDs > 0, usageLine(verb))
	if err != nil {
		return err
	}
	switch {
	case cmd == "revoke" && *user != "" && len(ids) == 0:
		// revoke --user NAME
	case len(ids) != wantIDs:
		return verbUsageError(verb, "")
	case cmd == "revoke" && *user != "":
		return verbUsageError(verb, "revoke takes an ID or --user NAME, not both")
	}

	op, err := openOperator(getenv, "sessions")
	if err != nil {
		return err
	}
	defer op.close()
	out := bufio.NewWriterSize(stdout, 64<<10)
	switch cmd {
	case "list":
		err = listSessions(ctx, op, *user, newSessionPrinter(out, *asJSON))
	case "show":
		err = showSession(ctx, op, ids[0], *asJSON, out)
	case "revoke":
		if *user != "" {
			err = revokeUserSessions(ctx, op, *user, out)
		} else {
			err = revokeSession(ctx, op, ids[0], out)
		}
	case "count":
		err = countSessions(ctx, op, *byUser, out)
	}
	// What was printed before a failure (say, half a listing when Redis
	// went away) is still shown.
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// parseFlags parses args with fs, allowing flags after the positional
// arguments too (`show ID --json`), and returns the positional ones. When
// takesID is set, an argument shaped like a session id is positional even
// if it starts with '-', since one id in 64 does. usage is the command's
// usage text, for help and mistakes.
func parseFlags(fs *flag.FlagSet, args []string, takesID bool, usage string) ([]string, error) {
	// A public id may start with "-" (one in 64 does): wherever it
	// stands, it is the id, never a flag.
	var positional, rest []string
	for _, a := range args {
		if takesID && looksLikeID(a) {
			positional = append(positional, a)
			continue
		}
		rest = append(rest, a)
	}
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpRequested{usage + "\n"}
			}
			return nil, usageError{fmt.Sprintf("invalid arguments: %v: %s", err, usage)}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional, rest = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
}

// looksLikeID reports whether s has the shape of a public session id (16
// base64url characters) and is not a flag of the same length.
func looksLikeID(s string) bool {
	if len(s) != 16 || s[0] != '-' || strings.HasPrefix(s, "--") {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// canonicalUser is name as the service stores it, or the one-line error
// for a name no user can have.
func canonicalUser(name string) (string, error) {
	canonical, err := auth.NormalizeUsername(name)
	if err != nil {
		return "", fmt.Errorf("user %q: %w", name, err)
	}
	return canonical, nil
}

// mustExist returns an error naming user when there is no such user, so a
// mistyped name is exit 1 rather than an empty answer. It is asked only
// when the answer is empty: sessions a deleted user left behind still show.
func mustExist(ctx context.Context, op *operator, user string) error {
	_, err := op.rdb.Users.Get(ctx, user)
	if errors.Is(err, store.ErrUserNotFound) {
		return fmt.Errorf("user %q: %w", user, err)
	}
	return err
}

// listSessions prints every session, streaming them from a SCAN walk with
// memory bounded by one batch, or one user's through the index.
func listSessions(ctx context.Context, op *operator, user string, p *sessionPrinter) error {
	if user == "" {
		return op.sessions.Each(ctx, p.print)
	}
	name, err := canonicalUser(user)
	if err != nil {
		return err
	}
	records, err := op.sessions.List(ctx, name)
	if err != nil {
		return err
	}
	if len(records) == 0 {
		return mustExist(ctx, op, name)
	}
	for _, r := range records {
		if err := p.print(r); err != nil {
			return err
		}
	}
	return nil
}

// findSession is Manager.Find with a one-line error for an unknown id.
func findSession(ctx context.Context, op *operator, id string) (session.Record, error) {
	r, err := op.sessions.Find(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		return r, fmt.Errorf("session %q: %w", id, err)
	}
	return r, err
}

// showSession prints every field of one session, one per line.
func showSession(ctx context.Context, op *operator, id string, asJSON bool, w io.Writer) error {
	r, err := findSession(ctx, op, id)
	if err != nil {
		return err
	}
	if asJSON {
		return newSessionPrinter(w, true).print(r)
	}
	now := time.Now()
	for _, f := range []struct{ name, value string }{
		{"id", r.ID},
		{"user", printable(r.User)},
		{"created", when(r.CreatedAt, now, "")},
		{"last seen", when(r.LastSeenAt, now, "")},
		{"expires", when(r.EndsAt, now, "absolute deadline: login + lifetime")},
		{"idle expires", when(r.ExpiresAt, now, "if unused: idle timeout or absolute deadline, whichever comes first")},
		{"ip", printable(r.IP)},
		{"kind", sessionKind(r)},
		{"amr", printable(amrText(r.AMR))},
		{"auth time", when(r.AuthTime, now, "last full sign-in: the login or a re-authentication")},
		{"user agent", printable(r.UserAgent)},
		{"device", printable(r.Device.String())},
	} {
		if _, err := fmt.Fprintf(w, "%-13s %s\n", f.name+":", f.value); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// revokeSession ends the session id, through its user's index like a
// user's own revoke on the sessions page.
func revokeSession(ctx context.Context, op *operator, id string, w io.Writer) error {
	r, err := findSession(ctx, op, id)
	if err != nil {
		return err
	}
	switch err := op.sessions.Revoke(activity.Because(ctx, activity.ByOperator), r.User, id); {
	case errors.Is(err, session.ErrNotFound):
		// Found by SCAN but not in its user's index: it ended in
		// between, or it predates the index.
		return fmt.Errorf("session %q of %q: not in the user's index, not revoked (it may have just ended; try again, or revoke --user %s)", id, r.User, r.User)
	case err != nil:
		return err
	}
	if _, err := fmt.Fprintf(w, "revoked session %s of %q\n", id, r.User); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// revokeUserSessions ends every session of user.
func revokeUserSessions(ctx context.Context, op *operator, user string, w io.Writer) error {
	name, err := canonicalUser(user)
	if err != nil {
		return err
	}
	n, err := op.sessions.RevokeAll(activity.Because(ctx, activity.ByOperator), name, "")
	if err != nil {
		return err
	}
	if n == 0 {
		if err := mustExist(ctx, op, name); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "ended %d session(s) of %q\n", n, name); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// countSessions prints how many sessions Redis holds (SCAN only, no
// reads), or how many each user has (reading every session, with memory
// bounded by the number of users), sorted by name.
func countSessions(ctx context.Context, op *operator, byUser bool, w io.Writer) error {
	if !byUser {
		n, err := op.sessions.Count(ctx)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, n); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	counts := map[string]int{}
	err := op.sessions.Each(ctx, func(r session.Record) error {
		counts[r.User]++
		return nil
	})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(counts))
	width := 0
	for name := range counts {
		names = append(names, name)
		width = max(width, len([]rune(name)))
	}
	slices.SortFunc(names, cmp.Compare)
	for _, name := range names {
		label := name
		if label == "" {
			label = "-" // a session without a user: never written by the service
		}
		if _, err := fmt.Fprintf(w, "%-*s  %d\n", width, printable(label), counts[name]); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// sessionPrinter writes sessions one line each: aligned text for people,
// or one JSON object per line for scripts. Text columns have fixed widths
// rather than widths measured over all rows, so a listing of any length
// streams; a longer value pushes the rest of its line right.
type sessionPrinter struct {
	w       io.Writer
	json    *json.Encoder
	started bool
}

func newSessionPrinter(w io.Writer, asJSON bool) *sessionPrinter {
	p := &sessionPrinter{w: w}
	if asJSON {
		p.json = json.NewEncoder(w)
		p.json.SetEscapeHTML(false)
	}
	return p
}

// sessionJSON is the --json form of a session. Times are RFC 3339 in UTC;
// a time the session does not record is null. The names mean what they
// mean in /api/whoami and in the Redis record: expires_at is the absolute
// deadline, idle_expires_at when the session ends if unused.
type sessionJSON struct {
	ID         string     `json:"id"`
	User       string     `json:"user"`
	CreatedAt  *time.Time `json:"created_at"`
	LastSeenAt *time.Time `json:"last_seen_at"`
	// ExpiresAt is the absolute deadline, login + SESSION_LIFETIME.
	ExpiresAt *time.Time `json:"expires_at"`
	// IdleExpiresAt is when the session ends if unused: the earlier of
	// the idle timeout and the absolute deadline.
	IdleExpiresAt *time.Time `json:"idle_expires_at"`
	IP            string     `json:"ip"`
	UserAgent     string     `json:"user_agent"`
	Device        string     `json:"device"`
	// Kind is "browser" (a cookie) or "api" (a bearer token from POST
	// /api/login).
	Kind string `json:"kind"`
	// AMR is how the user authenticated, RFC 8176 names in the order
	// proved: ["pwd"], ["pwd","otp"]. A session from before two-step
	// login reads as ["pwd"].
	AMR []string `json:"amr"`
	// AuthTime is the last full authentication (the login or a
	// re-authentication); login time for a session from before it.
	AuthTime *time.Time `json:"auth_time"`
}

// sessionKind names how a session is used: "browser" or "api".
func sessionKind(r session.Record) string {
	if r.API {
		return "api"
	}
	return "browser"
}

func jsonTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Text column widths: an id, a name up to 16 characters, three RFC 3339
// UTC times, an IPv4 address, the kind, the methods ("pwd+otp"); the
// device takes the rest of the line.
const textRow = "%-16s  %-16s  %-20s  %-20s  %-20s  %-15s  %-7s  %-7s  %s\n"

func (p *sessionPrinter) print(r session.Record) error {
	if p.json != nil {
		return p.json.Encode(sessionJSON{
			ID: r.ID, User: r.User,
			CreatedAt: jsonTime(r.CreatedAt), LastSeenAt: jsonTime(r.LastSeenAt),
			ExpiresAt: jsonTime(r.EndsAt), IdleExpiresAt: jsonTime(r.ExpiresAt),
			IP: r.IP, UserAgent: r.UserAgent, Device: r.Device.String(), Kind: sessionKind(r),
			AMR: r.AMR, AuthTime: jsonTime(r.AuthTime),
		})
	}
	if !p.started {
		p.started = true
		if _, err := fmt.Fprintf(p.w, textRow, "ID", "USER", "CREATED", "LAST SEEN", "IDLE EXPIRES", "IP", "KIND", "AMR", "DEVICE"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(p.w, textRow, r.ID, printable(r.User), stamp(r.CreatedAt), stamp(r.LastSeenAt), stamp(r.ExpiresAt), printable(r.IP), sessionKind(r), printable(amrText(r.AMR)), printable(r.Device.String()))
	return err
}

// amrText is a session's methods for a text column: "pwd+otp".
func amrText(amr []string) string {
	if len(amr) == 0 {
		return "-"
	}
	return strings.Join(amr, "+")
}

// stamp is a time for a text column: RFC 3339 in UTC to the second, the
// same width on every row.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// when is stamp with how long ago or how soon it is, and note, for show.
func when(t, now time.Time, note string) string {
	if t.IsZero() {
		return "-"
	}
	rel := ""
	if d := t.Sub(now).Round(time.Second); d < 0 {
		rel = (-d).String() + " ago"
	} else {
		rel = "in " + d.String()
	}
	if note != "" {
		rel += "; " + note
	}
	return stamp(t) + " (" + rel + ")"
}

// printable replaces anything a terminal would interpret (escape
// sequences, control characters) in stored text, such as a hostile user
// agent, before it is printed as text.
func printable(s string) string {
	if !strings.ContainsFunc(s, isUnprintable) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isUnprintable(r) {
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

func isUnprintable(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }
