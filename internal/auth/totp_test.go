package auth

import (
	"bytes"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rfcSecret is RFC 6238's SHA-1 test key "12345678901234567890" in base32.
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// The codes are RFC 6238's (Appendix B, SHA-1), cut to six digits as
// RFC 4226 truncates: an authenticator app shows these.
func TestTOTPCodeIsRFC6238s(t *testing.T) {
	t.Parallel()
	tests := []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1234567890, "005924"},
		{2000000000, "279037"},
	}
	for _, tc := range tests {
		got, err := TOTPCode(rfcSecret, time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("TOTPCode at %d: got %q, %v; want %q", tc.unix, got, err, tc.want)
		}
	}
}

func TestMatchTOTP(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC) // mid-step
	step := TOTPStep(now)
	codeAt := func(delta int64) string {
		t.Helper()
		c, err := TOTPCode(rfcSecret, time.Unix((step+delta)*30, 0))
		if err != nil {
			t.Fatalf("TOTPCode: %v", err)
		}
		return c
	}
	cur := codeAt(0)
	tests := []struct {
		name     string
		secret   string
		code     string
		wantStep int64
		wantOK   bool
	}{
		{"current step", rfcSecret, cur, step, true},
		{"previous step", rfcSecret, codeAt(-1), step - 1, true},
		{"next step", rfcSecret, codeAt(1), step + 1, true},
		{"two steps back", rfcSecret, codeAt(-2), 0, false},
		{"two steps ahead", rfcSecret, codeAt(2), 0, false},
		{"with a space", rfcSecret, cur[:3] + " " + cur[3:], step, true},
		{"with a dash", rfcSecret, cur[:3] + "-" + cur[3:], step, true},
		{"pasted with spaces around", rfcSecret, " " + cur + " ", step, true},
		{"lower-case secret", strings.ToLower(rfcSecret), cur, step, true},
		{"five digits", rfcSecret, cur[:5], 0, false},
		{"seven digits", rfcSecret, cur + "0", 0, false},
		{"a letter", rfcSecret, cur[:5] + "a", 0, false},
		{"a plus sign", rfcSecret, "+" + cur[1:], 0, false},
		{"full-width digits", rfcSecret, "１２３４５６", 0, false},
		{"empty", rfcSecret, "", 0, false},
		{"wrong code", rfcSecret, wrongCode(cur, codeAt(-1), codeAt(1)), 0, false},
		{"malformed secret", "not base32!", cur, 0, false},
		{"empty secret", "", cur, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MatchTOTP(tc.secret, tc.code, now)
			if got != tc.wantStep || ok != tc.wantOK {
				t.Fatalf("MatchTOTP(%q): got %d, %v; want %d, %v", tc.code, got, ok, tc.wantStep, tc.wantOK)
			}
		})
	}
}

// wrongCode is a six-digit code none of valid.
func wrongCode(valid ...string) string {
	for _, c := range []string{"000000", "111111", "222222"} {
		if !strings.Contains(strings.Join(valid, ","), c) {
			return c
		}
	}
	panic("unreachable")
}

// The URI rebuilt from a stored secret is the one handed out at
// enrolment, and the QR code carries it.
func TestTOTPSecretURIAndQRCode(t *testing.T) {
	t.Parallel()
	k, err := NewTOTPSecret("Login Service", "alice@example")
	if err != nil {
		t.Fatalf("NewTOTPSecret: %v", err)
	}
	if len(k.Secret) != 32 || strings.ContainsAny(k.Secret, "= ") {
		t.Errorf("secret %q: want 32 base32 characters (160 bits), no padding", k.Secret)
	}
	other, err := NewTOTPSecret("Login Service", "alice@example")
	if err != nil || other.Secret == k.Secret {
		t.Errorf("two secrets: got %q twice, %v", k.Secret, err)
	}
	if got := TOTPURI("Login Service", "alice@example", k.Secret); got != k.URI {
		t.Errorf("TOTPURI:\n got %s\nwant %s", got, k.URI)
	}
	u, err := url.Parse(k.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != k.Secret ||
		u.Query().Get("issuer") != "Login Service" || strings.Contains(u.RawQuery, "+") {
		t.Errorf("URI %s (%v): want otpauth://totp/ with the secret and issuer, spaces as %%20", k.URI, err)
	}
	if _, err := NewTOTPSecret("", "alice"); err == nil {
		t.Errorf("NewTOTPSecret without an issuer: got nil, want an error")
	}

	img, err := TOTPQRPNG(k.URI, 200)
	if err != nil {
		t.Fatalf("TOTPQRPNG: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width != 200 || cfg.Height != 200 {
		t.Errorf("QR code: got %dx%d PNG, %v; want 200x200", cfg.Width, cfg.Height, err)
	}
	if _, err := TOTPQRPNG("https://example.com/", 200); err == nil {
		t.Errorf("TOTPQRPNG of a non-otpauth URI: got nil, want an error")
	}
	if _, err := TOTPQRPNG(k.URI, 0); err == nil {
		t.Errorf("TOTPQRPNG of size 0: got nil, want an error")
	}
}

func TestGroupSecret(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"ABC", "ABC"},
		{"ABCD", "ABCD"},
		{"ABCDEFGHIJ", "ABCD EFGH IJ"},
		{rfcSecret, "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"},
	}
	for _, tc := range tests {
		if got := GroupSecret(tc.in); got != tc.want {
			t.Errorf("GroupSecret(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}
