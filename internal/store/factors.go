package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Factors keeps users' second factors (a TOTP secret, recovery codes) and
// the logins waiting for their second step (see keys.go for the keys).
// It stores what it is given: secrets arrive sealed and recovery codes
// hashed (package auth), so nothing here can log a user in by itself.
// Get one from Open.
type Factors struct {
	client   redis.UniversalClient
	timeouts Timeouts
}

// TOTP is a user's confirmed TOTP factor.
type TOTP struct {
	// Sealed is the secret as auth.Sealer sealed it.
	Sealed string
	// AddedAt is when the factor was confirmed, to the second.
	AddedAt time.Time
	// LastStep is the last time step whose code was accepted; a code of
	// this step or an earlier one is refused (UseTOTPStep).
	LastStep int64
}

// Recovery is a user's set of recovery codes, as hashes.
type Recovery struct {
	// Salt is the salt every hash was derived with (auth.RecoverySet).
	Salt string
	// Hashes are the hashes of the codes not yet used, sorted (the store
	// keeps them as a set; the order they were issued in is not kept).
	Hashes []string
	// AddedAt is when the set was issued, to the second.
	AddedAt time.Time
}

// errNoTTL refuses to store a pending item that would never expire.
var errNoTTL = errors.New("ttl must be positive")

// TOTP returns user's confirmed TOTP factor, and false if there is none.
func (f *Factors) TOTP(ctx context.Context, user string) (TOTP, bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	m, err := f.client.HGetAll(ctx, userTOTPKey(user)).Result()
	if err != nil {
		return TOTP{}, false, unavailable("get totp", err)
	}
	if m["secret"] == "" {
		return TOTP{}, false, nil
	}
	added, _ := time.Parse(time.RFC3339, m["added_at"])
	last, _ := strconv.ParseInt(m["last_step"], 10, 64)
	return TOTP{Sealed: m["secret"], AddedAt: added, LastStep: last}, true, nil
}

// setTOTP replaces the whole record, so no field of an earlier factor
// survives (a last_step from an old secret would be meaningless).
var setTOTP = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'added_at', ARGV[2], 'last_step', ARGV[3])
return 1`)

// SetTOTP enables (or replaces) user's TOTP factor. step is the step of
// the code that confirmed the enrolment: it becomes the last accepted
// step, so that same code cannot then be replayed to log in.
func (f *Factors) SetTOTP(ctx context.Context, user, sealed string, addedAt time.Time, step int64) error {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	err := setTOTP.Run(ctx, f.client, []string{userTOTPKey(user)},
		sealed, addedAt.UTC().Format(time.RFC3339), strconv.FormatInt(step, 10)).Err()
	if err != nil {
		return unavailable("set totp", err)
	}
	return nil
}

// resealTOTP swaps the sealed secret only if it is still the one the
// caller opened: a replica resealing after a key rotation must not undo
// a reset or a new enrolment made meanwhile.
var resealTOTP = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'secret') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'secret', ARGV[2])
return 1`)

// ResealTOTP replaces user's sealed secret oldSealed with newSealed (the
// same secret sealed with the current key, after Sealer.Open said stale).
// If the secret changed or went meanwhile it does nothing.
func (f *Factors) ResealTOTP(ctx context.Context, user, oldSealed, newSealed string) error {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	if err := resealTOTP.Run(ctx, f.client, []string{userTOTPKey(user)}, oldSealed, newSealed).Err(); err != nil {
		return unavailable("reseal totp", err)
	}
	return nil
}

// DeleteTOTP removes user's TOTP factor and reports whether there was one.
func (f *Factors) DeleteTOTP(ctx context.Context, user string) (bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	n, err := f.client.Del(ctx, userTOTPKey(user)).Result()
	if err != nil {
		return false, unavailable("delete totp", err)
	}
	return n > 0, nil
}

