package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Passkeys (WebAuthn credentials) are kept per user, with the user's
// other factors, as opaque JSON records the auth package defines: the
// store never parses them. A passkey sign-in names the user by a random
// WebAuthn user handle (never the name), which passkey-user:{<handle>}
// resolves.

// ErrPasskeyChanged means a passkey record was changed (or removed) since
// it was read: a compare-and-set lost.
var ErrPasskeyChanged = errors.New("passkey changed meanwhile")

// Passkeys returns user's passkey records by credential id.
func (f *Factors) Passkeys(ctx context.Context, user string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	m, err := f.client.HGetAll(ctx, userPasskeysKey(user)).Result()
	if err != nil {
		return nil, unavailable("get passkeys", err)
	}
	return m, nil
}

// HasPasskeys reports whether user has at least one passkey.
func (f *Factors) HasPasskeys(ctx context.Context, user string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	n, err := f.client.HLen(ctx, userPasskeysKey(user)).Result()
	if err != nil {
		return false, unavailable("count passkeys", err)
	}
	return n > 0, nil
}

// AddPasskey stores a new passkey record of user under its credential
// id, or returns ErrPasskeyChanged if the id is taken.
func (f *Factors) AddPasskey(ctx context.Context, user, id, record string) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	ok, err := f.client.HSetNX(ctx, userPasskeysKey(user), id, record).Result()
	if err != nil {
		return unavailable("add passkey", err)
	}
	if !ok {
		return ErrPasskeyChanged
	}
	return nil
}

// updatePasskey replaces one record only while it is still the one the
// caller read, so two replicas finishing sign-ins with the same passkey
// cannot both move its signature counter from the same value.
var updatePasskey = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`)

// UpdatePasskey replaces user's record id, which must still be old, with
// record; ErrPasskeyChanged if it changed or was removed meanwhile.
func (f *Factors) UpdatePasskey(ctx context.Context, user, id, old, record string) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	ok, err := updatePasskey.Run(ctx, f.client, []string{userPasskeysKey(user)}, id, old, record).Int()
	if err != nil {
		return unavailable("update passkey", err)
	}
	if ok == 0 {
		return ErrPasskeyChanged
	}
	return nil
}

// DeletePasskey removes user's passkey id and reports whether it existed.
func (f *Factors) DeletePasskey(ctx context.Context, user, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	n, err := f.client.HDel(ctx, userPasskeysKey(user), id).Result()
	if err != nil {
		return false, unavailable("delete passkey", err)
	}
	return n > 0, nil
}

// WebAuthnHandle returns user's WebAuthn user handle, first storing
// candidate (random, from the caller) if the user has none: one handle
// per user for life, whichever replica registers the first passkey. The
// handle's lookup is written before the handle, so a stored handle always
// resolves.
func (f *Factors) WebAuthnHandle(ctx context.Context, user, candidate string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	h, err := f.client.Get(ctx, userWebAuthnKey(user)).Result()
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, redis.Nil) {
		return "", unavailable("get webauthn handle", err)
	}
	if err := f.client.Set(ctx, passkeyUserKey(candidate), user, 0).Err(); err != nil {
		return "", unavailable("set webauthn handle", err)
	}
	won, err := f.client.SetNX(ctx, userWebAuthnKey(user), candidate, 0).Result()
	if err != nil {
		return "", unavailable("set webauthn handle", err)
	}
	if won {
		return candidate, nil
	}
	// Another replica stored its own meanwhile: ours names nobody.
	_ = f.client.Del(ctx, passkeyUserKey(candidate)).Err()
	h, err = f.client.Get(ctx, userWebAuthnKey(user)).Result()
	if err != nil {
		return "", unavailable("get webauthn handle", err)
	}
	return h, nil
}

// HandleUser returns the user whose WebAuthn user handle is handle, and
// false for none: a passkey of a deleted user names nobody.
func (f *Factors) HandleUser(ctx context.Context, handle string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	user, err := f.client.Get(ctx, passkeyUserKey(handle)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable("resolve webauthn handle", err)
	}
	// The lookup outlives nothing: it must agree with the user's handle.
	h, err := f.client.Get(ctx, userWebAuthnKey(user)).Result()
	if errors.Is(err, redis.Nil) || err == nil && h != handle {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable("resolve webauthn handle", err)
	}
	return user, true, nil
}

// PutCeremony keeps a passkey ceremony's state for ttl (positive).
func (f *Factors) PutCeremony(ctx context.Context, hash string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put webauthn ceremony: %w", errNoTTL)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	if err := f.client.Set(ctx, ceremonyKey(hash), data, ttl).Err(); err != nil {
		return unavailable("put webauthn ceremony", err)
	}
	return nil
}

// TakeCeremony returns a ceremony's state and ends it in the same command
// (GETDEL): an assertion or attestation is accepted once, on whichever
// replica it reaches.
func (f *Factors) TakeCeremony(ctx context.Context, hash string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeouts.Op)
	defer cancel()
	b, err := f.client.GetDel(ctx, ceremonyKey(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("take webauthn ceremony", err)
	}
	return b, true, nil
}
