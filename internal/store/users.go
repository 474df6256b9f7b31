package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUserNotFound means no record exists for the name.
var ErrUserNotFound = errors.New("user not found")

// ErrUserExists means a record already exists for the name.
var ErrUserExists = errors.New("user already exists")

// ErrPasswordChanged means SetPasswordIf found another hash than the one
// it was told to replace: the password changed since the caller read it.
var ErrPasswordChanged = errors.New("password changed since it was read")

// User is one stored account. The password is an argon2id hash in PHC
// string form; the plain password is never stored.
type User struct {
	Name         string
	PasswordHash string
	CreatedAt    time.Time
	// DeviceEpoch (field device_epoch) is bound into the user's device
	// cookies: a password set (SetPassword, SetPasswordIf) and
	// AdvanceDeviceEpoch increment it, so every device cookie issued
	// before stops counting. A new record starts at a random epoch, so
	// the cookies of a deleted user of the same name do not come back.
	// "0" for a record from before epochs existed.
	DeviceEpoch string
}

// Users keeps user records in Redis hashes (see keys.go). Get one from
// Open.
type Users struct {
	client   redis.UniversalClient
	timeouts Timeouts
}

// Get returns the user called name, or ErrUserNotFound.
func (u *Users) Get(ctx context.Context, name string) (User, error) {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	m, err := u.client.HGetAll(ctx, userKey(name)).Result()
	if err != nil {
		return User{}, unavailable("get user", err)
	}
	if m["password"] == "" {
		return User{}, ErrUserNotFound
	}
	created, _ := time.Parse(time.RFC3339, m["created_at"])
	epoch := m["device_epoch"]
	if epoch == "" {
		epoch = "0" // what HINCRBY counts up from
	}
	return User{Name: name, PasswordHash: m["password"], CreatedAt: created, DeviceEpoch: epoch}, nil
}

// createUser sets the record only when no record exists, in one script, so
// replicas that start together and all bootstrap the same user cannot
// overwrite each other.
var createUser = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'password', ARGV[1], 'created_at', ARGV[2], 'device_epoch', ARGV[3])
return 1`)

// newDeviceEpoch is a new record's device epoch: random, and far enough
// below 2^63 that HINCRBY never overflows it.
func newDeviceEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:])>>2, 10)
}

// Create adds a user, or returns ErrUserExists.
func (u *Users) Create(ctx context.Context, name, passwordHash string) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	ok, err := createUser.Run(ctx, u.client, []string{userKey(name)}, passwordHash, time.Now().UTC().Format(time.RFC3339), newDeviceEpoch()).Int()
	if err != nil {
		return unavailable("create user", err)
	}
	if ok == 0 {
		return ErrUserExists
	}
	return nil
}

// setPassword changes the hash only of an existing record, so a password
// change racing a delete does not recreate a half user; the device epoch
// moves with it, in the same script, so no device cookie outlives the
// password it was earned with.
var setPassword = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'password', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'device_epoch', 1)
return 1`)

// SetPassword replaces a user's password hash whatever it was and advances
// the device epoch, or returns ErrUserNotFound. It is the operator's reset, which always wins; a user's
// own change goes through SetPasswordIf.
func (u *Users) SetPassword(ctx context.Context, name, passwordHash string) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	ok, err := setPassword.Run(ctx, u.client, []string{userKey(name)}, passwordHash).Int()
	if err != nil {
		return unavailable("set password", err)
	}
	if ok == 0 {
		return ErrUserNotFound
	}
	return nil
}

// setPasswordIf changes the hash only while it is still the one the caller
// checked, in one script on the one key, so no write can land between the
// comparison and the change.
var setPasswordIf = redis.NewScript(`
local stored = redis.call('HGET', KEYS[1], 'password')
if not stored then return 0 end
if stored ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'password', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'device_epoch', 1)
return 1`)

// SetPasswordIf replaces a user's password hash with newHash (and advances
// the device epoch) only if the stored hash is still expectedHash, the one the caller verified; a
// password check takes tens of milliseconds, and a change whose check went
// stale meanwhile must not undo the change that made it stale. It returns
// ErrPasswordChanged when the stored hash differs, ErrUserNotFound when
// there is no user.
func (u *Users) SetPasswordIf(ctx context.Context, name, expectedHash, newHash string) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	res, err := setPasswordIf.Run(ctx, u.client, []string{userKey(name)}, expectedHash, newHash).Int()
	if err != nil {
		return unavailable("set password if unchanged", err)
	}
	switch res {
	case 0:
		return ErrUserNotFound
	case -1:
		return ErrPasswordChanged
	}
	return nil
}

// advanceDeviceEpoch increments an existing record's device epoch only,
// so a reset racing a delete does not recreate a half user.
var advanceDeviceEpoch = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'device_epoch', 1)
return 1`)

// AdvanceDeviceEpoch increments the user's device epoch (see User), so
// every device cookie issued before stops counting, or returns
// ErrUserNotFound.
func (u *Users) AdvanceDeviceEpoch(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, u.timeouts.Op)
	defer cancel()
	ok, err := advanceDeviceEpoch.Run(ctx, u.client, []string{userKey(name)}).Int()
	if err != nil {
		return unavailable("advance device epoch", err)
	}
	if ok == 0 {
		return ErrUserNotFound
	}
	return nil
}

// Delete removes a user's record, or returns ErrUserNotFound.
func (u *Users) Delete(ctx context.Context, name string) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	n, err := u.client.Del(ctx, userKey(name)).Result()
	if err != nil {
		return unavailable("delete user", err)
	}
	if n == 0 {
		return ErrUserNotFound
	}
	return nil
}

// List returns every user name, sorted. It walks the keyspace with SCAN.
func (u *Users) List(ctx context.Context) ([]string, error) {
	var names []string
	err := scanBatches(ctx, u.client, userPattern(), func(_ context.Context, _ redis.Cmdable, keys []string) error {
		for _, key := range keys {
			names = append(names, userFromKey(key))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
