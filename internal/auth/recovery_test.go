package auth

import (
	"encoding/base64"
	"errors"
	"regexp"
	"testing"
)

func TestNewRecoveryCodes(t *testing.T) {
	t.Parallel()
	codes, set, err := NewRecoveryCodes()
	if err != nil {
		t.Fatalf("NewRecoveryCodes: %v", err)
	}
	if len(codes) != RecoveryCodeCount || len(set.Hashes) != RecoveryCodeCount {
		t.Fatalf("got %d codes and %d hashes, want %d of each", len(codes), len(set.Hashes), RecoveryCodeCount)
	}
	if salt, err := base64.StdEncoding.DecodeString(set.Salt); err != nil || len(salt) != 16 {
		t.Errorf("salt %q: got %d bytes, %v; want 16 in base64", set.Salt, len(salt), err)
	}
	shape := regexp.MustCompile(`^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$`)
	seen := map[string]bool{}
	for i, code := range codes {
		if !shape.MatchString(code) {
			t.Errorf("code %q: want xxxxx-xxxxx from %q", code, recoveryAlphabet)
		}
		if seen[code] || seen[set.Hashes[i]] {
			t.Errorf("code %q or its hash repeats", code)
		}
		seen[code], seen[set.Hashes[i]] = true, true
		if key, err := base64.StdEncoding.DecodeString(set.Hashes[i]); err != nil || len(key) != 32 {
			t.Errorf("hash %q: got %d bytes, %v; want a 32-byte key in base64", set.Hashes[i], len(key), err)
		}
	}
	// Each code hashes to its own stored hash, typed as shown or not.
	for i, typed := range []string{codes[0], "  " + codes[1][:3] + " " + codes[1][3:] + " ", upper(codes[2])} {
		h, err := RecoveryHash(set.Salt, typed)
		if err != nil || h != set.Hashes[i] || !set.Contains(h) {
			t.Errorf("RecoveryHash(%q): got %q, %v (contained: %v); want stored hash %q", typed, h, err, set.Contains(h), set.Hashes[i])
		}
	}
	// Another user's salt gives another hash for the same code.
	_, other, err := NewRecoveryCodes()
	if err != nil {
		t.Fatalf("NewRecoveryCodes: %v", err)
	}
	if h, _ := RecoveryHash(other.Salt, codes[0]); h == set.Hashes[0] || set.Contains(h) {
		t.Errorf("the same code under another salt hashes alike")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestRecoveryHashNormalisesAndRefusesMalformed(t *testing.T) {
	t.Parallel()
	salt := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	want, err := RecoveryHash(salt, "abcdefghjk")
	if err != nil {
		t.Fatalf("RecoveryHash: %v", err)
	}
	tests := []struct {
		name    string
		code    string
		wantErr error
	}{
		{"as shown", "abcde-fghjk", nil},
		{"upper case", "ABCDE-FGHJK", nil},
		{"no dash", "ABCDEFGHJK", nil},
		{"spaces", " abcde fghjk ", nil},
		{"too short", "abcde-fghj", ErrRecoveryCodeMalformed},
		{"too long", "abcde-fghjkm", ErrRecoveryCodeMalformed},
		{"letter o", "abcde-fghjo", ErrRecoveryCodeMalformed},
		{"digit 1", "abcde-fghj1", ErrRecoveryCodeMalformed},
		{"letter i", "abcde-fghji", ErrRecoveryCodeMalformed},
		{"Kelvin sign", "abcde-fghj\u212a", ErrRecoveryCodeMalformed},
		{"empty", "", ErrRecoveryCodeMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RecoveryHash(salt, tc.code)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("RecoveryHash(%q): got %q, %v; want %v", tc.code, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("RecoveryHash(%q): got %q, %v; want %q (the hash of abcdefghjk)", tc.code, got, err, want)
			}
		})
	}
	if _, err := RecoveryHash("not base64!", "abcdefghjk"); err == nil {
		t.Errorf("RecoveryHash with a broken salt: got nil, want an error")
	}
}
