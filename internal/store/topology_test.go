package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// Every store operation runs on a real 3-primary Redis Cluster: none of
// them meets CROSSSLOT (each would fail the test with it), and the walks
// (Each, Count, Lookup, Users.List) see the keys of every primary.
func TestEveryStoreOperationWorksOnCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3)
	rdb := open(t, cl.URL())
	if got := rdb.Topology(); got != store.Cluster {
		t.Fatalf("Topology: got %q, want %q", got, store.Cluster)
	}
	if err := rdb.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	now := time.Now()
	const users, perUser = 12, 3
	all := map[string][]string{} // user -> hashes
	for i := range users {
		name := fmt.Sprintf("user-%02d", i)
		owner := addUser(t, rdb, name, now.Add(time.Hour))
		for range perUser {
			h := newHash()
			if _, err := rdb.Sessions.Create(ctx, h, []byte("doc of "+name), now.Add(time.Hour), owner, 100); err != nil {
				t.Fatalf("Create a session of %s: %v", name, err)
			}
			all[name] = append(all[name], h)
		}
	}
	for i, n := range cl.KeysPerPrimary(t, store.SessionPrefix+"*") {
		if n == 0 {
			t.Errorf("primary %s holds no session of %d: the test would not show the walks cross primaries", cl.Primaries[i].Addr(), users*perUser)
		}
	}
	for i, n := range cl.KeysPerPrimary(t, "user:{*}") {
		if n == 0 {
			t.Errorf("primary %s holds no user record of %d", cl.Primaries[i].Addr(), users)
		}
	}

	// The cap: a fourth session with max 3 ends the oldest (index read,
	// EXISTS on every primary holding one, DEL, ZREM).
	capped := addUser(t, rdb, "capped", now.Add(time.Hour))
	for i := range 4 {
		ended, err := rdb.Sessions.Create(ctx, newHash(), []byte("doc"), now.Add(time.Hour), capped, 3)
		if err != nil || (i == 3) != (ended == 1) {
			t.Fatalf("Create #%d past a cap of 3: got %d ended, %v", i+1, ended, err)
		}
	}
	if err := rdb.Sessions.Delete(ctx, "never-was", "capped"); err != nil {
		t.Fatalf("Delete of an unknown session: %v", err)
	}
	if n, err := rdb.Sessions.EndOfUser(ctx, "capped", "", func(string) bool { return true }); err != nil || n != 3 {
		t.Fatalf("EndOfUser(capped): got %d, %v; want 3", n, err)
	}

	if n, err := rdb.Sessions.Count(ctx); err != nil || n != users*perUser {
		t.Fatalf("Count: got %d, %v; want %d", n, err, users*perUser)
	}
	seen := 0
	if err := rdb.Sessions.Each(ctx, func(store.Stored) error { seen++; return nil }); err != nil || seen != users*perUser {
		t.Fatalf("Each: saw %d, %v; want %d", seen, err, users*perUser)
	}
	for _, hashes := range all {
		want := hashes[len(hashes)-1]
		got, ok, err := rdb.Sessions.Lookup(ctx, func(h string) bool { return h == want })
		if err != nil || !ok || got.Hash != want {
			t.Fatalf("Lookup(%s): got %v, %v, %v", want, got.Hash, ok, err)
		}
	}
	names, err := rdb.Users.List(ctx)
	if err != nil || len(names) != users+1 {
		t.Fatalf("Users.List: got %d names, %v; want %d", len(names), err, users+1)
	}

	// One user's sessions: read, end one, end the others; then the user goes.
	name := "user-00"
	live, err := rdb.Sessions.OfUser(ctx, name)
	if err != nil || len(live) != perUser {
		t.Fatalf("OfUser(%s): got %d, %v; want %d", name, len(live), err, perUser)
	}
	if err := rdb.Sessions.Delete(ctx, all[name][0], name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	keep := all[name][1]
	if n, err := rdb.Sessions.EndOfUser(ctx, name, "user", func(h string) bool { return h != keep }); err != nil || n != 1 {
		t.Fatalf("EndOfUser(others): got %d, %v; want 1", n, err)
	}
	// The ended session's note, in its own slot, for its browser.
	if why, err := rdb.Sessions.TakeEnded(ctx, all[name][2]); err != nil || why != "user" {
		t.Fatalf("TakeEnded: got %q, %v; want user", why, err)
	}
	if err := rdb.Users.SetPassword(ctx, name, hashB); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, err := rdb.Sessions.Create(ctx, newHash(), []byte("doc"), now.Add(time.Hour), store.Owner{User: name, Stamp: hashA, Until: now.Add(time.Hour)}, 100); err == nil {
		t.Fatal("Create with the old password's stamp: got nil, want ErrOwnerChanged")
	}
	if err := rdb.Users.Delete(ctx, name); err != nil {
		t.Fatalf("Users.Delete: %v", err)
	}

	// The throttle's script and its keys.
	for _, key := range []string{store.ThrottleUserKey("user-01"), store.ThrottleIPKey("192.0.2.7")} {
		for i := range 3 {
			wait, err := rdb.Throttle.Reserve(ctx, key, fmt.Sprint(i), 2, time.Minute)
			if err != nil || (i == 2) != (wait > 0) {
				t.Fatalf("Reserve #%d on %s with limit 2: got wait %v, %v", i+1, key, wait, err)
			}
		}
		if err := rdb.Throttle.Release(ctx, key, "0"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := rdb.Throttle.Reset(ctx, key); err != nil {
			t.Fatalf("Reset: %v", err)
		}
	}

	// Second factors: every operation, on users spread over the primaries.
	for i := range users {
		name := fmt.Sprintf("user-%02d", i)
		factorsOnCluster(t, rdb, name, now)
	}
	for i, n := range cl.KeysPerPrimary(t, "user:{*}:recovery") {
		if n == 0 {
			t.Errorf("primary %s holds no recovery key of %d users: the factor scripts did not meet every primary", cl.Primaries[i].Addr(), users)
		}
	}
	for i := range users {
		if err := rdb.Factors.DeleteAll(ctx, fmt.Sprintf("user-%02d", i)); err != nil {
			t.Fatalf("DeleteAll: %v", err)
		}
	}
	if n := sum(cl.KeysPerPrimary(t, "user:{*}:totp*")) + sum(cl.KeysPerPrimary(t, "user:{*}:recovery*")); n != 0 {
		t.Errorf("after DeleteAll of every user: %d factor keys left", n)
	}
	for range 3 {
		h := newHash()
		if err := rdb.Factors.PutPending(ctx, h, []byte("login"), time.Minute); err != nil {
			t.Fatalf("PutPending: %v", err)
		}
		if _, ok, err := rdb.Factors.Pending(ctx, h); !ok || err != nil {
			t.Fatalf("Pending: got %v, %v", ok, err)
		}
		if _, ok, err := rdb.Factors.TakePending(ctx, h); !ok || err != nil {
			t.Fatalf("TakePending: got %v, %v", ok, err)
		}
		if err := rdb.Factors.DeletePending(ctx, h); err != nil {
			t.Fatalf("DeletePending: %v", err)
		}
	}
	eventsAndPasskeysOnCluster(t, rdb, users)
}

// eventsAndPasskeysOnCluster runs the security event streams, notices,
// passkeys and ceremonies of users user-00... on the Cluster: each user's
// stream in its own slot, the service-wide stream one key, a handle's
// lookup in the handle's slot.
func eventsAndPasskeysOnCluster(t *testing.T, rdb *store.Redis, users int) {
	t.Helper()
	ctx := context.Background()
	for i := range users {
		name := fmt.Sprintf("user-%02d", i)
		e := store.Event{User: name, Kind: "sign_in", Time: time.Now(), Fields: []string{"time", time.Now().UTC().Format(time.RFC3339Nano), "user", name, "kind", "sign_in"}}
		if err := rdb.Events.Add(ctx, e, 200, 1000); err != nil {
			t.Fatalf("Events.Add(%s): %v", name, err)
		}
		got, err := rdb.Events.OfUser(ctx, name, time.Now().Add(-time.Minute), 10)
		if err != nil || len(got) != 1 || got[0].User != name {
			t.Fatalf("Events.OfUser(%s): got %+v, %v; want its one event", name, got, err)
		}
		if err := rdb.Events.SetNotice(ctx, name, "sign_in", time.Minute); err != nil {
			t.Fatalf("SetNotice(%s): %v", name, err)
		}
		if n, err := rdb.Events.TakeNotice(ctx, name); err != nil || n != "sign_in" {
			t.Fatalf("TakeNotice(%s): got %q, %v", name, n, err)
		}
		handle := fmt.Sprintf("handle-of-%s", name)
		if h, err := rdb.Factors.WebAuthnHandle(ctx, name, handle); err != nil || h != handle {
			t.Fatalf("WebAuthnHandle(%s): got %q, %v", name, h, err)
		}
		if u, ok, err := rdb.Factors.HandleUser(ctx, handle); err != nil || !ok || u != name {
			t.Fatalf("HandleUser(%s): got %q %v, %v", handle, u, ok, err)
		}
		if err := rdb.Factors.AddPasskey(ctx, name, "cred", `{"n":1}`); err != nil {
			t.Fatalf("AddPasskey(%s): %v", name, err)
		}
		if err := rdb.Factors.UpdatePasskey(ctx, name, "cred", `{"n":1}`, `{"n":2}`); err != nil {
			t.Fatalf("UpdatePasskey(%s): %v", name, err)
		}
		if err := rdb.Factors.PutCeremony(ctx, "c-"+name, []byte("x"), time.Minute); err != nil {
			t.Fatalf("PutCeremony: %v", err)
		}
		if _, ok, err := rdb.Factors.TakeCeremony(ctx, "c-"+name); err != nil || !ok {
			t.Fatalf("TakeCeremony: got %v, %v", ok, err)
		}
		if err := rdb.Factors.DeleteAll(ctx, name); err != nil {
			t.Fatalf("DeleteAll(%s): %v", name, err)
		}
		if _, ok, err := rdb.Factors.HandleUser(ctx, handle); err != nil || ok {
			t.Fatalf("HandleUser(%s) after DeleteAll: got %v, %v; want none", handle, ok, err)
		}
		if err := rdb.Events.DeleteUser(ctx, name); err != nil {
			t.Fatalf("Events.DeleteUser(%s): %v", name, err)
		}
	}
	if last, err := rdb.Events.Last(ctx, 100); err != nil || len(last) != users {
		t.Fatalf("Events.Last: got %d, %v; want %d", len(last), err, users)
	}
	if batch, err := rdb.Events.Read(ctx, "0", 100, 0); err != nil || len(batch) != users {
		t.Fatalf("Events.Read from 0: got %d, %v; want %d", len(batch), err, users)
	}
}

// factorsOnCluster runs every user-scoped Factors operation for name,
// leaving a TOTP factor, a pending enrolment and recovery codes behind.
func factorsOnCluster(t *testing.T, rdb *store.Redis, name string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	f := rdb.Factors
	if err := f.SetTOTP(ctx, name, "v1.AAAAAAAA.x", now, 1); err != nil {
		t.Fatalf("SetTOTP(%s): %v", name, err)
	}
	if err := f.ResealTOTP(ctx, name, "v1.AAAAAAAA.x", "v1.BBBBBBBB.y"); err != nil {
		t.Fatalf("ResealTOTP(%s): %v", name, err)
	}
	if ok, err := f.UseTOTPStep(ctx, name, 2); !ok || err != nil {
		t.Fatalf("UseTOTPStep(%s): got %v, %v", name, ok, err)
	}
	if got, ok, err := f.TOTP(ctx, name); !ok || err != nil || got.Sealed != "v1.BBBBBBBB.y" || got.LastStep != 2 {
		t.Fatalf("TOTP(%s): got %+v, %v, %v", name, got, ok, err)
	}
	if ok, err := f.DeleteTOTP(ctx, name); !ok || err != nil {
		t.Fatalf("DeleteTOTP(%s): got %v, %v", name, ok, err)
	}
	if err := f.SetTOTP(ctx, name, "v1.AAAAAAAA.x", now, 1); err != nil {
		t.Fatalf("SetTOTP(%s): %v", name, err)
	}
	if err := f.SetPendingTOTP(ctx, name, "v1.AAAAAAAA.z", time.Minute); err != nil {
		t.Fatalf("SetPendingTOTP(%s): %v", name, err)
	}
	if _, ok, err := f.PendingTOTP(ctx, name); !ok || err != nil {
		t.Fatalf("PendingTOTP(%s): got %v, %v", name, ok, err)
	}
	if err := f.DeletePendingTOTP(ctx, name); err != nil {
		t.Fatalf("DeletePendingTOTP(%s): %v", name, err)
	}
	if err := f.SetPendingTOTP(ctx, name, "v1.AAAAAAAA.z", time.Minute); err != nil {
		t.Fatalf("SetPendingTOTP(%s): %v", name, err)
	}
	r := store.Recovery{Salt: "c2FsdA==", Hashes: []string{"h1", "h2", "h3"}, AddedAt: now}
	if err := f.SetRecovery(ctx, name, r); err != nil {
		t.Fatalf("SetRecovery(%s): %v", name, err)
	}
	if n, ok, err := f.UseRecoveryCode(ctx, name, "h2"); n != 2 || !ok || err != nil {
		t.Fatalf("UseRecoveryCode(%s): got %d, %v, %v; want 2, true", name, n, ok, err)
	}
	if got, ok, err := f.Recovery(ctx, name); !ok || err != nil || len(got.Hashes) != 2 {
		t.Fatalf("Recovery(%s): got %+v, %v, %v", name, got, ok, err)
	}
	if ok, err := f.DeleteRecovery(ctx, name); !ok || err != nil {
		t.Fatalf("DeleteRecovery(%s): got %v, %v", name, ok, err)
	}
	if err := f.SetRecovery(ctx, name, r); err != nil {
		t.Fatalf("SetRecovery(%s): %v", name, err)
	}
}

func sum(ns []int) int {
	total := 0
	for _, n := range ns {
		total += n
	}
	return total
}

// On Sentinel, a revocation returns once a replica has it, so a failover
// right after cannot bring the session back; with no replica answering it
// still succeeds after the short wait, and says so in the log.
func TestRevocationsWaitForAReplicaOnSentinel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set := redistest.StartSentinel(t, 1, 1)
	// A generous wait for the live replica, so a busy test machine cannot
	// make it miss the production 100ms; the frozen one below gets that.
	rdb, err := store.Open(set.URL(), store.Timeouts{Op: 5 * time.Second, IO: 5 * time.Second, ReplicaAck: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	fast := open(t, set.URL())
	if got := rdb.Topology(); got != store.Sentinel {
		t.Fatalf("Topology: got %q, want %q", got, store.Sentinel)
	}
	var logs testkit.Buffer
	rdb.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	replica := set.Replicas[0]
	onReplica := replica.Client(t)
	now := time.Now()
	owner := addUser(t, rdb, "alice", now.Add(time.Hour))
	create := func() string {
		t.Helper()
		h := newHash()
		if _, err := rdb.Sessions.Create(ctx, h, []byte("doc"), now.Add(time.Hour), owner, 100); err != nil {
			t.Fatalf("Create: %v", err)
		}
		return h
	}

	// Revoke one, revoke the rest: when each returns, the replica agrees.
	h1, h2, h3 := create(), create(), create()
	if err := rdb.Sessions.Delete(ctx, h1, "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if testkit.Exists(t, onReplica, store.SessionKey(h1)) {
		t.Errorf("right after Delete returned, the replica still holds the session")
	}
	if n, err := rdb.Sessions.EndOfUser(ctx, "alice", "", func(h string) bool { return h != h3 }); err != nil || n != 1 {
		t.Fatalf("EndOfUser: got %d, %v; want 1", n, err)
	}
	if testkit.Exists(t, onReplica, store.SessionKey(h2)) {
		t.Errorf("right after EndOfUser returned, the replica still holds the ended session")
	}
	if strings.Contains(logs.String(), "not yet confirmed") {
		t.Errorf("with a live replica, a revocation was logged as unconfirmed:\n%s", logs.String())
	}

	// No replica answers: the logout still happens, after the short wait.
	replica.Freeze(t)
	t.Cleanup(func() { replica.Thaw(t) })
	fast.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Now()
	if err := fast.Sessions.Delete(ctx, h3, "alice"); err != nil {
		t.Fatalf("Delete with the replica frozen: got %v, want nil (done on the master, not refused)", err)
	}
	took := time.Since(start)
	t.Logf("Delete with no replica answering took %v", took.Round(time.Millisecond))
	if took < 100*time.Millisecond || took > 700*time.Millisecond {
		t.Errorf("Delete with no replica answering took %v, want about the 100ms WAIT", took)
	}
	if live, err := rdb.Sessions.OfUser(ctx, "alice"); err != nil || len(live) != 0 {
		t.Errorf("OfUser after the unconfirmed Delete: got %d, %v; want none", len(live), err)
	}
	if got := logs.String(); !strings.Contains(got, "not yet confirmed by a replica") || !slices.ContainsFunc(strings.Split(got, "\n"), func(l string) bool { return strings.Contains(l, "replicas=0") }) {
		t.Errorf("log after an unconfirmed revocation: got\n%s\nwant a warning with replicas=0", got)
	}
}

// On a Redis Cluster with replicas, a revocation returns once the replica
// of the primary that holds the session has it (WAIT there, on the
// connection of the DEL), so a kill -9 of that primary right after cannot
// bring the session back: its replica is elected with the revocation. The
// sessions not revoked are kept, and no revocation is logged as
// unconfirmed.
func TestRevocationsOutliveAClusterFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := redistest.StartClusterWithReplicas(t, 3, 1)
	// A generous wait for the replica, so a busy test machine cannot make
	// it miss the production 100ms and turn the test into a race.
	rdb, err := store.Open(cl.URL(), store.Timeouts{ReplicaAck: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	var logs testkit.Buffer
	rdb.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	victim := cl.Primaries[0]
	replica := cl.ReplicaOf(t, victim)
	if replica == nil {
		t.Fatalf("no replica follows %s", victim.Addr())
	}
	byKey, onReplica := cl.Client(t), replica.Client(t)
	// A replica answers for its primary's keys only after READONLY, which
	// holds for one connection.
	onReplicaHolds := func(key string) bool {
		t.Helper()
		conn := onReplica.Conn()
		defer func() { _ = conn.Close() }()
		if err := conn.ReadOnly(ctx).Err(); err != nil {
			t.Fatalf("READONLY on %s: %v", replica.Addr(), err)
		}
		return testkit.Exists(t, conn, key)
	}

	// Sessions of one user on every primary; those on the victim are the
	// ones the failover could lose.
	now := time.Now()
	owner := addUser(t, rdb, "alice", now.Add(time.Hour))
	var onIt, elsewhere []string
	for i := 0; (len(onIt) < 6 || len(elsewhere) < 3) && i < 200; i++ {
		h := newHash()
		if _, err := rdb.Sessions.Create(ctx, h, []byte("doc"), now.Add(time.Hour), owner, 1000); err != nil {
			t.Fatalf("Create: %v", err)
		}
		node, err := byKey.MasterForKey(ctx, store.SessionKey(h))
		if err != nil {
			t.Fatalf("the primary of a session: %v", err)
		}
		if node.Options().Addr == victim.Addr() {
			onIt = append(onIt, h)
		} else {
			elsewhere = append(elsewhere, h)
		}
	}
	if len(onIt) < 6 || len(elsewhere) < 3 {
		t.Fatalf("of 200 sessions, %d on %s and %d elsewhere; want 6 and 3", len(onIt), victim.Addr(), len(elsewhere))
	}
	one, many, keep := onIt[0], append([]string{onIt[1], onIt[2], onIt[3]}, elsewhere[0]), []string{onIt[4], onIt[5], elsewhere[1]}
	// New sessions do not wait for a replica on Cluster (ADR 0005): the
	// kept ones must be on it before the kill, or losing them would be
	// Redis's promise, not the store's.
	for _, h := range keep[:2] {
		testkit.Eventually(t, replica.Addr()+" holds a kept session", 10*time.Second, func() (bool, string) {
			return onReplicaHolds(store.SessionKey(h)), "not yet"
		})
	}

	// One logout, then "log out my other sessions": each returns once the
	// victim's replica agrees, with no sleep before the kill.
	if err := rdb.Sessions.Delete(ctx, one, "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if onReplicaHolds(store.SessionKey(one)) {
		t.Errorf("right after Delete returned, %s still holds the session", replica.Addr())
	}
	if n, err := rdb.Sessions.EndOfUser(ctx, "alice", "", func(h string) bool { return slices.Contains(many, h) }); err != nil || n != len(many) {
		t.Fatalf("EndOfUser: got %d, %v; want %d", n, err, len(many))
	}
	// On loopback the replica has a DEL microseconds after the reply
	// anyway, so what makes this hold on a real network is checked too:
	// the victim itself was asked to WAIT, once per revocation.
	if n := commandCalls(t, victim.Client(t), "wait"); n < 2 {
		t.Errorf("%s ran WAIT %d times; want one for Delete and one for EndOfUser's sessions on it", victim.Addr(), n)
	}
	victim.Kill(t)
	testkit.Eventually(t, replica.Addr()+" elected in place of "+victim.Addr(), 30*time.Second, func() (bool, string) {
		role := cl.Role(replica)
		return role == "master", "role " + role
	})

	for _, h := range append([]string{one}, many...) {
		if _, found, err := rdb.Sessions.Find(ctx, h); err != nil || found {
			t.Errorf("a session revoked before the failover: Find found %v, %v; want gone", found, err)
		}
	}
	for _, h := range keep {
		if _, found, err := rdb.Sessions.Find(ctx, h); err != nil || !found {
			t.Errorf("a session not revoked: Find found %v, %v; want it kept", found, err)
		}
	}
	if strings.Contains(logs.String(), "not yet confirmed") {
		t.Errorf("with a live replica, a revocation was logged as unconfirmed:\n%s", logs.String())
	}
}
