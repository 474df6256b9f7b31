package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"
)

// MaxPasswordBytes bounds a password before it is hashed, so a megabyte
// "password" cannot buy a megabyte of hashing work.
const MaxPasswordBytes = 1024

// MinPasswordChars is the shortest password `user add` and `user passwd`
// accept: ASVS 2.1.1 asks for at least 12 characters where, as here, there
// is no second factor.
const MinPasswordChars = 12

// HashParams returns the argon2id parameters for new hashes: OWASP's
// recommended minimum (19 MiB, 2 passes, 1 lane). Hashes carry their own
// parameters, so raising these later keeps old hashes working.
func HashParams() *argon2id.Params {
	return &argon2id.Params{
		Memory:      19 * 1024,
		Iterations:  2,
		Parallelism: 1,
		SaltLength:  16,
		KeyLength:   32,
	}
}

// ErrBusy means every hashing slot stayed taken for the whole HashWait:
// the service is overloaded with logins, and answers at once (503 with
// Retry-After) rather than queueing the request for seconds.
var ErrBusy = errors.New("too many logins in progress")

// DefaultHashWait is how long a login waits for a hashing slot by
// default. One hash takes about 50 ms, so on two cores (two slots) 2 s
// covers a burst of some 80 logins at once (50 concurrent logins
// complete, as the benchmark checks); past it the queue is longer than a
// person waits for.
const DefaultHashWait = 2 * time.Second

// hasher runs argon2id with bounded concurrency: each hash holds 19 MiB, so
// a burst of 100 logins queues instead of allocating 1.9 GiB at once, and
// the queue itself is bounded by wait.
type hasher struct {
	slots chan struct{}
	wait  time.Duration
	// dummy is a hash of a random password, compared against when the user
	// does not exist so that an unknown name costs the same as a wrong
	// password. Made on first use: a command-line tool that checks no
	// password never pays its 40 MiB and half a second.
	dummy func() (string, error)
}

// maxHashConcurrency caps parallel hashes whatever the core count, so a
// burst of logins on a large machine holds at most 4 × 19 MiB of hashing
// memory at once (plus what the GC has not yet reclaimed).
const maxHashConcurrency = 4

func newHasher(concurrency int, wait time.Duration) (*hasher, error) {
	if concurrency <= 0 {
		concurrency = min(runtime.GOMAXPROCS(0), maxHashConcurrency)
	}
	if wait <= 0 {
		wait = DefaultHashWait
	}
	h := &hasher{slots: make(chan struct{}, concurrency), wait: wait}
	h.dummy = sync.OnceValues(func() (string, error) {
		random := make([]byte, 32)
		if _, err := rand.Read(random); err != nil {
			return "", fmt.Errorf("dummy password: %w", err)
		}
		dummy, err := argon2id.CreateHash(base64.RawStdEncoding.EncodeToString(random), HashParams())
		if err != nil {
			return "", fmt.Errorf("dummy hash: %w", err)
		}
		return dummy, nil
	})
	return h, nil
}

// acquire takes a hashing slot, waiting as long as ctx allows: setting a
// password (an operator, a user's change) is rare and must not fail for a
// burst of logins.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for hashing slot: %w", ctx.Err())
	}
}

// acquireLogin takes a hashing slot for a login, waiting at most h.wait:
// past that the queue is longer than anyone should wait, and the login is
// refused with ErrBusy at once.
func (h *hasher) acquireLogin(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return fmt.Errorf("wait for hashing slot %s: %w", h.wait, ErrBusy)
	case <-ctx.Done():
		return fmt.Errorf("wait for hashing slot: %w", ctx.Err())
	}
}

func (h *hasher) release() { <-h.slots }

// warmUp makes the dummy hash now, so that the first unknown name to log
// in does not pay for it (and so take longer than a wrong password).
func (h *hasher) warmUp() error {
	_, err := h.dummy()
	return err
}

// hash returns the argon2id hash of password.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	s, err := argon2id.CreateHash(password, HashParams())
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return s, nil
}

// verify compares password with hash in constant time. An empty hash means
// "no such user": the dummy hash is checked instead and the answer is no.
func (h *hasher) verify(ctx context.Context, password, hash string) (bool, error) {
	if err := h.acquireLogin(ctx); err != nil {
		return false, err
	}
	defer h.release()
	known := hash != ""
	if !known {
		dummy, err := h.dummy()
		if err != nil {
			return false, err
		}
		hash = dummy
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, fmt.Errorf("compare password: %w", err)
	}
	return ok && known, nil
}