// useTOTPStep accepts a step only above the last accepted one, in one
// script, so two replicas handed the same code at once cannot both
// accept it. A record without a secret (none, or gone) accepts nothing.
var useTOTPStep = redis.NewScript(`
local last = redis.call('HMGET', KEYS[1], 'secret', 'last_step')
if not last[1] then return 0 end
local step = tonumber(ARGV[1])
if last[2] and tonumber(last[2]) and step <= tonumber(last[2]) then return 0 end
redis.call('HSET', KEYS[1], 'last_step', ARGV[1])
return 1`)

// UseTOTPStep records that a code of step was accepted for user and
// reports whether it may be: false if user has no TOTP factor or a code of
// this step or a later one was accepted already (a replay).
func (f *Factors) UseTOTPStep(ctx context.Context, user string, step int64) (bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	ok, err := useTOTPStep.Run(ctx, f.client, []string{userTOTPKey(user)}, strconv.FormatInt(step, 10)).Int()
	if err != nil {
		return false, unavailable("use totp step", err)
	}
	return ok == 1, nil
}

// SetPendingTOTP keeps the sealed secret of an enrolment that waits for
// its first code, for ttl (it must be positive: an abandoned enrolment
// must not linger).
func (f *Factors) SetPendingTOTP(ctx context.Context, user, sealed string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("set pending totp: %w", errNoTTL)
	}
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	if err := f.client.Set(ctx, userTOTPPendingKey(user), sealed, ttl).Err(); err != nil {
		return unavailable("set pending totp", err)
	}
	return nil
}

// PendingTOTP returns the sealed secret of user's pending enrolment, and
// false if there is none (or it expired).
func (f *Factors) PendingTOTP(ctx context.Context, user string) (string, bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	s, err := f.client.Get(ctx, userTOTPPendingKey(user)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, unavailable("get pending totp", err)
	}
	return s, true, nil
}

// DeletePendingTOTP ends user's pending enrolment, if any.
func (f *Factors) DeletePendingTOTP(ctx context.Context, user string) error {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	if err := f.client.Del(ctx, userTOTPPendingKey(user)).Err(); err != nil {
		return unavailable("delete pending totp", err)
	}
	return nil
}

// setRecovery replaces both keys of the set in one script (one slot: they
// share the user's tag), so no moment shows the new salt with the old
// hashes, and the old codes stop working when the new ones are issued.
var setRecovery = redis.NewScript(`
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'salt', ARGV[1], 'added_at', ARGV[2])
if #ARGV > 2 then redis.call('SADD', KEYS[2], unpack(ARGV, 3)) end
return 1`)

// SetRecovery replaces user's recovery codes with r (its AddedAt is kept
// to the second): regenerating them invalidates every old code.
func (f *Factors) SetRecovery(ctx context.Context, user string, r Recovery) error {
	if r.Salt == "" {
		return errors.New("set recovery: no salt")
	}
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	args := append([]any{r.Salt, r.AddedAt.UTC().Format(time.RFC3339)}, anySlice(r.Hashes)...)
	if err := setRecovery.Run(ctx, f.client, []string{userRecoveryKey(user), userRecoveryCodesKey(user)}, args...).Err(); err != nil {
		return unavailable("set recovery codes", err)
	}
	return nil
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Recovery returns user's recovery codes (salt and unused hashes), and
// false if the user has none. A user who used every code still has a
// set, with no hashes: the caller can tell "used up" from "never made".
func (f *Factors) Recovery(ctx context.Context, user string) (Recovery, bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	// Two reads of one slot in one round trip; MULTI so that a consume in
	// between cannot show a hash already used.
	var meta *redis.MapStringStringCmd
	var hashes *redis.StringSliceCmd
	_, err := f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGetAll(ctx, userRecoveryKey(user))
		hashes = p.SMembers(ctx, userRecoveryCodesKey(user))
		return nil
	})
	if err != nil {
		return Recovery{}, false, unavailable("get recovery codes", err)
	}
	m := meta.Val()
	if m["salt"] == "" {
		return Recovery{}, false, nil
	}
	added, _ := time.Parse(time.RFC3339, m["added_at"])
	h := hashes.Val()
	slices.Sort(h)
	return Recovery{Salt: m["salt"], Hashes: h, AddedAt: added}, true, nil
}

