package main

import (
	"strings"
	"testing"

	"loginsvc/internal/redistest"
)

// The look-alike: `server user add аdmin` with a Cyrillic а while
// admin exists is refused with a message naming admin, and creates nothing.
func TestUserAddRefusesALookAlikeName(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	const password = "a long enough password\n"
	mustUserCmd(t, rs.URL(), password, "add", "admin")
	out, err := userCmd(t, rs.URL(), password, "add", "\u0430dmin")
	if err == nil || !strings.Contains(err.Error(), `looks like the existing user "admin"`) {
		t.Fatalf("user add аdmin: got %v (output %q), want an error saying it looks like \"admin\"", err, out)
	}
	if got := mustUserCmd(t, rs.URL(), "", "list"); got != "admin\n" {
		t.Errorf("user list: got %q, want only admin", got)
	}
}
