package web

// The login throttle as a client meets it: per account across replicas,
// per address, behind proxies, with Redis down, and what its answers
// give away about which accounts exist.

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/store"
	"loginsvc/internal/testkit"
)

// wantThrottled fails unless p is the throttle's answer: 429, no session
// cookie, and a Retry-After of whole seconds, at least 1 and at most the
// window, which it returns.
func (ta *testApp) wantThrottled(t *testing.T, what string, p page, window time.Duration) int {
	t.Helper()
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("%s: got status %d, want 429; body:\n%s", what, p.status, p.body)
	}
	if ta.sessionCookie(p) != nil {
		t.Fatalf("%s: got a session cookie, want none", what)
	}
	v := p.header.Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > int(window.Seconds()) {
		t.Fatalf("%s: got Retry-After %q, want whole seconds from 1 to %d", what, v, int(window.Seconds()))
	}
	return n
}

// pttl checks that key exists with a TTL no longer than window.
func (ta *testApp) pttl(t *testing.T, key string, window time.Duration) {
	t.Helper()
	d, err := ta.check.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	if d <= 0 || d > window {
		t.Errorf("PTTL %s: got %v, want > 0 and <= %v", key, d, window)
	}
}

// zcard is the number of failures the throttle counts under key.
func (ta *testApp) zcard(t *testing.T, key string) int64 {
	t.Helper()
	n, err := ta.check.ZCard(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("ZCARD %s: %v", key, err)
	}
	return n
}

// TestBruteForceAcrossReplicasIsCapped: 100 wrong passwords for alice from
// one address, alternating between two replicas on one Redis. The account
// limit is shared: exactly the first 10 are checked.
func TestBruteForceAcrossReplicasIsCapped(t *testing.T) {
	t.Parallel()
	const perUser, window = 10, 15 * time.Minute
	rs := redistest.Start(t)
	limits := auth.Limits{PerUser: perUser, PerIP: 50, Window: window}
	replicas := []*testApp{
		newTestApp(t, rs, withLimits(limits), withInstanceID("replica-a")),
		newTestApp(t, rs, withLimits(limits), withInstanceID("replica-b")),
	}
	wrong := formPost("/login/", url.Values{"username": {aliceName}, "password": {"not-alices-password"}})

	var refused, paused string // the bodies of the first 400 and 429
	for i := range 100 {
		ta := replicas[i%2]
		p := ta.send(t, wrong)
		what := "attempt " + strconv.Itoa(i+1) + " on " + p.header.Get("X-Served-By")
		if ta.sessionCookie(p) != nil {
			t.Fatalf("%s: got a session cookie, want none", what)
		}
		if i < perUser {
			if p.status != http.StatusBadRequest {
				t.Fatalf("%s: got status %d, want 400; body:\n%s", what, p.status, p.body)
			}
			if refused == "" {
				refused = p.body
			}
			continue
		}
		ta.wantThrottled(t, what, p, window)
		if paused == "" {
			paused = p.body
			wantPaused(t, what, p.body, "15 minutes")
		}
		if p.body != paused {
			t.Fatalf("%s: 429 body differs from the first 429's:\n%s\nfirst:\n%s", what, p.body, paused)
		}
	}

	// While throttled, the right password is not even checked.
	for _, ta := range replicas {
		p := ta.send(t, formPost("/login/", aliceForm(false)))
		what := "right password on " + p.header.Get("X-Served-By")
		ta.wantThrottled(t, what, p, window)
		if p.body != paused {
			t.Fatalf("%s: 429 body differs from the wrong password's 429:\n%s", what, p.body)
		}
	}

	userKey, ipKey := store.ThrottleUserKey(aliceName), store.ThrottleIPKey("127.0.0.1")
	for _, key := range []string{userKey, ipKey} {
		replicas[0].pttl(t, key, window)
		// Refused attempts are not recorded: only the 10 checked ones.
		if got := replicas[0].zcard(t, key); got != perUser {
			t.Errorf("ZCARD %s: got %d, want %d", key, got, perUser)
		}
	}
}

