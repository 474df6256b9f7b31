package web

// Security activity as its owner and the operator meet it: each event
// recorded by the action that causes it, on either replica, in the user's
// stream and the service-wide one; the security page's list; the one-time
// notice of a new-device sign-in; and no secret in any event.

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
)

// streamEntries are every entry of the stream key, oldest first, as
// field maps.
func (ta *testApp) streamEntries(t testing.TB, key string) []map[string]string {
	t.Helper()
	msgs, err := ta.check.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", key, err)
	}
	out := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]string{}
		for k, v := range m.Values {
			out[i][k] = fmt.Sprint(v)
		}
	}
	return out
}

// userEvents is the key of user's event stream (README's key layout).
func userEvents(user string) string { return "user:{" + user + "}:events" }

// wantEvent is an event a step must record: its kind and some fields.
type wantEvent struct {
	kind   string
	fields map[string]string
}

// matches reports whether the entry e is w.
func (w wantEvent) matches(e map[string]string) bool {
	if e["kind"] != w.kind {
		return false
	}
	for k, v := range w.fields {
		if e[k] != v {
			return false
		}
	}
	return true
}

// checkRecorded fails unless every one of want is among entries.
func checkRecorded(t *testing.T, step string, entries []map[string]string, want ...wantEvent) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, e := range entries {
			if w.matches(e) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: got events %v, want a %s with %v", step, entries, w.kind, w.fields)
		}
	}
}

func ev(kind string, kv ...string) wantEvent {
	w := wantEvent{kind: kind, fields: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		w.fields[kv[i]] = kv[i+1]
	}
	return w
}