// useRecoveryCode removes exactly the matching hash and answers whether
// it was there and how many remain, in one script, so two replicas given
// the same code at once cannot both accept it.
var useRecoveryCode = redis.NewScript(`
local ok = redis.call('SREM', KEYS[1], ARGV[1])
return {ok, redis.call('SCARD', KEYS[1])}`)

// UseRecoveryCode consumes the code whose hash (auth.RecoveryHash) is
// hash: ok is true once per code, and remaining says how many are left.
func (f *Factors) UseRecoveryCode(ctx context.Context, user, hash string) (remaining int, ok bool, err error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	res, err := useRecoveryCode.Run(ctx, f.client, []string{userRecoveryCodesKey(user)}, hash).Int64Slice()
	if err != nil {
		return 0, false, unavailable("use recovery code", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("use recovery code: script answered %v", res)
	}
	return int(res[1]), res[0] == 1, nil
}

// deleteRecovery removes the salt and the hashes together.
var deleteRecovery = redis.NewScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return n`)

// DeleteRecovery removes user's recovery codes and reports whether there
// were any.
func (f *Factors) DeleteRecovery(ctx context.Context, user string) (bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	n, err := deleteRecovery.Run(ctx, f.client, []string{userRecoveryKey(user), userRecoveryCodesKey(user)}).Int()
	if err != nil {
		return false, unavailable("delete recovery codes", err)
	}
	return n > 0, nil
}

// DeleteAll removes every second-factor key of user (a reset, or the
// user's deletion). Each key is its own DEL, in one pipeline: never a
// multi-key DEL, which a Cluster refuses across slots should the keys
// ever stop sharing the user's tag.
func (f *Factors) DeleteAll(ctx context.Context, user string) error {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	// The handle's lookup first: a handle left without it names nobody,
	// while a lookup left without the handle would name a user who may
	// be created again under the name.
	handle, err := f.client.Get(ctx, userWebAuthnKey(user)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("delete factors", err)
	}
	if handle != "" {
		if err := f.client.Del(ctx, passkeyUserKey(handle)).Err(); err != nil {
			return unavailable("delete factors", err)
		}
	}
	_, err = f.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range userFactorKeys(user) {
			p.Del(ctx, key)
		}
		return nil
	})
	if err != nil {
		return unavailable("delete factors", err)
	}
	return nil
}

// PutPending keeps data for a login that passed its first step and waits
// for its second, under hash (the caller's hash of the token it gave the
// browser), for ttl (positive: an unfinished login must expire).
func (f *Factors) PutPending(ctx context.Context, hash string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put pending login: %w", errNoTTL)
	}
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	if err := f.client.Set(ctx, loginPendingKey(hash), data, ttl).Err(); err != nil {
		return unavailable("put pending login", err)
	}
	return nil
}

// Pending returns the pending login under hash without ending it (for
// showing the second-step form), and false if there is none.
func (f *Factors) Pending(ctx context.Context, hash string) ([]byte, bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	b, err := f.client.Get(ctx, loginPendingKey(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("get pending login", err)
	}
	return b, true, nil
}

// TakePending returns the pending login under hash and ends it in the
// same command (GETDEL), so it completes at most once whichever replica
// gets the second step.
func (f *Factors) TakePending(ctx context.Context, hash string) ([]byte, bool, error) {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	b, err := f.client.GetDel(ctx, loginPendingKey(hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unavailable("take pending login", err)
	}
	return b, true, nil
}

// DeletePending ends the pending login under hash, if any.
func (f *Factors) DeletePending(ctx context.Context, hash string) error {
	ctx, cancel := f.timeouts.opContext(ctx)
	defer cancel()
	if err := f.client.Del(ctx, loginPendingKey(hash)).Err(); err != nil {
		return unavailable("delete pending login", err)
	}
	return nil
}