// TestBruteForceLockoutEndsWithTheWindow: once the window has passed the
// right password works, and it wipes the account's failures.
func TestBruteForceLockoutEndsWithTheWindow(t *testing.T) {
	t.Parallel()
	// The window is a sliding one: it must outlast the perUser argon2id
	// checks even on a busy machine (-race, other packages' tests), or
	// the first failure slides out before the right password is tried.
	const perUser, window = 3, 6 * time.Second
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser, PerIP: 100, Window: window}))
	wrong := formPost("/login/", url.Values{"username": {aliceName}, "password": {"not-alices-password"}})
	userKey := store.ThrottleUserKey(aliceName)

	for i := range perUser {
		if p := ta.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("wrong password %d: got status %d, want 400", i+1, p.status)
		}
	}
	p := ta.send(t, formPost("/login/", aliceForm(false)))
	t.Logf("throttled with Retry-After %d", ta.wantThrottled(t, "right password after "+strconv.Itoa(perUser)+" failures", p, window))
	ta.pttl(t, userKey, window)

	// Redis expires the counter by itself (PEXPIRE window).
	testkit.Eventually(t, userKey+" expired", window+testkit.WaitTimeout, func() (bool, string) {
		return !ta.exists(t, userKey), "it still exists"
	})

	// Two failures, then success: the success must wipe them, so that
	// perUser more failures are all checked (400), none throttled.
	for i := range 2 {
		if p := ta.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("after the window, wrong password %d: got status %d, want 400", i+1, p.status)
		}
	}
	ta.wantGreeting(t, ta.login(t, newBrowser(t), false), "Hello, alice")
	if ta.exists(t, userKey) {
		t.Fatalf("after a successful login: %s exists, want the account's failures reset", userKey)
	}
	for i := range perUser {
		if p := ta.send(t, wrong); p.status != http.StatusBadRequest {
			t.Fatalf("after the reset, wrong password %d: got status %d, want 400 (2 earlier failures must not count)", i+1, p.status)
		}
	}
}

// loginFrom posts a wrong password for username with the given
// X-Forwarded-For ("" for none).
func loginFrom(username, xff string) rawRequest {
	r := formPost("/login/", url.Values{"username": {username}, "password": {"spray-password-1"}})
	if xff != "" {
		r = r.with("X-Forwarded-For", xff)
	}
	return r
}

func TestThrottlePerIPStopsPasswordSpraying(t *testing.T) {
	t.Parallel()
	const perIP, window = 5, 15 * time.Minute
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: 10, PerIP: perIP, Window: window}))

	for i := range perIP {
		if p := ta.send(t, loginFrom("sprayed-"+strconv.Itoa(i), "")); p.status != http.StatusBadRequest {
			t.Fatalf("failure %d: got status %d, want 400", i+1, p.status)
		}
	}
	for _, tc := range []struct {
		name string
		req  rawRequest
	}{
		{"a sixth user", loginFrom("sprayed-next", "")},
		{"alice with the right password", formPost("/login/", aliceForm(false))},
	} {
		ta.wantThrottled(t, tc.name+" after "+strconv.Itoa(perIP)+" failures from one address", ta.send(t, tc.req), window)
	}
	if got := ta.zcard(t, store.ThrottleIPKey("127.0.0.1")); got != perIP {
		t.Errorf("ZCARD of the address: got %d, want %d", got, perIP)
	}
	// The refused attempts' per-account reservations were given back.
	for _, name := range []string{"sprayed-next", aliceName} {
		if key := store.ThrottleUserKey(name); ta.exists(t, key) {
			t.Errorf("%s exists after a refused attempt, want the reservation released", key)
		}
	}
}

func TestThrottleIgnoresXForwardedForFromUntrustedPeers(t *testing.T) {
	t.Parallel()
	const perIP = 5
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerIP: perIP}))

	for i := range perIP {
		p := ta.send(t, loginFrom("sprayed-"+strconv.Itoa(i), "203.0.113."+strconv.Itoa(i+1)))
		if p.status != http.StatusBadRequest {
			t.Fatalf("failure %d: got status %d, want 400", i+1, p.status)
		}
	}
	p := ta.send(t, loginFrom("sprayed-next", "203.0.113.99"))
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt with yet another fake X-Forwarded-For: got status %d, want 429", p.status)
	}
	if got := ta.zcard(t, store.ThrottleIPKey("127.0.0.1")); got != perIP {
		t.Errorf("ZCARD of the real peer's address: got %d, want %d", got, perIP)
	}
	keys, err := ta.check.Keys(context.Background(), "throttle:ip:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{store.ThrottleIPKey("127.0.0.1")}; !slices.Equal(keys, want) {
		t.Errorf("per-address keys: got %q, want only %q", keys, want)
	}
}

func TestThrottleKeyIsTheClientBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	const perIP = 5
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerIP: perIP}),
		withTrustedProxies(netip.MustParsePrefix("127.0.0.1/32")))
	const clientA, clientB = "198.51.100.1", "198.51.100.2"

	for i := range perIP {
		if p := ta.send(t, loginFrom("sprayed-"+strconv.Itoa(i), clientA)); p.status != http.StatusBadRequest {
			t.Fatalf("failure %d from %s: got status %d, want 400", i+1, clientA, p.status)
		}
	}
	for _, tc := range []struct {
		name, xff string
		want      int
	}{
		{"client A again", clientA, http.StatusTooManyRequests},
		{"client A with spoofed hops on the left", "6.6.6.6, 7.7.7.7, " + clientA, http.StatusTooManyRequests},
		{"client B has its own counter", clientB, http.StatusBadRequest},
		{"no header: the proxy itself", "", http.StatusBadRequest},
	} {
		if p := ta.send(t, loginFrom("sprayed-next", tc.xff)); p.status != tc.want {
			t.Errorf("%s (X-Forwarded-For %q): got status %d, want %d", tc.name, tc.xff, p.status, tc.want)
		}
	}
	for _, tc := range []struct {
		ip   string
		want int64
	}{{clientA, perIP}, {clientB, 1}, {"127.0.0.1", 1}, {"6.6.6.6", 0}, {"7.7.7.7", 0}} {
		if got := ta.zcard(t, store.ThrottleIPKey(tc.ip)); got != tc.want {
			t.Errorf("ZCARD %s: got %d, want %d", store.ThrottleIPKey(tc.ip), got, tc.want)
		}
	}
}

// TestThrottleFailsClosedWhenRedisIsDown: without Redis the failures
// cannot be counted, so no password is checked: 503, never 400 or 429.
func TestThrottleFailsClosedWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	ta := newTestApp(t, rs, withLimits(auth.Limits{PerUser: 1}))
	// alice is throttled, "bob" is not, before Redis goes away.
	if p := ta.send(t, loginFrom(aliceName, "")); p.status != http.StatusBadRequest {
		t.Fatalf("precondition: wrong password: got status %d, want 400", p.status)
	}
	if p := ta.send(t, formPost("/login/", aliceForm(false))); p.status != http.StatusTooManyRequests {
		t.Fatalf("precondition: right password while throttled: got status %d, want 429", p.status)
	}
	rs.Stop(t)

	for _, tc := range []struct {
		name string
		req  rawRequest
	}{
		{"right password of a throttled account", formPost("/login/", aliceForm(false))},
		{"wrong password of a throttled account", loginFrom(aliceName, "")},
		{"unthrottled name", loginFrom("bob", "")},
		{"malformed name (address counter only)", loginFrom("bad\x00name", "")},
	} {
		checkUnavailablePage(t, tc.name+", Redis down", ta.send(t, tc.req))
	}
}

// wantPaused fails unless body is a throttled page: it says attempts are
// paused for about minutes (not "Incorrect username or password.", which
// had a locked-out owner retype a right password for the whole window)
// and that a device used before can still sign in.
func wantPaused(t *testing.T, what, body, minutes string) {
	t.Helper()
	for _, want := range []string{"signing in is paused for about " + minutes, "A device you have signed in on before can usually still sign in"} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: 429 page lacks %q:\n%s", what, want, body)
		}
	}
	if strings.Contains(body, invalidLogin) {
		t.Errorf("%s: 429 page says %q, want the pause alone", what, invalidLogin)
	}
}

