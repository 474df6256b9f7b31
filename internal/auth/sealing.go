package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Second-factor secrets (a TOTP seed) are sealed before they reach Redis,
// so a copy of the data set (a backup, a replica, a MONITOR session) does
// not hand out every user's authenticator. The sealed text is
// "v1.KEYID.DATA": KEYID names the key that sealed it (8 base64url
// characters of SHA-256 of the derived key: it tells keys apart without
// revealing one), DATA is base64url(nonce || AES-256-GCM ciphertext). The
// associated data binds the user and the purpose, so a sealed value moved
// to another user's record, or used for another purpose, does not open.

// SealPurposeTOTP is the purpose a TOTP secret is sealed for, the
// enrolment pending confirmation and the confirmed one alike (confirming
// moves the same secret from one key to the other).
const SealPurposeTOTP = "totp"

// ErrSealedUnreadable means a sealed value did not open: it was altered,
// sealed for another user or purpose, or sealed with a key that is no
// longer configured. The caller treats the factor as unusable; it never
// learns which of these it was, and neither does an attacker.
var ErrSealedUnreadable = errors.New("sealed secret unreadable")

const (
	sealVersion = "v1"
	// sealInfo separates this use of an operator key from any other (the
	// same DEVICE_COOKIE_KEY also signs device cookies with HMAC).
	sealInfo     = "loginsvc second-factor secrets v1"
	sealKeyIDLen = 8 // base64url characters: 48 bits, enough to tell a handful of keys apart
	sealNonceLen = 12
)

// Sealer seals second-factor secrets with the current key and opens those
// of the current key and of the keys it replaced, so an operator can rotate
// DEVICE_COOKIE_KEY (NEW,OLD) without every user enrolling again. It is
// safe for concurrent use and holds no mutable state.
type Sealer struct {
	// keys[0] seals; every key opens.
	keys []sealKey
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// NewSealer returns a Sealer whose first key seals and whose every key
// opens. Each raw key must have at least MinDeviceKeyBytes bytes (the keys
// are the operator's device cookie keys); none is used directly, each is
// stretched with HKDF-SHA256 into its own AES-256 key. With no key it
// fails: a caller without configured keys (the embedded mode) passes a
// random one, accepting that its sealed secrets die with the process.
func NewSealer(keys [][]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("new sealer: no key")
	}
	s := &Sealer{}
	for i, raw := range keys {
		if len(raw) < MinDeviceKeyBytes {
			return nil, fmt.Errorf("new sealer: key %d: %w", i+1, ErrDeviceKeyTooShort)
		}
		derived, err := hkdf.Key(sha256.New, raw, nil, sealInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("new sealer: derive key %d: %w", i+1, err)
		}
		block, err := aes.NewCipher(derived)
		if err != nil {
			return nil, fmt.Errorf("new sealer: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new sealer: key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(derived)
		id := base64.RawURLEncoding.EncodeToString(sum[:6])[:sealKeyIDLen]
		s.keys = append(s.keys, sealKey{id: id, aead: aead})
	}
	return s, nil
}

// sealAD is the associated data: the user and the purpose, NUL-separated
// (neither a username nor a purpose holds NUL, so no two pairs run into
// the same bytes).
func sealAD(user, purpose string) []byte {
	return []byte("loginsvc\x00" + purpose + "\x00" + user)
}

// Seal encrypts plaintext for user and purpose with the current key. The
// result is plain ASCII, safe to store as a Redis string or hash field.
func (s *Sealer) Seal(plaintext []byte, user, purpose string) (string, error) {
	if strings.ContainsRune(user, 0) || strings.ContainsRune(purpose, 0) {
		return "", errors.New("seal: user or purpose holds NUL")
	}
	k := s.keys[0]
	buf := make([]byte, sealNonceLen, sealNonceLen+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	buf = k.aead.Seal(buf, buf[:sealNonceLen], plaintext, sealAD(user, purpose))
	return sealVersion + "." + k.id + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts what Seal returned for the same user and purpose. stale
// reports that an old key opened it: the caller then seals the plaintext
// again with the current key and stores that (a compare-and-set, see
// store.Factors.ResealTOTP), so the old key can be retired. Every failure
// is ErrSealedUnreadable.
func (s *Sealer) Open(sealed, user, purpose string) (plaintext []byte, stale bool, err error) {
	version, rest, _ := strings.Cut(sealed, ".")
	id, data, ok := strings.Cut(rest, ".")
	if version != sealVersion || !ok {
		return nil, false, fmt.Errorf("open sealed secret: %w: not a v1 sealed value", ErrSealedUnreadable)
	}
	for i, k := range s.keys {
		if k.id != id {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(data)
		if err != nil || len(raw) < sealNonceLen+k.aead.Overhead() {
			return nil, false, fmt.Errorf("open sealed secret: %w: malformed", ErrSealedUnreadable)
		}
		pt, err := k.aead.Open(nil, raw[:sealNonceLen], raw[sealNonceLen:], sealAD(user, purpose))
		if err != nil {
			return nil, false, fmt.Errorf("open sealed secret: %w: %w", ErrSealedUnreadable, err)
		}
		return pt, i > 0, nil
	}
	return nil, false, fmt.Errorf("open sealed secret: %w: unknown key %q", ErrSealedUnreadable, id)
}
