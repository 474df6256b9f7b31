package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSessionGone is returned by Update when the session it would save was
// deleted (logged out, revoked) after it was read. The change is dropped
// instead of resurrecting the session.
var ErrSessionGone = errors.New("session no longer exists")

// ErrOwnerChanged is returned by Create when the user the session was
// granted to has been deleted, or has had the password changed, since the
// login was checked: the session is not kept.
var ErrOwnerChanged = errors.New("user deleted or password changed during login")

// SessionStore keeps sessions under scs/redisstore's key layout and the
// per-user index beside the user record (see keys.go). It stores session
// documents as opaque bytes: what a session holds is package session's
// business.
//
// It never brings a deleted session back: Update writes only a session that
// still exists (SET XX), Create only one whose key is free (SET NX).
//
// With the session cache started (Redis.StartSessionCache), Find may
// answer from memory; every write here evicts the key from the cache
// before it returns, whether Redis took it or not.
type SessionStore struct {
	client   redis.UniversalClient
	timeouts Timeouts
	ack      replicaAck // revocations wait for a replica (topology.go)
	cache    *sessionCache
	fo       *failover // replica reads and waiting for a new master (failover.go)
}

// Owner is whom a new session belongs to.
type Owner struct {
	// User is the user's canonical name.
	User string
	// Stamp is the password hash the login was checked against: the
	// session is created only while the user record still holds it, so a
	// login racing a password change or a delete leaves nothing behind.
	// Empty skips the check (the user must still exist).
	Stamp string
	// Until is the session's absolute deadline, its score in the index.
	Until time.Time
}

// Stored is one session as Redis holds it.
type Stored struct {
	// Hash is the stored token (base64url(sha256(cookie token))).
	Hash string
	// Data is the encoded session document.
	Data []byte
	// Expires is when Redis will drop the key (its PTTL from now).
	Expires time.Time
}

func (s *SessionStore) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.timeouts.opContext(ctx)
}

// Find returns the session stored under hash: from the session cache
// when it holds it and may serve it, else with one GET (and, to fill the
// cache, the key's PTTL in the same round trip).
//
// While the master of a Sentinel setup or of the key's Cluster slot does
// not answer, the session is read from the most up-to-date replica
// (failover.go), and only if no replica can be chosen does the read wait
// for the new master, as writes do. A replica's answer never fills the
// cache.
func (s *SessionStore) Find(ctx context.Context, hash string) ([]byte, bool, error) {
	return s.find(ctx, hash, false)
}

// View is Find for a caller that only reads the bytes: a cached session's
// bytes are the cache's own, shared, not a copy, so they must never be
// changed. The session check of every protected request reads this way
// (one allocation fewer per check, on the service's hottest path).
func (s *SessionStore) View(ctx context.Context, hash string) ([]byte, bool, error) {
	return s.find(ctx, hash, true)
}

func (s *SessionStore) find(ctx context.Context, hash string, shared bool) ([]byte, bool, error) {
	start := time.Now()
	b, hit, fill := s.cache.lookup(hash, start, shared)
	if hit {
		return b, true, nil
	}
	if s.fo.replicas != nil && s.fo.wait > 0 && s.fo.down(start) > 0 {
		if b, found, ok := s.findOnReplica(ctx, hash); ok {
			s.cache.fill(hash, fill, nil, time.Time{})
			return b, found, nil
		}
	}
	first, cancel := context.WithTimeout(noWait(ctx), s.timeouts.Op)
	defer cancel()
	b, found, err := s.findOnMaster(first, hash, fill, start)
	if err == nil || s.fo.wait <= 0 || !masterFailed(ctx, err) {
		return b, found, err
	}
	s.fo.markDown()
	if s.fo.replicas != nil {
		if b, found, ok := s.findOnReplica(ctx, hash); ok {
			return b, found, nil
		}
	}
	wait, cancelWait := s.opContext(ctx)
	defer cancelWait()
	return s.findOnMaster(wait, hash, 0, start)
}

// findOnReplica reads hash from the most up-to-date replica; ok is false
// when none could be chosen.
func (s *SessionStore) findOnReplica(ctx context.Context, hash string) (b []byte, found, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	b, found, _, err := s.fo.replicas.get(ctx, SessionKey(hash))
	if err != nil {
		return nil, false, false
	}
	s.fo.replicaReads.Add(1)
	return b, found, true
}