// TestEnumerationUnknownWrongAndThrottledLookTheSame: a refused login must
// not tell whether the account exists. The form echoes the username, so
// the answers are compared for ONE username and form: while the account
// does not exist, after it is created (wrong password), once throttled, and
// once throttled after the account is deleted again. Only the account's
// existence differs, so any difference between two 400s or two 429s is an
// oracle (a 429 says attempts are paused, the same for both).
func TestEnumerationUnknownWrongAndThrottledLookTheSame(t *testing.T) {
	t.Parallel()
	const perUser = 2
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser, PerIP: 100}))
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
	defer cancel()
	form := formPost("/login/", url.Values{"username": {"carol"}, "password": {"not-carols-password"}})

	unknown := ta.send(t, form) // failure 1, no such user
	if err := ta.auth.AddUser(ctx, "carol", "carols-real-password"); err != nil {
		t.Fatalf("AddUser(carol): %v", err)
	}
	wrong := ta.send(t, form)     // failure 2, user exists
	throttled := ta.send(t, form) // refused
	if _, err := ta.auth.DeleteUser(ctx, "carol"); err != nil {
		t.Fatalf("DeleteUser(carol): %v", err)
	}
	throttledUnknown := ta.send(t, form)

	for _, tc := range []struct {
		name string
		p    page
		want int
	}{
		{"unknown user", unknown, http.StatusBadRequest},
		{"wrong password", wrong, http.StatusBadRequest},
		{"throttled existing user", throttled, http.StatusTooManyRequests},
		{"throttled unknown user", throttledUnknown, http.StatusTooManyRequests},
	} {
		if tc.p.status != tc.want {
			t.Errorf("%s: got status %d, want %d", tc.name, tc.p.status, tc.want)
		}
		same := unknown
		if tc.want == http.StatusTooManyRequests {
			same = throttled
			wantPaused(t, tc.name, tc.p.body, "15 minutes")
		} else if !strings.Contains(tc.p.body, invalidLogin) {
			t.Errorf("%s: got body without %q", tc.name, invalidLogin)
		}
		if tc.p.body != same.body {
			t.Errorf("%s: body differs from the same status's for the other case:\n%s\nother:\n%s", tc.name, tc.p.body, same.body)
		}
		if got := tc.p.header.Values("Set-Cookie"); len(got) != 0 {
			t.Errorf("%s: got Set-Cookie %q, want none", tc.name, got)
		}
	}
	// An unknown name is throttled after the same number of failures as a
	// real one, so the 429 itself says nothing about existence.
	var statuses []int
	for range perUser + 1 {
		statuses = append(statuses, ta.send(t, formPost("/login/", url.Values{"username": {"never-existed"}, "password": {"x"}})).status)
	}
	if want := []int{400, 400, 429}; !slices.Equal(statuses, want) {
		t.Errorf("unknown name, %d failures: got statuses %v, want %v", perUser+1, statuses, want)
	}
}

// enumerationTimings logs in n times as an unknown user and n times as
// alice with a wrong password, interleaved, and returns each answer's time.
func enumerationTimings(tb testing.TB, send func(rawRequest) page, n int) (unknown, wrong []time.Duration) {
	tb.Helper()
	unknownForm := formPost("/login/", url.Values{"username": {"nobody-here"}, "password": {"a-wrong-password"}})
	wrongForm := formPost("/login/", url.Values{"username": {aliceName}, "password": {"a-wrong-password"}})
	for i := range n {
		for _, c := range []struct {
			req rawRequest
			out *[]time.Duration
		}{{unknownForm, &unknown}, {wrongForm, &wrong}} {
			start := time.Now()
			p := send(c.req)
			took := time.Since(start)
			if p.status != http.StatusBadRequest {
				tb.Fatalf("timing login %d: got status %d, want 400", i+1, p.status)
			}
			*c.out = append(*c.out, took)
		}
	}
	return unknown, wrong
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestEnumerationTimingFigures reports (it does not judge) how long an
// unknown user and a wrong password take: both should cost one argon2id
// comparison. Read the figures with -v.
func TestEnumerationTimingFigures(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: 1000, PerIP: 1000}))
	send := func(r rawRequest) page { return ta.send(t, r) }
	enumerationTimings(t, send, 2) // warm up pools and the hasher
	unknown, wrong := enumerationTimings(t, send, 30)
	mu, mw := median(unknown), median(wrong)
	t.Logf("median of 30: unknown user %v, wrong password %v (difference %v)", mu.Round(time.Microsecond), mw.Round(time.Microsecond), (mu - mw).Round(time.Microsecond))
}

// BenchmarkEnumerationTiming reports the median answer time of an unknown
// user and of a wrong password:
//
//	go test -run '^$' -bench EnumerationTiming -benchtime 30x ./internal/web
func BenchmarkEnumerationTiming(b *testing.B) {
	ta := newTestApp(b, redistest.Start(b), withLimits(auth.Limits{PerUser: 1 << 30, PerIP: 1 << 30}))
	send := func(r rawRequest) page { return ta.send(b, r) }
	enumerationTimings(b, send, 2)
	var unknown, wrong []time.Duration
	for b.Loop() {
		u, w := enumerationTimings(b, send, 1)
		unknown, wrong = append(unknown, u...), append(wrong, w...)
	}
	b.ReportMetric(float64(median(unknown).Microseconds())/1000, "unknown-median-ms")
	b.ReportMetric(float64(median(wrong).Microseconds())/1000, "wrong-median-ms")
}