// Each action records its event, whichever of two replicas serves it,
// with who, how and where: in the user's stream and the service-wide one.
func TestEachActionRecordsItsEvent(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r1 := newTestApp(t, rs, withInstanceID("r1"))
	r2 := newTestApp(t, rs, withInstanceID("r2"))
	ctx := context.Background()

	b1, b2, b3 := newBrowser(t), newBrowser(t), newBrowser(t)
	var ph *phone
	var codes []string
	steps := []struct {
		name string
		on   *testApp
		do   func(ta *testApp)
		want []wantEvent
	}{
		{"sign-in from a browser without a device cookie", r1, func(ta *testApp) { ta.login(t, b1, false) },
			[]wantEvent{ev(activity.SignIn, "method", "password", "amr", "pwd", "new_device", "true", "via", "web", "user", aliceName, "ip", "127.0.0.1")}},
		{"sign-out", r2, func(ta *testApp) {
			if p := b1.post(ta.url("/logout/"), url.Values{}); p.status != http.StatusSeeOther {
				t.Fatalf("POST /logout/: got %d, want 303", p.status)
			}
		}, []wantEvent{ev(activity.SignOut)}},
		{"sign-in again from the same browser (its device cookie)", r2, func(ta *testApp) { ta.login(t, b1, false) },
			[]wantEvent{ev(activity.SignIn, "method", "password", "new_device", "false")}},
		{"API login", r1, func(ta *testApp) { ta.apiLogin(t) },
			[]wantEvent{ev(activity.APITokenCreated, "method", "password", "amr", "pwd", "via", "api")}},
		{"authenticator app added (the API session ends)", r2, func(ta *testApp) { ph, codes = ta.enrolTOTP(t, b1) },
			[]wantEvent{ev(activity.FactorAdded, "method", "totp"), ev(activity.SessionRevoked, "by", activity.ByFactorChange, "count", "1")}},
		{"a wrong code after the right password", r1, func(ta *testApp) {
			ta.passwordStep(t, b2)
			if p := ta.secondStep(b2, url.Values{"code": {ph.wrong()}}); p.status != http.StatusBadRequest {
				t.Fatalf("POST /login/code/ with a wrong code: got %d, want 400", p.status)
			}
		}, []wantEvent{ev(activity.SecondStepFailed)}},
		{"an API login with the right password and a wrong code", r2, func(ta *testApp) {
			if p := ta.send(t, jsonPost("/api/login", aliceTOTPJSON(ph.wrong()))); p.status != http.StatusUnauthorized {
				t.Fatalf("POST /api/login with a wrong code: got %d, want 401; body %s", p.status, p.body)
			}
		}, []wantEvent{ev(activity.SecondStepFailed, "method", "code", "via", "api")}},
		{"a recovery code for the code", r1, func(ta *testApp) {
			if p := ta.secondStep(b2, url.Values{"code": {codes[0]}, "recovery": {"1"}}); p.status != http.StatusSeeOther {
				t.Fatalf("POST /login/code/ with a recovery code: got %d, want 303", p.status)
			}
		}, []wantEvent{ev(activity.SignIn, "method", "password+recovery", "amr", "pwd otp", "new_device", "true"), ev(activity.RecoveryCodeUsed, "left", "9")}},
		{"new recovery codes", r2, func(ta *testApp) {
			if p := b1.post(ta.url("/security/recovery/"), url.Values{}); p.status != http.StatusOK {
				t.Fatalf("POST /security/recovery/: got %d, want 200", p.status)
			}
		}, []wantEvent{ev(activity.RecoveryCodesRegenerated)}},
		{"re-authentication", r1, func(ta *testApp) {
			if p := b1.post(ta.url("/reauth/"), url.Values{"password": {alicePassword}, "code": {ph.code()}, "next": {"/security/"}}); p.status != http.StatusSeeOther {
				t.Fatalf("POST /reauth/: got %d, want 303; body:\n%s", p.status, p.body)
			}
		}, []wantEvent{ev(activity.Reauthenticated, "method", "totp")}},
		{"the user ends the other sessions from the sessions page", r2, func(ta *testApp) {
			if p := b1.post(ta.url("/sessions/revoke-others"), url.Values{}); p.status != http.StatusSeeOther {
				t.Fatalf("POST /sessions/revoke-others: got %d, want 303", p.status)
			}
		}, []wantEvent{ev(activity.SessionRevoked, "by", activity.ByUser, "count", "1")}},
		{"authenticator app removed", r1, func(ta *testApp) {
			if p := b1.post(ta.url("/security/totp/remove"), url.Values{}); p.status != http.StatusSeeOther && p.status != http.StatusOK {
				t.Fatalf("POST /security/totp/remove: got %d, want 303 or 200; body:\n%s", p.status, p.body)
			}
		}, []wantEvent{ev(activity.FactorRemoved, "method", "totp")}},
		{"password changed (another session ends)", r2, func(ta *testApp) {
			ta.login(t, b3, false)
			if p := b1.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword)); p.status != http.StatusSeeOther {
				t.Fatalf("POST /password/: got %d, want 303; body:\n%s", p.status, p.body)
			}
		}, []wantEvent{ev(activity.PasswordChanged), ev(activity.SessionRevoked, "by", activity.ByPasswordChange, "count", "1")}},
		{"an operator ends the sessions", r1, func(ta *testApp) {
			if _, err := ta.app.sessions.RevokeAll(activity.Because(ctx, activity.ByOperator), aliceName, ""); err != nil {
				t.Fatalf("RevokeAll: %v", err)
			}
		}, []wantEvent{ev(activity.SessionRevoked, "by", activity.ByOperator, "count", "1")}},
	}
	seen, seenAll := 0, 0
	for _, step := range steps {
		step.do(step.on)
		mine := r1.streamEntries(t, userEvents(aliceName))
		all := r1.streamEntries(t, "events")
		if len(mine) <= seen || len(all) <= seenAll {
			t.Fatalf("%s: no new event (alice's stream %d, service-wide %d entries)", step.name, len(mine), len(all))
		}
		for i := range step.want {
			step.want[i].fields["replica"] = step.on.settings.instanceID
			step.want[i].fields["user"] = aliceName
		}
		checkRecorded(t, step.name+" (alice's stream)", mine[seen:], step.want...)
		checkRecorded(t, step.name+" (service-wide stream)", all[seenAll:], step.want...)
		seen, seenAll = len(mine), len(all)
	}
}

// A lockout is recorded once, however many more failures follow, and its
// lifting by an operator too.
func TestLockoutEvents(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	ta := newTestApp(t, rs, withLimits(auth.Limits{PerUser: 3, PerIP: 1000, AttemptsPerIP: 1000}))
	for range 6 {
		newBrowser(t).post(ta.url("/login/"), url.Values{"username": {aliceName}, "password": {"wrong-password-123"}})
	}
	count := func(kind string) int {
		n := 0
		for _, e := range ta.streamEntries(t, userEvents(aliceName)) {
			if e["kind"] == kind {
				n++
			}
		}
		return n
	}
	if n := count(activity.LockoutStarted); n != 1 {
		t.Errorf("six failures with a limit of 3: got %d lockout_started, want 1", n)
	}
	if err := ta.auth.Unlock(context.Background(), aliceName); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	checkRecorded(t, "Unlock", ta.streamEntries(t, userEvents(aliceName)), ev(activity.LockoutLifted, "by", activity.ByOperator))
}

