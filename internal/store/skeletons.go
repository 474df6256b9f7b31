package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Look-alike names. Each user record has a claim on its name's confusable
// skeleton (UTS #39; computed by package auth): the key
// user-skeleton:{<skeleton>} holds the name that owns it, so "is there a
// user that looks like this one" is one GET, and two creations of
// look-alike names racing each other cannot both win.
//
// Redis Cluster: the skeleton key is in another slot than the user record
// (their tags differ), so creating is three steps, ordered to be safe when
// split. 1. The skeleton is claimed as pending, with an expiry (one script
// on the skeleton key: set if free, ours, or held for good by a name whose
// record is gone). 2. The record is created. 3. The claim is made for good
// (PERSIST) if it still names us; if not, our record is deleted and we
// lose. A pending claim is never taken over: its creation may be between
// steps 1 and 3, with its record not written yet, so taking it then would
// let both creations win; one that failed part-way frees its claim when
// the expiry passes. Deleting a user removes the record first and then the
// claim, so a failure in between leaves a claim for good without a record,
// which step 1 treats as free; never a record without its claim.

// LookAlikeError means another user's name has the same confusable skeleton
// as the one being created.
type LookAlikeError struct {
	// Existing is the name of the user it looks like.
	Existing string
}

// Error implements error.
func (e *LookAlikeError) Error() string {
	return fmt.Sprintf("name looks like the existing user %q (same confusable skeleton, Unicode UTS #39): choose another name", e.Existing)
}

// pendingClaim is how long a creation may take between claiming a
// skeleton and making the claim for good, far more than the three steps
// need; past it, a claim whose creation died is free again.
const pendingClaim = 30 * time.Second

// claimSkeleton sets KEYS[1] to ARGV[1] if it is free, already ARGV[1], or
// still ARGV[2] held for good (a holder found stale), and returns "" then;
// otherwise it returns the holder. ARGV[3] is the claim's expiry in
// milliseconds, "0" for a claim for good.
var claimSkeleton = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or (ARGV[2] ~= '' and v == ARGV[2] and redis.call('PTTL', KEYS[1]) == -1) then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  end
  return ''
end
return v`)

// confirmSkeleton makes KEYS[1]'s claim for good while it names ARGV[1],
// and returns 1 then, else 0.
var confirmSkeleton = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PERSIST', KEYS[1])
  return 1
end
return 0`)

// releaseSkeleton deletes KEYS[1] only while it names ARGV[1].
var releaseSkeleton = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// CreateUnique adds a user like Create, unless another user's name has the
// same skeleton: then it returns *LookAlikeError. ErrUserExists as Create.
// A user created by Create (before skeletons were stored) gets its claim
// the next time CreateUnique is called for its name (EnsureUser at start).
func (u *Users) CreateUnique(ctx context.Context, name, skeleton, passwordHash string) error {
	if err := u.claim(ctx, name, skeleton, pendingClaim); err != nil {
		return err
	}
	if err := u.Create(ctx, name, passwordHash); err != nil {
		return err
	}
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	kept, err := confirmSkeleton.Run(ctx, u.client, []string{UserSkeletonKey(skeleton)}, name).Int()
	if err != nil {
		return unavailable("confirm skeleton claim", err)
	}
	if kept == 0 {
		// The pending claim expired before the record was written and
		// another name took it: we lose.
		if err := u.client.Del(ctx, userKey(name)).Err(); err != nil {
			return unavailable("undo create user", err)
		}
		holder, err := u.client.Get(ctx, UserSkeletonKey(skeleton)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return unavailable("read skeleton claim", err)
		}
		return &LookAlikeError{Existing: holder}
	}
	return nil
}

// ClaimSkeleton gives the existing user name its claim on skeleton, for
// users created before claims were stored; *LookAlikeError if another live
// user holds it.
func (u *Users) ClaimSkeleton(ctx context.Context, name, skeleton string) error {
	return u.claim(ctx, name, skeleton, 0)
}

// claim takes the skeleton for name, pending for that long (0: for good),
// or returns *LookAlikeError naming the user holding it or creating it.
func (u *Users) claim(ctx context.Context, name, skeleton string, pending time.Duration) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	key := UserSkeletonKey(skeleton)
	stale := ""
	for range 2 {
		holder, err := claimSkeleton.Run(ctx, u.client, []string{key}, name, stale, pending.Milliseconds()).Text()
		if err != nil {
			return unavailable("claim skeleton", err)
		}
		if holder == "" {
			return nil
		}
		n, err := u.client.Exists(ctx, userKey(holder)).Result()
		if err != nil {
			return unavailable("claim skeleton", err)
		}
		if n == 1 {
			return &LookAlikeError{Existing: holder}
		}
		// A claim without a record: a delete that did not finish (taken
		// over if it still names that holder and is for good), or a
		// creation between its steps (pending: never taken over).
		stale = holder
	}
	return &LookAlikeError{Existing: stale}
}

// ReleaseSkeleton removes name's claim on skeleton, after its record was
// deleted (see Delete). A claim held by another name is left alone.
func (u *Users) ReleaseSkeleton(ctx context.Context, name, skeleton string) error {
	ctx, cancel := u.timeouts.opContext(ctx)
	defer cancel()
	if err := releaseSkeleton.Run(ctx, u.client, []string{UserSkeletonKey(skeleton)}, name).Err(); err != nil {
		return unavailable("release skeleton", err)
	}
	return nil
}