// deviceCookieOf is the device cookie p set, or nil.
func deviceCookieOf(p page, secure bool) *http.Cookie {
	if secure {
		return cookieSet(p, "__Host-device")
	}
	return cookieSet(p, "device")
}

// A successful login gives the browser a device cookie: long-lived,
// HttpOnly, SameSite=Lax, Secure with the __Host- prefix behind TLS, and
// holding neither the session token nor the user's name.
func TestLoginSetsADeviceCookie(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	for _, secure := range []bool{false, true} {
		name := testCookieName
		if secure {
			name = "__Host-" + testCookieName
		}
		ta := newTestApp(t, rs, withCookie(name, secure))
		p := ta.send(t, formPost("/login/", aliceForm(false)))
		session, device := ta.sessionCookie(p), deviceCookieOf(p, secure)
		if p.status != http.StatusSeeOther || session == nil || device == nil {
			t.Fatalf("COOKIE_SECURE=%v: login got status %d, Set-Cookie %q; want 303 with a session and a device cookie", secure, p.status, p.header.Values("Set-Cookie"))
		}
		wantAge := int(auth.DeviceCookieLifetime.Seconds())
		if !device.HttpOnly || device.SameSite != http.SameSiteLaxMode || device.Secure != secure || device.Path != "/" || device.Domain != "" ||
			device.MaxAge < wantAge-60 || device.MaxAge > wantAge {
			t.Errorf("COOKIE_SECURE=%v: device cookie %s, want HttpOnly, SameSite=Lax, Secure=%v, Path=/, no Domain, Max-Age about %d", secure, device, secure, wantAge)
		}
		if strings.Contains(device.Value, session.Value) || strings.Contains(device.Value, aliceName) {
			t.Errorf("COOKIE_SECURE=%v: device cookie %q holds the session token or the user name", secure, device.Value)
		}
	}
}

// The attack: wrong passwords for alice from ten addresses lock
// her account, and a client without a device cookie stays refused even
// with the right password; alice's own browser, which logged in (and out)
// before, gets in. Its device cookie does nothing for another locked
// account.
func TestOwnersBrowserLogsInWhileAnAttackerKeepsTheAccountLocked(t *testing.T) {
	t.Parallel()
	const perUser, window = 10, 15 * time.Minute
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: perUser, PerIP: 50, Window: window}),
		withTrustedProxies(netip.MustParsePrefix("127.0.0.1/32")))
	ctx, cancel := context.WithTimeout(context.Background(), testkit.WaitTimeout)
	defer cancel()
	const bobPassword = "bobs-own-long-password"
	if err := ta.auth.AddUser(ctx, "bob", bobPassword); err != nil {
		t.Fatalf("AddUser(bob): %v", err)
	}

	owner := newBrowser(t)
	ta.login(t, owner, false) // yesterday: the browser becomes known
	if p := owner.post(ta.url("/logout/"), url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("owner's logout: got status %d, want 303", p.status)
	}

	for i := range perUser {
		for _, user := range []string{aliceName, "bob"} {
			p := ta.send(t, loginFrom(user, "198.51.100."+strconv.Itoa(i+1)))
			if p.status != http.StatusBadRequest {
				t.Fatalf("attacker's failure %d for %s: got status %d, want 400", i+1, user, p.status)
			}
		}
	}
	ta.wantThrottled(t, "alice's right password from a client without a device cookie", ta.send(t, formPost("/login/", aliceForm(false)).with("X-Forwarded-For", "192.0.2.50")), window)

	token := ta.login(t, owner, false)
	ta.wantGreeting(t, token, "Hello, "+aliceName)

	bobForm := url.Values{"username": {"bob"}, "password": {bobPassword}}
	p := owner.do(newRequest(t, http.MethodPost, ta.url("/login/"), bobForm))
	ta.wantThrottled(t, "bob's right password from alice's browser (alice's device cookie)", p, window)

	// The owner's browser can also change the password while the account
	// stays locked for everyone else: the current password is checked
	// under the device cookie's budget, as a login is.
	p = owner.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword))
	if p.status != http.StatusSeeOther {
		t.Fatalf("password change from the owner's browser during the lockout: got status %d, want 303; body:\n%s", p.status, p.body)
	}
}