// findOnMaster is Find's read of the master; fill is the cache's token
// (0: keep nothing), start when Find began.
func (s *SessionStore) findOnMaster(ctx context.Context, hash string, fill uint64, start time.Time) ([]byte, bool, error) {
	if fill == 0 {
		b, err := s.client.Get(ctx, SessionKey(hash)).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, unavailable("find session", err)
		}
		return b, true, nil
	}
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, SessionKey(hash))
		pttl = p.PTTL(ctx, SessionKey(hash))
		return nil
	})
	b, gerr := get.Bytes()
	switch {
	case errors.Is(gerr, redis.Nil):
		s.cache.fill(hash, fill, nil, time.Time{})
		return nil, false, nil
	case gerr != nil || (err != nil && !errors.Is(err, redis.Nil)):
		s.cache.fill(hash, fill, nil, time.Time{})
		return nil, false, unavailable("find session", errors.Join(gerr, err))
	}
	// Counted from before the read: the entry never outlives the key,
	// nor CacheMaxAge.
	expires := start.Add(s.cache.maxAge)
	if ttl := pttl.Val(); ttl > 0 && ttl < s.cache.maxAge {
		expires = start.Add(ttl)
	}
	s.cache.fill(hash, fill, bytes.Clone(b), expires)
	return b, true, nil
}

// Update saves a session read earlier, only if it still exists; otherwise
// ErrSessionGone. The key expires at expiry (PXAT).
func (s *SessionStore) Update(ctx context.Context, hash string, b []byte, expiry time.Time) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	defer s.cache.evict(hash)
	err := s.client.SetArgs(ctx, SessionKey(hash), b, redis.SetArgs{ExpireAt: expiry, Mode: "XX"}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("update session: %w", ErrSessionGone)
	case err != nil:
		return unavailable("update session", err)
	}
	return nil
}

// UpdateEach saves sessions read earlier (Data and Expires as given), each
// only if it still exists, in one pipeline: a change to every session of a
// user costs one round trip, not one per session. It returns how many were
// saved; the ones gone meanwhile are skipped, as Update's ErrSessionGone.
func (s *SessionStore) UpdateEach(ctx context.Context, sessions []Stored) (int, error) {
	if len(sessions) == 0 {
		return 0, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	defer func() {
		for _, st := range sessions {
			s.cache.evict(st.Hash)
		}
	}()
	cmds := make([]*redis.StatusCmd, len(sessions))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, st := range sessions {
			cmds[i] = p.SetArgs(ctx, SessionKey(st.Hash), st.Data, redis.SetArgs{ExpireAt: st.Expires, Mode: "XX"})
		}
		return nil
	})
	n := 0
	for _, c := range cmds {
		if c.Err() == nil {
			n++
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return n, unavailable("update sessions", err)
	}
	return n, nil
}

// joinIndex adds a session to its user's index if the user record still
// holds the password the login was checked against (ARGV[3], empty: any),
// drops members past their absolute deadline, keeps the index key alive
// exactly as long as its longest-lived member, and returns how many
// members the index now has (-1: the user changed). It touches the user
// record and the index only, which share the hash tag {<name>}.
var joinIndex = redis.NewScript(`
local pw = redis.call('HGET', KEYS[1], 'password')
if not pw or (ARGV[3] ~= '' and pw ~= ARGV[3]) then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], top[2])
return redis.call('ZCARD', KEYS[2])`)

