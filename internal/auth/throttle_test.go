package auth

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

// An operator's answer to a locked-out account is a new password: it must
// let the owner in at once instead of after the window.
func TestNewPasswordLiftsTheAccountLockout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.addUser(t, "dora", "old password 1")
	ip := netip.MustParseAddr("192.0.2.10")

	for i := range f.svc.limits.PerUser {
		if _, err := f.svc.CheckPassword(ctx, "dora", "wrong guess", ip); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: got %v, want ErrInvalidCredentials", i+1, err)
		}
	}
	var throttled *ThrottledError
	if _, err := f.svc.CheckPassword(ctx, "dora", "old password 1", ip); !errors.As(err, &throttled) || throttled.Limit != "user" {
		t.Fatalf("right password past the limit: got %v, want a ThrottledError on the user limit", err)
	}

	if _, err := f.svc.SetPassword(ctx, "dora", "new password 2"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if who, err := f.svc.CheckPassword(ctx, "dora", "new password 2", ip); err != nil || who.Name != "dora" {
		t.Fatalf("login with the new password: got (%q, %v), want (\"dora\", nil)", who.Name, err)
	}
}

func TestPerAddressLimitCountsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.10", "192.0.2.10"},
		{"::ffff:192.0.2.10", "192.0.2.10"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	} {
		if got := addressBlock(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("addressBlock(%s): got %s, want %s", tc.ip, got, tc.want)
		}
	}
}
