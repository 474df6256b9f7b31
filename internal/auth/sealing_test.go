package auth

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// sealKeyOf is a raw operator key of MinDeviceKeyBytes bytes made of c.
func sealKeyOf(c byte) []byte { return bytes.Repeat([]byte{c}, MinDeviceKeyBytes) }

func newTestSealer(t *testing.T, keys ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(keys)
	if err != nil {
		t.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestSealedSecretOpensOnlyForItsUserAndPurpose(t *testing.T) {
	t.Parallel()
	s := newTestSealer(t, sealKeyOf('n'))
	secret := []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	sealed, err := s.Seal(secret, "alice", SealPurposeTOTP)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if !strings.HasPrefix(sealed, "v1.") || strings.Count(sealed, ".") != 2 || len(strings.Split(sealed, ".")[1]) != 8 {
		t.Errorf("sealed text %q: want v1.KEYID(8).DATA", sealed)
	}
	if strings.Contains(sealed, string(secret)) || strings.Contains(sealed, "JBSWY3DP") {
		t.Errorf("sealed text %q holds the plaintext", sealed)
	}
	again, err := s.Seal(secret, "alice", SealPurposeTOTP)
	if err != nil || again == sealed {
		t.Errorf("sealing twice: got %q, %v; want a different text (fresh nonce)", again, err)
	}

	tests := []struct {
		name          string
		sealed        string
		user, purpose string
		wantOK        bool
	}{
		{"round trip", sealed, "alice", SealPurposeTOTP, true},
		{"other user", sealed, "bob", SealPurposeTOTP, false},
		{"user that extends the name", sealed, "alice2", SealPurposeTOTP, false},
		{"other purpose", sealed, "alice", "recovery", false},
		{"tampered byte", tamper(sealed, len(sealed)-5), "alice", SealPurposeTOTP, false},
		{"tampered nonce", tamper(sealed, len("v1.12345678.")+1), "alice", SealPurposeTOTP, false},
		{"truncated", sealed[:len(sealed)-4], "alice", SealPurposeTOTP, false},
		{"unknown key id", "v1.AAAAAAAA." + strings.Split(sealed, ".")[2], "alice", SealPurposeTOTP, false},
		{"other version", "v2" + sealed[2:], "alice", SealPurposeTOTP, false},
		{"not base64", "v1." + strings.Split(sealed, ".")[1] + ".!!!!", "alice", SealPurposeTOTP, false},
		{"empty", "", "alice", SealPurposeTOTP, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, stale, err := s.Open(tc.sealed, tc.user, tc.purpose)
			if tc.wantOK {
				if err != nil || stale || !bytes.Equal(got, secret) {
					t.Fatalf("Open: got %q, stale %v, %v; want %q, fresh", got, stale, err, secret)
				}
				return
			}
			if !errors.Is(err, ErrSealedUnreadable) || got != nil {
				t.Fatalf("Open: got %q, %v; want ErrSealedUnreadable", got, err)
			}
		})
	}
}

// tamper flips one bit of the base64url character at i, keeping it a
// base64url character.
func tamper(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// After a rotation (DEVICE_COOKIE_KEY=NEW,OLD) what OLD sealed still
// opens, and says it is stale so the caller seals it again; once OLD is
// dropped it no longer opens.
func TestSealerKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := sealKeyOf('o'), sealKeyOf('n')
	sealed, err := newTestSealer(t, oldKey).Seal([]byte("secret"), "alice", SealPurposeTOTP)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	rotated := newTestSealer(t, newKey, oldKey)
	got, stale, err := rotated.Open(sealed, "alice", SealPurposeTOTP)
	if err != nil || !stale || string(got) != "secret" {
		t.Fatalf("Open with [NEW,OLD]: got %q, stale %v, %v; want \"secret\", stale", got, stale, err)
	}
	resealed, err := rotated.Seal(got, "alice", SealPurposeTOTP)
	if err != nil {
		t.Fatalf("Seal with [NEW,OLD]: %v", err)
	}
	if _, stale, err := newTestSealer(t, newKey).Open(resealed, "alice", SealPurposeTOTP); err != nil || stale {
		t.Errorf("Open of the resealed value with [NEW]: stale %v, %v; want fresh", stale, err)
	}
	if _, _, err := newTestSealer(t, newKey).Open(sealed, "alice", SealPurposeTOTP); !errors.Is(err, ErrSealedUnreadable) {
		t.Errorf("Open of OLD's value with [NEW] alone: got %v, want ErrSealedUnreadable", err)
	}
}

// The derived key, not the operator's raw key, encrypts: the key id says
// nothing of the raw key, and different keys get different ids.
func TestSealerKeyIDsDifferAndHideTheKey(t *testing.T) {
	t.Parallel()
	a := newTestSealer(t, sealKeyOf('a'))
	b := newTestSealer(t, sealKeyOf('b'))
	if a.keys[0].id == b.keys[0].id {
		t.Errorf("two keys share the id %q", a.keys[0].id)
	}
	if strings.Contains(a.keys[0].id, "YWFh") { // base64 of "aaa"
		t.Errorf("key id %q shows the raw key", a.keys[0].id)
	}
}

func TestNewSealerRefusesMissingOrShortKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys [][]byte
	}{
		{"no key", nil},
		{"short current key", [][]byte{bytes.Repeat([]byte("k"), MinDeviceKeyBytes-1)}},
		{"short old key", [][]byte{sealKeyOf('n'), []byte("short")}},
		{"empty key", [][]byte{{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := NewSealer(tc.keys); err == nil {
				t.Fatalf("NewSealer: got %v, nil; want an error", s)
			}
		})
	}
}