// Create saves a new session for owner under hash and adds it to the
// owner's index. When the owner then has more than max sessions, the
// oldest are ended and their number returned. It fails with
// ErrOwnerChanged, keeping nothing, when the user was deleted or the
// password changed since owner.Stamp was read.
//
// The session is written before it joins the index (see keys.go): if
// joining fails, the session is deleted again, and if even that fails its
// token was never handed to a browser, so nobody can use it before it
// expires.
func (s *SessionStore) Create(ctx context.Context, hash string, b []byte, expiry time.Time, owner Owner, max int) (int, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	defer s.cache.evict(hash)
	key := SessionKey(hash)
	var n int
	// On Sentinel the new session waits for a replica, as revocations do:
	// a login the user saw succeed must outlive the master (failover.go).
	err := s.durably(ctx, "create session", func(ctx context.Context, c redis.Cmdable) error {
		err := c.SetArgs(ctx, key, b, redis.SetArgs{ExpireAt: expiry, Mode: "NX"}).Err()
		switch {
		case errors.Is(err, redis.Nil):
			// Ours if it holds our bytes: a try whose reply the failover
			// lost. Else a fresh 256-bit token whose key already exists:
			// never by chance, so refuse rather than overwrite someone's
			// session.
			if cur, gerr := c.Get(ctx, key).Bytes(); gerr != nil || !bytes.Equal(cur, b) {
				return errTokenInUse
			}
		case err != nil:
			return unavailable("create session", err)
		}
		n, err = s.joinScript(ctx, c, hash, owner, max)
		return err
	})
	if err != nil || n < 0 {
		if !errors.Is(err, errTokenInUse) {
			_ = s.client.Del(ctx, key).Err()
		}
		if err == nil {
			err = fmt.Errorf("index session of %q: %w", owner.User, ErrOwnerChanged)
		}
		return 0, err
	}
	if n <= max {
		return 0, nil
	}
	ended, err := s.endOverCap(ctx, owner.User, hash, max)
	if err != nil {
		return ended, fmt.Errorf("end sessions over the cap: %w", err)
	}
	return ended, nil
}

// errTokenInUse is Create's refusal to overwrite another session.
var errTokenInUse = errors.New("create session: new session token already in use")

// joinScript runs joinIndex for hash on c: how many members the index now
// has, -1 if the owner changed.
func (s *SessionStore) joinScript(ctx context.Context, c redis.Cmdable, hash string, owner Owner, max int) (int, error) {
	n, err := joinIndex.Run(ctx, c, []string{userKey(owner.User), UserSessionsKey(owner.User)},
		hash, owner.Until.UnixMilli(), owner.Stamp, max).Int()
	if err != nil {
		return 0, unavailable("index session", err)
	}
	return n, nil
}

// endOverCap brings user's index down to max live sessions. Members whose
// key has gone (idle timeout) still sit in the index until it is read, so
// they are pruned first: only live sessions count against the cap, and a
// script that logs in every few minutes cannot sign out the user's real
// browser. The oldest live sessions other than keep are then ended.
func (s *SessionStore) endOverCap(ctx context.Context, user, keep string, max int) (int, error) {
	index := UserSessionsKey(user)
	members, err := s.client.ZRangeWithScores(ctx, index, 0, -1).Result() // oldest first
	if err != nil {
		return 0, unavailable("read session index", err)
	}
	cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			p.Exists(ctx, SessionKey(memberHash(m)))
		}
		return nil
	})
	if err != nil {
		return 0, unavailable("check sessions", err)
	}
	var live []redis.Z
	var gone []any
	for i, m := range members {
		switch h := memberHash(m); {
		case h == keep:
		case cmds[i].(*redis.IntCmd).Val() == 1:
			live = append(live, m)
		default:
			gone = append(gone, h)
		}
	}
	if len(gone) > 0 {
		if err := s.client.ZRem(ctx, index, gone...).Err(); err != nil {
			return 0, unavailable("prune session index", err)
		}
	}
	excess := len(live) + 1 - max // +1: keep is live too
	if excess <= 0 {
		return 0, nil
	}
	return s.endMembers(ctx, user, live[:excess], EndedByCap)
}

// Delete ends one session: its key first, then its index entry (see
// keys.go). user may be "" for a session whose owner is unknown.
func (s *SessionStore) Delete(ctx context.Context, hash, user string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	if _, err := s.revoke(ctx, "delete session", []string{hash}); err != nil {
		return err
	}
	if user == "" {
		return nil
	}
	if err := s.client.ZRem(ctx, UserSessionsKey(user), hash).Err(); err != nil {
		return unavailable("unindex session", err)
	}
	return nil
}