// The per-user cap ends the oldest session, and says so.
func TestSessionCapEvent(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withMaxSessions(2))
	for range 3 {
		ta.login(t, newBrowser(t), false)
	}
	checkRecorded(t, "a third session with a cap of 2", ta.streamEntries(t, userEvents(aliceName)), ev(activity.SessionRevoked, "by", activity.ByCap, "count", "1"))
}

// A user's creation is in their stream; their deletion only in the
// service-wide one, their own stream gone with them.
func TestUserCreatedAndDeletedEvents(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ctx := context.Background()
	if err := ta.auth.AddUser(ctx, "bob", "bob-has-a-long-password-1"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	checkRecorded(t, "AddUser (bob's stream)", ta.streamEntries(t, userEvents("bob")), ev(activity.UserCreated, "user", "bob"))
	ta.loginAs(t, newBrowser(t), "bob", "bob-has-a-long-password-1", "")
	if _, err := ta.auth.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	all := ta.streamEntries(t, "events")
	checkRecorded(t, "DeleteUser (service-wide)", all, ev(activity.UserCreated, "user", "bob"), ev(activity.UserDeleted, "user", "bob"),
		ev(activity.SessionRevoked, "user", "bob", "by", activity.ByUserDeleted, "count", "1"))
	if ta.exists(t, userEvents("bob")) {
		t.Errorf("after DeleteUser: %s exists, want it gone (got %v)", userEvents("bob"), ta.streamEntries(t, userEvents("bob")))
	}
}

var activityKinds = regexp.MustCompile(`<li data-kind="([a-z_]+)"`)

// The security page lists the user's own activity and nobody else's, in
// either language.
func TestSecurityPageShowsOwnActivity(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r1, r2 := newTestApp(t, rs, withInstanceID("r1")), newTestApp(t, rs, withInstanceID("r2"))
	if err := r1.auth.AddUser(context.Background(), "bob", "bob-has-a-long-password-1"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	const androidUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	bob := newBrowser(t)
	r2.loginAs(t, bob, "bob", "bob-has-a-long-password-1", androidUA)
	bob.post(r2.url("/logout/"), url.Values{})
	alice := newBrowser(t)
	r1.login(t, alice, false)

	for _, tc := range []struct{ lang, heading string }{{"en", "Recent security activity"}, {"zh", "近期安全动态"}} {
		p := alice.getIn(r2.url("/security/"), tc.lang)
		if p.status != http.StatusOK || !strings.Contains(p.body, tc.heading) || !strings.Contains(p.body, `id="activity-list"`) {
			t.Fatalf("GET /security/ in %s: got %d, want 200 with %q and #activity-list; body:\n%s", tc.lang, p.status, tc.heading, p.body)
		}
		kinds := activityKinds.FindAllStringSubmatch(p.body, -1)
		if len(kinds) != 1 || kinds[0][1] != activity.SignIn {
			t.Errorf("alice's activity in %s: got %v, want her one sign_in", tc.lang, kinds)
		}
		if strings.Contains(p.body, "Android") {
			t.Errorf("alice's activity in %s shows bob's Android sign-in", tc.lang)
		}
	}
	p := bob.get(r1.url("/security/"))
	if p.status != http.StatusSeeOther {
		t.Fatalf("bob after logout: GET /security/ got %d, want 303 to the login", p.status)
	}
	r1.loginAs(t, bob, "bob", "bob-has-a-long-password-1", androidUA)
	p = bob.get(r1.url("/security/"))
	kinds := activityKinds.FindAllStringSubmatch(p.body, -1)
	var got []string
	for _, k := range kinds {
		got = append(got, k[1])
	}
	// Newest first: bob's second sign-in, his sign-out, his first sign-in,
	// his creation.
	if want := []string{activity.SignIn, activity.SignOut, activity.SignIn, activity.UserCreated}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bob's activity: got %v, want %v", got, want)
	}
	if !strings.Contains(p.body, "Android") {
		t.Errorf("bob's activity: no Android device; body:\n%s", p.body)
	}
}

var noticeTag = regexp.MustCompile(`id="security-notice"[^>]*data-notice="([a-z_]+)"`)

// A sign-in from a new device leaves a notice on the user's other
// browser's next page view, once; the new browser gets none.
func TestNewDeviceNotice(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r1, r2 := newTestApp(t, rs, withInstanceID("r1")), newTestApp(t, rs, withInstanceID("r2"))
	owner := newBrowser(t)
	r1.login(t, owner, false)
	if m := noticeTag.FindStringSubmatch(owner.get(r1.url("/")).body); m != nil {
		t.Fatalf("the first browser's own sign-in: got notice %q, want none", m[1])
	}
	stranger := newBrowser(t)
	r2.login(t, stranger, false)
	if m := noticeTag.FindStringSubmatch(stranger.get(r2.url("/")).body); m != nil {
		t.Errorf("the new browser: got notice %q, want none", m[1])
	}
	p := owner.get(r2.url("/sessions/"))
	if m := noticeTag.FindStringSubmatch(p.body); m == nil || m[1] != activity.SignIn {
		t.Errorf("the other browser's next page: got notice %v, want data-notice=sign_in; body:\n%s", m, p.body)
	}
	if !strings.Contains(p.body, `href="/security/#activity"`) {
		t.Errorf("the notice: no link to the activity list")
	}
	if m := noticeTag.FindStringSubmatch(owner.get(r1.url("/")).body); m != nil {
		t.Errorf("the page after: got notice %q again, want it shown once", m[1])
	}
}

// No event holds a token, code, secret or password: every stream, after
// logins by form and API, enrolment with a code, a recovery code's use
// and a password change.
func TestNoSecretInAnyEvent(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	r1, r2 := newTestApp(t, rs, withInstanceID("r1")), newTestApp(t, rs, withInstanceID("r2"))
	forbidden := map[string]string{"password": alicePassword, "new password": aliceNewPassword}
	b := newBrowser(t)
	forbidden["session token 1"] = r1.login(t, b, false)
	forbidden["bearer token"] = r1.apiLogin(t)
	firstStep := currentStep()
	ph, codes := r2.enrolTOTP(t, b)
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(ph.secret)
	if err != nil {
		t.Fatalf("secret %q: %v", ph.secret, err)
	}
	forbidden["TOTP secret"] = ph.secret
	forbidden["TOTP secret (lower)"] = strings.ToLower(ph.secret)
	forbidden["TOTP secret (hex)"] = hex.EncodeToString(raw)
	for i, c := range codes {
		forbidden[fmt.Sprintf("recovery code %d", i+1)] = c
		forbidden[fmt.Sprintf("recovery code %d (normalised)", i+1)] = strings.ReplaceAll(c, "-", "")
	}
	other := newBrowser(t)
	forbidden["pending login"] = r1.passwordStep(t, other)
	p := r1.secondStep(other, url.Values{"code": {codes[0]}, "recovery": {"1"}})
	if c := r1.sessionCookie(p); c != nil {
		forbidden["session token 2"] = c.Value
	}
	if p := b.post(r2.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword)); p.status != http.StatusSeeOther {
		t.Fatalf("POST /password/: got %d, want 303", p.status)
	}
	// Six-digit codes are compared whole: as substrings they could be in a
	// timestamp by chance.
	codesUsed := map[string]bool{}
	for s := firstStep - 1; s <= currentStep()+1; s++ {
		codesUsed[ph.codeOf(s)] = true
	}

	ctx := context.Background()
	streams := 0
	iter := r1.check.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if kind, _ := r1.check.Type(ctx, key).Result(); kind != "stream" {
			continue
		}
		streams++
		for _, e := range r1.streamEntries(t, key) {
			for field, v := range e {
				for what, s := range forbidden {
					if s != "" && strings.Contains(v, s) {
						t.Errorf("%s: field %s holds the %s (%q)", key, field, what, v)
					}
				}
				for _, word := range strings.Fields(v) {
					if codesUsed[word] {
						t.Errorf("%s: field %s holds a TOTP code (%q)", key, field, v)
					}
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	if streams < 2 {
		t.Fatalf("got %d streams, want alice's and the service-wide one", streams)
	}
}

// currentStep is the TOTP time step now.
func currentStep() int64 { return auth.TOTPStep(time.Now()) }