// Every login attempt from one address counts, the successful ones too,
// against LOGIN_MAX_ATTEMPTS_PER_IP: past it, 429 with Retry-After.
func TestSuccessfulLoginsCountAgainstTheAddress(t *testing.T) {
	t.Parallel()
	const attempts, window = 3, 15 * time.Minute
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{AttemptsPerIP: attempts, Window: window}))
	for i := range attempts {
		if p := ta.send(t, formPost("/login/", aliceForm(false))); p.status != http.StatusSeeOther {
			t.Fatalf("login %d: got status %d, want 303", i+1, p.status)
		}
	}
	ta.wantThrottled(t, "a login past LOGIN_MAX_ATTEMPTS_PER_IP", ta.send(t, formPost("/login/", aliceForm(false))), window)
	ta.pttl(t, store.ThrottleIPAttemptsKey("127.0.0.1"), window)
}

// With the hashing queue full past its short wait, a login is answered at
// once with the 503 page and Retry-After, in the browser's language,
// instead of waiting its turn for seconds.
func TestFullHashingQueueAnswers503(t *testing.T) {
	t.Parallel()
	// Limits above the burst: each attempt reserves a failure slot of the
	// account and the address while it is checked.
	ta := newTestApp(t, redistest.Start(t), withHashing(1, time.Millisecond), withLimits(auth.Limits{PerUser: 100, PerIP: 100}))
	const clients = 12
	pages := make([]page, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			r := formPost("/login/", aliceForm(false))
			if i%2 == 1 {
				r = r.with("Accept-Language", "zh-CN")
			}
			pages[i] = ta.send(t, r)
		})
	}
	wg.Wait()
	busy := 0
	for i, p := range pages {
		switch p.status {
		case http.StatusSeeOther:
		case http.StatusServiceUnavailable:
			busy++
			if p.header.Get("Retry-After") == "" {
				t.Errorf("client %d: 503 without Retry-After", i)
			}
			checkNoGoErrorText(t, "503 for a full hashing queue", p.body)
			want := "Temporarily unavailable"
			if i%2 == 1 {
				want = ta.app.templates.locales.byCode["zh"].messages["error.unavailable.title"]
			}
			if !strings.Contains(p.body, want) {
				t.Errorf("client %d: 503 page lacks %q:\n%s", i, want, p.body)
			}
		default:
			t.Errorf("client %d: got status %d, want 303 or 503", i, p.status)
		}
	}
	if busy == 0 {
		t.Fatalf("%d concurrent logins with one hashing slot and a 1ms wait: no 503, want some", clients)
	}
}

// A throttled answer under a minute says "less than a minute", in the
// reader's language (您, the polite form, in Chinese), on the sign-in page
// and on the second step's code page alike.
func TestThrottledPagesSayHowLongInEachLanguage(t *testing.T) {
	t.Parallel()
	const window = 30 * time.Second
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: 1, PerIP: 1000, Window: window}))
	wrong := formPost("/login/", url.Values{"username": {aliceName}, "password": {"not-alices-password"}})
	if p := ta.send(t, wrong); p.status != http.StatusBadRequest {
		t.Fatalf("first wrong password: got %d, want 400", p.status)
	}
	for _, tc := range []struct{ lang, want string }{
		{"en", "signing in is paused for less than a minute"},
		{"zh-CN", "登录已暂停，不到 1 分钟即可再试。您以前登录过的设备通常仍可登录。"},
	} {
		p := ta.send(t, formPost("/login/", aliceForm(false)).with("Accept-Language", tc.lang))
		ta.wantThrottled(t, tc.lang, p, window)
		if !strings.Contains(p.body, tc.want) {
			t.Errorf("%s: 429 page lacks %q:\n%s", tc.lang, tc.want, p.body)
		}
	}
}

// The pause in minutes is Retry-After rounded up, and "less than a
// minute" below 60 s.
func TestPauseRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{{500 * time.Millisecond, 0}, {59 * time.Second, 0}, {59*time.Second + time.Millisecond, 1}, {60 * time.Second, 1}, {61 * time.Second, 2}, {14*time.Minute + 59*time.Second, 15}, {15 * time.Minute, 15}} {
		if got := pauseOf(&auth.ThrottledError{RetryAfter: tc.wait}, true).Minutes; got != tc.want {
			t.Errorf("pause of Retry-After %v: got %d minutes, want %d", tc.wait, got, tc.want)
		}
	}
	if pauseOf(auth.ErrInvalidCredentials, true) != nil {
		t.Errorf("pause of a wrong password: got one, want nil")
	}
}