// endMembers deletes the given members of user's index (deleteMembers)
// and, when why is not "", leaves each session that existed a note for
// its browser's next page (see TakeEnded), until the session's absolute
// deadline (its score), when the browser's cookie ends at the latest.
// The notes are a courtesy: writing them cannot fail the revocation.
func (s *SessionStore) endMembers(ctx context.Context, user string, members []redis.Z, why string) (int, error) {
	hashes := make([]string, len(members))
	for i, m := range members {
		hashes[i] = memberHash(m)
	}
	ended, err := s.deleteMembers(ctx, user, hashes)
	if why == "" || len(ended) == 0 {
		return len(ended), err
	}
	now := time.Now()
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			until := time.UnixMilli(int64(m.Score))
			if !until.After(now) || !slices.Contains(ended, memberHash(m)) {
				continue
			}
			p.SetArgs(ctx, sessionEndedKey(memberHash(m)), why, redis.SetArgs{ExpireAt: until})
		}
		return nil
	})
	return len(ended), err
}

// memberHash is the stored token an index member names.
func memberHash(m redis.Z) string {
	h, _ := m.Member.(string)
	return h
}

// Why sessions were ended by someone other than their own browser, as
// TakeEnded reports it. EndOfUser's callers pass their own reasons (the
// activity's "by" values); the cap is the store's own.
const EndedByCap = "cap"

// TakeEnded returns why the session stored under hash was ended by
// someone else (EndOfUser's why, or EndedByCap), and forgets it: the
// browser that held it is told once, on its next page. "" when no note
// is left: the session timed out, was logged out by its own browser, or
// never existed.
func (s *SessionStore) TakeEnded(ctx context.Context, hash string) (string, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	why, err := s.client.GetDel(ctx, sessionEndedKey(hash)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", unavailable("read why a session ended", err)
	}
	return why, nil
}

// deleteMembers deletes the given sessions of user, keys first (revoke),
// then their index entries, and returns those whose keys existed.
func (s *SessionStore) deleteMembers(ctx context.Context, user string, hashes []string) ([]string, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	ended, err := s.revoke(ctx, "delete sessions", hashes)
	if err != nil {
		return ended, err
	}
	members := make([]any, len(hashes))
	for i, h := range hashes {
		members[i] = h
	}
	if err := s.client.ZRem(ctx, UserSessionsKey(user), members...).Err(); err != nil {
		return ended, unavailable("unindex sessions", err)
	}
	return ended, nil
}

// revoke deletes the session keys of hashes, each with its own DEL
// (session keys have no common hash tag, so a multi-key DEL would be
// refused by a Cluster), in a way that outlives a failover of the master
// (a replica confirms them: durably and durablyPerPrimary, topology.go),
// and returns those that existed. The index is the caller's, after: a
// session leaves Redis before it leaves the index.
func (s *SessionStore) revoke(ctx context.Context, op string, hashes []string) ([]string, error) {
	// Kept across tries: a DEL that a failover made run again finds the
	// key gone and must not undo the count of the first.
	existed := make([]bool, len(hashes))
	keys := make([]string, len(hashes))
	for i, h := range hashes {
		keys[i] = SessionKey(h)
	}
	del := func(ctx context.Context, c redis.Cmdable, which []int) error {
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range which {
				p.Del(ctx, keys[i])
			}
			return nil
		})
		// Evicted whether Redis took the deletes or not: a session this
		// replica may have ended must not be served from its memory.
		for _, i := range which {
			s.cache.evict(hashes[i])
		}
		if err != nil {
			return unavailable(op, err)
		}
		for j, cmd := range cmds {
			if cmd.(*redis.IntCmd).Val() == 1 {
				existed[which[j]] = true
			}
		}
		return nil
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok && s.ack.replicas > 0 {
		err = s.durablyPerPrimary(ctx, cc, op, keys, del)
	} else {
		all := make([]int, len(keys))
		for i := range all {
			all[i] = i
		}
		err = s.durably(ctx, op, func(ctx context.Context, c redis.Cmdable) error { return del(ctx, c, all) })
	}
	var ended []string
	for i, e := range existed {
		if e {
			ended = append(ended, hashes[i])
		}
	}
	return ended, err
}

// OfUser returns the live sessions in user's index. Members past their
// absolute deadline or whose key has gone (idle timeout, deleted) are
// pruned from the index on the way.
func (s *SessionStore) OfUser(ctx context.Context, user string) ([]Stored, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	index := UserSessionsKey(user)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := s.client.ZRemRangeByScore(ctx, index, "-inf", now).Err(); err != nil {
		return nil, unavailable("prune session index", err)
	}
	hashes, err := s.client.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, unavailable("read session index", err)
	}
	live, gone, err := s.read(ctx, s.client, hashes)
	if err != nil {
		return nil, err
	}
	if len(gone) > 0 {
		if err := s.client.ZRem(ctx, index, gone...).Err(); err != nil {
			return nil, unavailable("prune session index", err)
		}
	}
	return live, nil
}

