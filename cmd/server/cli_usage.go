package main

import (
	"fmt"
	"strings"
)

// verbUsage is each command's --help: its arguments, what it changes, an
// example. The first line is also the one-line reminder of a usage error.
var verbUsage = map[string]string{ //nolint:gosec // G101: usage text of "user passwd", no credential
	"user add": `usage: server user add NAME
Creates the user NAME. The password is read without echo from a terminal
(asked twice), or as the first line of stdin for scripts; never from the
command line, where ps and shell history would show it. NAME may not start
with '-'; it is stored NFKC-normalised ("Ｅve" is "Eve"), and a name that
looks like an existing one is refused. Exit 1 if the user exists.
example:
  printf '%s\n' "$PASSWORD" | REDIS_URL=redis://127.0.0.1:6379/0 server user add alice
`,
	"user passwd": `usage: server user passwd NAME
Sets a new password for NAME (read as for user add) and ends every session
of NAME, so whoever knew the old password is signed out. Exit 1 if there is
no such user.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user passwd alice
`,
	"user delete": `usage: server user delete NAME
Deletes the user NAME with its second factors and passkeys, and ends every
session of NAME. Cannot be undone. Exit 1 if there is no such user. A name
that starts with '-' (made before such names were refused) is given after
--: server user delete -- -h
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user delete alice
`,
	"user unlock": `usage: server user unlock NAME
Forgets the account's failed logins, lifting a lockout at once instead of
when LOGIN_WINDOW has passed. The password and sessions are not changed.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user unlock alice
`,
	"user list": `usage: server user list
Prints every user name, one a line. Changes nothing.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user list
`,
	"user mfa status": `usage: server user mfa status NAME [--json]
Prints NAME's second factors: the authenticator app and when it was added,
each passkey (name, added, last used, synced), recovery codes left. Shows
no secret and changes nothing. --json: one JSON object.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user mfa status alice --json
`,
	"user mfa reset": `usage: server user mfa reset NAME [--yes]
Removes every second factor of NAME (authenticator app, passkeys, recovery
codes) and ends NAME's sessions: for a user who lost the phone. The
password is kept. Asks on a terminal; --yes resets without asking, and is
required when stdin is not a terminal. Cannot be undone.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server user mfa reset alice --yes
`,
	"sessions list": `usage: server sessions list [--user NAME] [--json]
Prints one line per session: id, user, created, last seen, idle expiry (IDLE EXPIRES),
address, kind, amr, device. All sessions are streamed with SCAN; --user
lists one user's from its index. --json: one JSON object a line. Changes
nothing.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server sessions list --user alice --json
`,
	"sessions show": `usage: server sessions show ID [--json]
Prints every field of the session ID (the public id of sessions list and
the sessions page), with how the user authenticated. Changes nothing. An
ID may start with '-'.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server sessions show Z7Ea6vMq9EIi7V8x
`,
	"sessions revoke": `usage: server sessions revoke ID | revoke --user NAME
Ends the session ID at once, on every replica; with --user, ends every
session of NAME and prints how many.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server sessions revoke --user alice
`,
	"sessions count": `usage: server sessions count [--by-user]
Prints how many sessions Redis holds; --by-user, how many each user has,
sorted by name. Changes nothing.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server sessions count --by-user
`,
	"events tail": `usage: server events tail [--user NAME] [--json] [--follow] [-n N]
Prints the last N (default 20) security events, oldest first, one a line:
time, kind, user, session, address, replica, then the device and the
details (method, amr, by, count, left, new_device, via). They come from the
service-wide stream "events", or with --user from NAME's own stream
user:{NAME}:events. --json: one JSON object a line (id, time, user, kind,
session, device, ip, replica and the details). --follow: then waits for
new service-wide events (of NAME only, with --user) and prints each as it
comes, until interrupted. Changes nothing. Exit 1 if there is no such user.
example:
  REDIS_URL=redis://127.0.0.1:6379/0 server events tail --user alice --json --follow
`,
	"healthcheck": `usage: server healthcheck
Exits 0 if http://127.0.0.1:<port of ADDR>/readyz answers 200 within 2s,
else 1: the container health check of an image without a shell or curl.
Changes nothing.
example:
  ADDR=:8080 server healthcheck
`,
}

// verbHelp returns the usage of verb ("user add") when args, the verb's
// own arguments, ask for it with -h, -help or --help anywhere before a
// "--". A bare "help" is not asked here: it is a name a user may have.
func verbHelp(verb string, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return helpRequested{verbUsage[verb]}
		}
	}
	return nil
}

// usageLine is the first line of verb's usage: "usage: server user add NAME".
func usageLine(verb string) string {
	line, _, _ := strings.Cut(verbUsage[verb], "\n")
	return line
}

// verbUsageError is a usage mistake in verb: what was wrong, then the
// verb's usage line.
func verbUsageError(verb, what string) error {
	line := usageLine(verb)
	if what == "" {
		return usageError{line}
	}
	return usageError{what + ": " + line}
}

// nameArgs takes the NAME arguments of a user verb: a "--" ends the flags
// (so a name made before names starting with '-' were refused can still
// be named), and anything else starting with '-' is an unknown flag, never
// a name: `user add -x` once created a user called "-x".
func nameArgs(verb string, args []string) ([]string, error) {
	var names []string
	for i, a := range args {
		if a == "--" {
			return append(names, args[i+1:]...), nil
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			return nil, verbUsageError(verb, fmt.Sprintf("unknown flag %q (a user name may not start with '-')", a))
		}
		names = append(names, a)
	}
	return names, nil
}

// newNameError refuses a new user name that starts with '-': on a command
// line it reads as a flag, so such a user could never be named there
// without "--".
func newNameError(name string) error {
	if strings.HasPrefix(name, "-") {
		return verbUsageError("user add", fmt.Sprintf("invalid name %q: a user name may not start with '-'", name))
	}
	return nil
}

// userVerbs are the user commands in the order the overview lists them.
var userVerbs = []string{"user add", "user passwd", "user delete", "user unlock", "user list", "user mfa status", "user mfa reset"}

// sessionsVerbs likewise.
var sessionsVerbs = []string{"sessions list", "sessions show", "sessions revoke", "sessions count"}

// overview is the usage lines of verbs, for `server user --help`.
func overview(verbs []string) string {
	var b strings.Builder
	for i, v := range verbs {
		line := usageLine(v)
		if i > 0 {
			line = "      " + strings.TrimPrefix(line, "usage:")
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("Every command needs REDIS_URL; `server " + strings.Fields(verbs[0])[0] + " COMMAND --help` explains one.\n")
	return b.String()
}
