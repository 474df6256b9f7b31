package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// runMFA runs `server user mfa status|reset NAME`: what an operator needs
// when a user has lost the phone with the authenticator app. Every
// argument, and whether a reset can be confirmed, is checked before Redis
// is opened, so a mistake is a usage error (exit 2) that changes nothing.
func runMFA(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{userUsage}
	}
	if len(args) == 1 && isHelp(args[0]) {
		return helpRequested{overview(userVerbs[len(userVerbs)-2:])}
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("server user mfa "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var asJSON, yes *bool
	switch cmd {
	case "status":
		asJSON = fs.Bool("json", false, "one JSON object")
	case "reset":
		yes = fs.Bool("yes", false, "reset without asking; required when stdin is not a terminal")
	default:
		return usageError{userUsage}
	}
	verb := "user mfa " + cmd
	if err := verbHelp(verb, args); err != nil {
		return err
	}
	names, err := parseFlags(fs, args, false, usageLine(verb))
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return verbUsageError(verb, "")
	}
	// A reset cannot be undone: a script (stdin not a terminal) must say
	// --yes, so a stray line in a pipe never resets anyone.
	ask := cmd == "reset" && !*yes
	if ask && !isTerminal(stdin) {
		return usageError{"user mfa reset: stdin is not a terminal to confirm on; add --yes to reset without asking"}
	}

	op, err := openOperator(getenv, "user")
	if err != nil {
		return err
	}
	defer op.close()
	name, err := canonicalUser(names[0])
	if err != nil {
		return err
	}
	if err := mustExist(ctx, op, name); err != nil {
		return err
	}
	if cmd == "status" {
		return mfaStatus(ctx, op, name, *asJSON, stdout)
	}
	return mfaReset(ctx, op, name, ask, stdin, stdout)
}

// isTerminal reports whether r is a terminal someone can answer on.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// mfaStatusJSON is the --json form of `user mfa status`. Times are RFC
// 3339 in UTC; a factor the user does not have has a null added_at.
type mfaStatusJSON struct {
	User          string           `json:"user"`
	TOTP          mfaTOTPJSON      `json:"totp"`
	RecoveryCodes mfaRecoveryJSON  `json:"recovery_codes"`
	Passkeys      []mfaPasskeyJSON `json:"passkeys"`
}

// mfaTOTPJSON is the authenticator app: enabled since added_at.
type mfaTOTPJSON struct {
	Enabled bool       `json:"enabled"`
	AddedAt *time.Time `json:"added_at"`
}

// mfaPasskeyJSON is one passkey: its credential id, name, model, when
// added and last used (null: never).
type mfaPasskeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Synced     bool       `json:"synced"`
	AAGUID     string     `json:"aaguid"`
	AddedAt    time.Time  `json:"added_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// mfaRecoveryJSON is the recovery codes: left unused of the set issued
// at added_at; 0 and null without a set.
type mfaRecoveryJSON struct {
	Left    int        `json:"left"`
	AddedAt *time.Time `json:"added_at"`
}

// mfaStatus prints which second factors user has, when each was added,
// and how many recovery codes are left. It shows no secret: the store
// keeps none in clear, and nothing here opens them.
func mfaStatus(ctx context.Context, op *operator, user string, asJSON bool, w io.Writer) error {
	f, err := op.auth.FactorsOf(ctx, user)
	if err != nil {
		return err
	}
	if asJSON {
		out := mfaStatusJSON{
			User:          user,
			TOTP:          mfaTOTPJSON{Enabled: f.TOTP},
			RecoveryCodes: mfaRecoveryJSON{Left: f.RecoveryLeft},
			Passkeys:      []mfaPasskeyJSON{},
		}
		for _, p := range f.Passkeys {
			pj := mfaPasskeyJSON{ID: p.ID, Name: p.Name, Synced: p.Synced, AAGUID: p.AAGUID, AddedAt: p.CreatedAt.UTC()}
			if !p.LastUsedAt.IsZero() {
				pj.LastUsedAt = jsonTime(p.LastUsedAt)
			}
			out.Passkeys = append(out.Passkeys, pj)
		}
		if f.TOTP {
			out.TOTP.AddedAt = jsonTime(f.TOTPAddedAt)
		}
		if f.Recovery {
			out.RecoveryCodes.AddedAt = jsonTime(f.RecoveryAddedAt)
		}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	now := time.Now()
	app, codes := "off", "none"
	if f.TOTP {
		app = "on, added " + when(f.TOTPAddedAt, now, "")
	}
	if f.Recovery {
		codes = fmt.Sprintf("%d left, issued %s", f.RecoveryLeft, when(f.RecoveryAddedAt, now, ""))
		if f.RecoveryLow() {
			codes += "; few left"
		}
	}
	keys := "none"
	if n := len(f.Passkeys); n > 0 {
		keys = fmt.Sprintf("%d", n)
	}
	lines := []struct{ name, value string }{
		{"user", printable(user)},
		{"authenticator app", app},
		{"passkeys", keys},
	}
	for _, p := range f.Passkeys {
		used := "never used"
		if !p.LastUsedAt.IsZero() {
			used = "last used " + when(p.LastUsedAt, now, "")
		}
		lines = append(lines, struct{ name, value string }{"  " + p.ID[:min(len(p.ID), 12)], fmt.Sprintf("%s, added %s, %s", printable(p.Name), when(p.CreatedAt, now, ""), used)})
	}
	lines = append(lines, struct{ name, value string }{"recovery codes", codes})
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%-18s %s\n", l.name+":", l.value); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// mfaReset removes every second factor and recovery code of user and
// ends the user's sessions, after asking on the terminal when ask is set.
func mfaReset(ctx context.Context, op *operator, user string, ask bool, stdin io.Reader, stdout io.Writer) error {
	if ask {
		sessions, err := op.sessions.List(ctx, user)
		if err != nil {
			return err
		}
		ok, err := confirm(stdin, stdout, fmt.Sprintf("Reset two-step verification of %q and end %d session(s)?", user, len(sessions)))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("two-step verification of %q not reset: the answer was not yes", user)
		}
	}
	ended, err := op.auth.ResetFactors(ctx, user)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "reset two-step verification of %q, ended %d session(s)\n", user, ended); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// confirm asks question and reports whether the answer was y or yes (any
// case); anything else, an empty line or end of input, is no.
func confirm(stdin io.Reader, stdout io.Writer, question string) (bool, error) {
	// The prompt is courtesy, as readPassword's is: the read below
	// decides.
	_, _ = fmt.Fprint(stdout, question+" [y/N] ")
	line, err := bufio.NewReader(io.LimitReader(stdin, 64)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