// read fetches the sessions named by hashes with their expiry, in one
// pipeline of GET and PTTL per key, and returns those that exist and the
// members of those that do not.
func (s *SessionStore) read(ctx context.Context, c redis.Cmdable, hashes []string) (live []Stored, gone []any, err error) {
	if len(hashes) == 0 {
		return nil, nil, nil
	}
	type pair struct {
		get  *redis.StringCmd
		pttl *redis.DurationCmd
	}
	cmds := make([]pair, len(hashes))
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			cmds[i] = pair{p.Get(ctx, SessionKey(h)), p.PTTL(ctx, SessionKey(h))}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, unavailable("read sessions", err)
	}
	now := time.Now()
	for i, h := range hashes {
		b, err := cmds[i].get.Bytes()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, h)
			continue
		}
		if err != nil {
			return nil, nil, unavailable("read session", err)
		}
		st := Stored{Hash: h, Data: b}
		if ttl := cmds[i].pttl.Val(); ttl > 0 {
			st.Expires = now.Add(ttl)
		}
		live = append(live, st)
	}
	return live, gone, nil
}

// EndOfUser ends the sessions in user's index for which end reports true
// (it is given each stored token) and returns how many live sessions it
// ended. why, unless "", is what each ended session's browser is told on
// its next page (TakeEnded): someone else ended it, and why.
func (s *SessionStore) EndOfUser(ctx context.Context, user, why string, end func(hash string) bool) (int, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	members, err := s.client.ZRangeWithScores(ctx, UserSessionsKey(user), 0, -1).Result()
	if err != nil {
		return 0, unavailable("read session index", err)
	}
	chosen := members[:0]
	for _, m := range members {
		if end(memberHash(m)) {
			chosen = append(chosen, m)
		}
	}
	return s.endMembers(ctx, user, chosen, why)
}

// Each calls fn for every session in Redis, walking the keyspace with SCAN
// (never KEYS) in batches read with one pipeline each, so memory stays
// bounded by one batch whatever the number of sessions. It is meant for
// operators' tools, not for request paths; ctx bounds the whole walk.
func (s *SessionStore) Each(ctx context.Context, fn func(Stored) error) error {
	err := scanBatches(ctx, s.client, sessionPattern(), func(ctx context.Context, c redis.Cmdable, keys []string) error {
		hashes := make([]string, len(keys))
		for i, k := range keys {
			hashes[i] = hashFromSessionKey(k)
		}
		live, _, err := s.read(ctx, c, hashes)
		if err != nil {
			return err
		}
		for _, st := range live {
			if err := fn(st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk sessions: %w", err)
	}
	return nil
}

// Count returns how many session keys exist, with SCAN only.
func (s *SessionStore) Count(ctx context.Context) (int, error) {
	n := 0
	err := scanBatches(ctx, s.client, sessionPattern(), func(_ context.Context, _ redis.Cmdable, keys []string) error {
		n += len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count sessions: %w", err)
	}
	return n, nil
}

// errFound stops a walk that has found what it looked for.
var errFound = errors.New("found")

// Lookup returns the first session whose stored token satisfies match. It
// walks the key names with SCAN and reads only the sessions that match, so
// finding one session among many costs the walk, not a read of each.
func (s *SessionStore) Lookup(ctx context.Context, match func(hash string) bool) (Stored, bool, error) {
	var found Stored
	err := scanBatches(ctx, s.client, sessionPattern(), func(ctx context.Context, c redis.Cmdable, keys []string) error {
		var hashes []string
		for _, k := range keys {
			if h := hashFromSessionKey(k); match(h) {
				hashes = append(hashes, h)
			}
		}
		live, _, err := s.read(ctx, c, hashes)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			found = live[0]
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, true, nil
	case err != nil:
		return Stored{}, false, fmt.Errorf("look up session: %w", err)
	}
	return Stored{}, false, nil
}
