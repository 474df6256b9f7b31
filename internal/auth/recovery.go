package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Recovery codes let a user who lost the authenticator log in once per
// code. A code is 10 characters from a 31-letter alphabet, about 49.5
// bits: ASVS 6.5.2 asks that a secret under 112 bits be stored hashed with
// a salted password-hashing function, so only argon2id hashes reach Redis.
// One salt serves all of a user's codes, so checking a typed code costs a
// single derivation however many codes remain, and the store consumes the
// matching hash atomically (store.Factors.UseRecoveryCode).

// RecoveryCodeCount is how many recovery codes a user gets at a time.
const RecoveryCodeCount = 10

// ErrRecoveryCodeMalformed means a typed recovery code cannot be one we
// issued (wrong length or a character outside the alphabet), so it is
// refused without spending a hash on it.
var ErrRecoveryCodeMalformed = errors.New("malformed recovery code")

const (
	// recoveryAlphabet leaves out 0, o, 1, l and i, which people misread.
	recoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"
	recoveryCodeLen  = 10
	recoverySaltLen  = 16

	// OWASP's argon2id minimum, as for passwords (HashParams).
	recoveryMemoryKiB  = 19 * 1024
	recoveryIterations = 2
	recoveryThreads    = 1
	recoveryKeyLen     = 32
)

// RecoverySet is what is stored of a user's recovery codes: never the
// codes, only their hashes under one salt.
type RecoverySet struct {
	// Salt is 16 random bytes, standard base64.
	Salt string
	// Hashes are the argon2id keys of the codes (standard base64), in the
	// order of the codes they were made from.
	Hashes []string
}

// NewRecoveryCodes draws RecoveryCodeCount distinct codes, to show the
// user once as "xxxxx-xxxxx", and the set to store.
func NewRecoveryCodes() (codes []string, set RecoverySet, err error) {
	salt := make([]byte, recoverySaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, RecoverySet{}, fmt.Errorf("new recovery codes: salt: %w", err)
	}
	set.Salt = base64.StdEncoding.EncodeToString(salt)
	seen := map[string]bool{}
	for len(codes) < RecoveryCodeCount {
		raw, err := randomRecoveryCode()
		if err != nil {
			return nil, RecoverySet{}, fmt.Errorf("new recovery codes: %w", err)
		}
		if seen[raw] {
			continue
		}
		seen[raw] = true
		codes = append(codes, raw[:5]+"-"+raw[5:])
		set.Hashes = append(set.Hashes, recoveryKey(salt, raw))
	}
	return codes, set, nil
}

// randomRecoveryCode draws recoveryCodeLen characters uniformly from the
// alphabet (rejection sampling: bytes past the last whole multiple of
// the alphabet's size would favour its first letters).
func randomRecoveryCode() (string, error) {
	const n = len(recoveryAlphabet)
	const limit = 256 - 256%n
	code := make([]byte, 0, recoveryCodeLen)
	buf := make([]byte, 2*recoveryCodeLen)
	for len(code) < recoveryCodeLen {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(code) < recoveryCodeLen {
				code = append(code, recoveryAlphabet[int(b)%n])
			}
		}
	}
	return string(code), nil
}

// normalizeRecoveryCode accepts a code as people type it back: any case,
// with or without the dash, with spaces.
func normalizeRecoveryCode(code string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 {
			return "", ErrRecoveryCodeMalformed
		}
		b.WriteByte(c)
		if b.Len() > recoveryCodeLen {
			return "", ErrRecoveryCodeMalformed
		}
	}
	if b.Len() != recoveryCodeLen {
		return "", ErrRecoveryCodeMalformed
	}
	return b.String(), nil
}

// recoveryKey is the stored hash of a normalised code.
func recoveryKey(salt []byte, code string) string {
	key := argon2.IDKey([]byte(code), salt, recoveryIterations, recoveryMemoryKiB, recoveryThreads, recoveryKeyLen)
	return base64.StdEncoding.EncodeToString(key)
}

// RecoveryHash returns the hash of a typed code under a user's salt (the
// Salt of their RecoverySet), for the store to consume if it holds it. It
// costs one argon2id derivation; a code that cannot be one of ours is
// ErrRecoveryCodeMalformed and costs none.
func RecoveryHash(salt, code string) (string, error) {
	norm, err := normalizeRecoveryCode(code)
	if err != nil {
		return "", err
	}
	s, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || len(s) == 0 {
		return "", errors.New("recovery hash: stored salt is not base64")
	}
	return recoveryKey(s, norm), nil
}

// Contains reports whether hash (from RecoveryHash) is one of the set's,
// comparing with every stored hash in constant time, for a caller that
// checks before it consumes.
func (s RecoverySet) Contains(hash string) bool {
	found := 0
	for _, h := range s.Hashes {
		found |= subtle.ConstantTimeCompare([]byte(h), []byte(hash))
	}
	return found == 1
}
