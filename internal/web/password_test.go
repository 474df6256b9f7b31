package web

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/auth"
	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

const aliceNewPassword = "a-brand-new-passphrase-for-alice"

// passwordForm is the form a browser posts to change alice's password.
func passwordForm(current, next, confirm string) url.Values {
	return url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {confirm}}
}

var passwordErrorTag = regexp.MustCompile(`id="password-error" data-error="([a-z]+)"`)

// passwordError is the form error a password page shows ("" for none).
func passwordError(body string) string {
	m := passwordErrorTag.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestPasswordPageStatesTheRule(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)

	p := b.get(ta.url("/password/"))
	if p.status != http.StatusOK {
		t.Fatalf("GET /password/: got status %d, want 200", p.status)
	}
	min := strconv.Itoa(auth.MinPasswordChars)
	if !strings.Contains(p.body, `data-min-chars="`+min+`"`) || !strings.Contains(p.body, min) {
		t.Errorf("GET /password/: got no stated minimum of %s characters; body:\n%s", min, p.body)
	}
	for _, field := range []struct{ name, autocomplete string }{
		{"current_password", "current-password"},
		{"new_password", "new-password"},
		{"confirm_password", "new-password"},
	} {
		if !hasInput(p.body, field.name, `type="password"`, `autocomplete="`+field.autocomplete+`"`) {
			t.Errorf("GET /password/: got no password input %s with autocomplete=%s; body:\n%s", field.name, field.autocomplete, p.body)
		}
	}
}

func TestPasswordChangeRefusals(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	token := ta.login(t, b, false)

	for _, tc := range []struct {
		name      string
		form      url.Values
		wantError string
	}{
		{"confirmation differs", passwordForm(alicePassword, aliceNewPassword, aliceNewPassword+"x"), "mismatch"},
		{"new password too short", passwordForm(alicePassword, "short-11chr", "short-11chr"), "weak"},
		{"new password too long", passwordForm(alicePassword, strings.Repeat("p", auth.MaxPasswordBytes+1), strings.Repeat("p", auth.MaxPasswordBytes+1)), "weak"},
		{"wrong current password", passwordForm("not-alices-password", aliceNewPassword, aliceNewPassword), "current"},
		{"no current password", passwordForm("", aliceNewPassword, aliceNewPassword), "current"},
		{"new password is the current one", passwordForm(alicePassword, alicePassword, alicePassword), "same"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post(ta.url("/password/"), tc.form)
			if p.status != http.StatusBadRequest {
				t.Fatalf("got status %d, want 400; body:\n%s", p.status, p.body)
			}
			if got := passwordError(p.body); got != tc.wantError {
				t.Errorf("got form error %q, want %q; body:\n%s", got, tc.wantError, p.body)
			}
			if strings.Contains(p.body, aliceNewPassword) || strings.Contains(p.body, alicePassword) {
				t.Errorf("got a page that repeats a password; body:\n%s", p.body)
			}
			if p.cookie != nil && p.cookie.Value != token {
				t.Errorf("got session cookie %v, want the token unchanged", p.cookie)
			}
		})
	}
	// Nothing changed: the same cookie, the old password.
	ta.wantGreeting(t, token, "Hello, alice")
	ta.login(t, newBrowser(t), false)
}

// A wrong current password counts as a failed login: after the limit the
// form answers 429 with Retry-After and the same message, even for the
// right password, and so does the login form from the same browser. The
// failures count against that browser's device cookie, as its failed
// logins would (see TestOwnersBrowserLogsInWhileAnAttackerKeepsTheAccountLocked).
func TestPasswordChangeIsThrottledLikeLogin(t *testing.T) {
	t.Parallel()
	const limit = 3
	ta := newTestApp(t, redistest.Start(t), withLimits(auth.Limits{PerUser: limit, PerIP: 1000}))
	b := newBrowser(t)
	ta.login(t, b, false)

	for i := range limit {
		p := b.post(ta.url("/password/"), passwordForm("wrong-guess-"+strconv.Itoa(i), aliceNewPassword, aliceNewPassword))
		if p.status != http.StatusBadRequest || passwordError(p.body) != "current" {
			t.Fatalf("wrong current password #%d: got status %d, error %q; want 400, current", i+1, p.status, passwordError(p.body))
		}
	}
	wrong := b.post(ta.url("/password/"), passwordForm("wrong-guess-again", aliceNewPassword, aliceNewPassword))
	right := b.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword))
	for _, tc := range []struct {
		name string
		p    page
	}{{"wrong password past the limit", wrong}, {"right password past the limit", right}} {
		if tc.p.status != http.StatusTooManyRequests {
			t.Errorf("%s: got status %d, want 429", tc.name, tc.p.status)
		}
		if s, err := strconv.Atoi(tc.p.header.Get("Retry-After")); err != nil || s <= 0 {
			t.Errorf("%s: got Retry-After %q, want a positive number of seconds", tc.name, tc.p.header.Get("Retry-After"))
		}
		if got := passwordError(tc.p.body); got != "current" {
			t.Errorf("%s: got form error %q, want the same %q as a wrong password", tc.name, got, "current")
		}
		// It says the check is paused, and for about how long; not that
		// another device would work: this one is signed in already.
		if want := "checking is paused for about 15 minutes"; !strings.Contains(tc.p.body, want) || strings.Contains(tc.p.body, "device you have signed in on") {
			t.Errorf("%s: got page without %q (or with the sign-in device line):\n%s", tc.name, want, tc.p.body)
		}
	}
	if p := b.post(ta.url("/login/"), aliceForm(false)); p.status != http.StatusTooManyRequests {
		t.Errorf("login from the same browser after the password form's failures: got status %d, want 429 (one throttle)", p.status)
	}
	// The password did not change.
	if err := ta.auth.Unlock(t.Context(), aliceName); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	ta.login(t, newBrowser(t), false)
}

func TestPasswordChangeEndsOtherSessionsAndRenewsThisOne(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	ta := newTestApp(t, rs)
	other := newTestApp(t, rs, withInstanceID("replica-b"))
	ta.addUser(t, bobName, bobPassword)
	me := newBrowser(t)
	old := ta.login(t, me, false)
	elsewhere := []string{ta.login(t, newBrowser(t), false), other.login(t, newBrowser(t), true)}
	bob := ta.loginAs(t, newBrowser(t), bobName, bobPassword, "")

	p := me.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword))
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/password/" {
		t.Fatalf("POST /password/: got %d to %q, want 303 to /password/; body:\n%s", p.status, p.header.Get("Location"), p.body)
	}
	if p.cookie == nil || p.cookie.Value == "" || p.cookie.Value == old {
		t.Fatalf("POST /password/: got session cookie %v, want a new token", p.cookie)
	}
	renewed := p.cookie.Value

	// This browser carries on under the new token; the old one, and every
	// other session of alice's, on either replica, is anonymous.
	ta.wantGreeting(t, renewed, "Hello, alice")
	ta.wantGreeting(t, old, "Hello")
	for _, token := range elsewhere {
		ta.wantGreeting(t, token, "Hello")
		other.wantGreeting(t, token, "Hello")
	}
	ta.wantGreeting(t, bob, "Hello, bob")

	p = me.get(ta.url("/password/"))
	wantFlash(t, "GET /password/ after the change", p, "password_changed", "2")
	if rows, _ := ta.sessionsOf(t, me); len(rows) != 1 {
		t.Errorf("sessions after the change: got %v, want only this one", rows)
	}

	// The new password logs in; the old one does not.
	ta.loginAs(t, newBrowser(t), aliceName, aliceNewPassword, "")
	if p := ta.send(t, formPost("/login/", aliceForm(false))); p.status != http.StatusBadRequest {
		t.Fatalf("login with the old password: got status %d, want 400", p.status)
	}
}

// redisMonitor is a MONITOR connection to a redis-server: it sees every
// command in the order the server executes them.
type redisMonitor struct {
	conn net.Conn
	r    *bufio.Reader
}

// monitorRedis starts MONITOR on a connection of its own to addr; commands
// executed after it returns are seen.
func monitorRedis(t *testing.T, addr string) *redisMonitor {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := &redisMonitor{conn: conn, r: bufio.NewReader(conn)}
	_ = conn.SetDeadline(time.Now().Add(testkit.WaitTimeout))
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatalf("MONITOR: %v", err)
	}
	if line, err := m.r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: got %q, %v; want +OK", line, err)
	}
	return m
}

// waitFor returns once the server has executed a command whose MONITOR
// line holds want (compared in lower case).
func (m *redisMonitor) waitFor(t *testing.T, want string) {
	t.Helper()
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			t.Fatalf("MONITOR: waiting for %s: %v", want, err)
		}
		if strings.Contains(strings.ToLower(line), want) {
			return
		}
	}
}

// An attacker holding alice's password and a session changes it while the
// operator resets it (`server user passwd`). The attacker's check of the
// current password has passed when the reset lands, and the attacker's
// write comes after it: the reset stands, the form answers 409 with the
// "changed elsewhere" message (never success), the attacker's session is
// over, and only the operator's password logs in.
//
// The interleaving is forced, not hoped for: MONITOR shows when the
// change has read alice's hash (its check is then under way), and with one
// hashing slot the reset's hash runs before the change can hash its new
// password, so the reset's write lands before the change's.
func TestPasswordChangeCheckedBeforeTheOperatorsResetLoses(t *testing.T) {
	t.Parallel()
	const operatorsPassword, attackersPassword = "the-operators-reset-passphrase", "the-attackers-new-passphrase"
	rs := redistest.Start(t)
	ta := newTestApp(t, rs, withHashing(1, time.Minute))
	attacker := newBrowser(t)
	token := ta.login(t, attacker, false)

	mon := monitorRedis(t, rs.Addr())
	req := newRequest(t, http.MethodPost, ta.url("/password/"), passwordForm(alicePassword, attackersPassword, attackersPassword))
	type result struct {
		p   page
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := fetch(attacker.client, req)
		done <- result{p, err}
	}()
	mon.waitFor(t, `"hgetall" "user:{alice}"`)
	// The operator's reset, on the same hashing slot (the CLI would be
	// another process; the slot only fixes the order).
	ended, err := ta.auth.SetPassword(t.Context(), aliceName, operatorsPassword)
	if err != nil {
		t.Fatalf("operator's SetPassword: %v", err)
	}
	if ended != 1 {
		t.Errorf("operator's SetPassword: got %d sessions ended, want the attacker's 1", ended)
	}

	var res result
	select {
	case res = <-done:
	case <-time.After(testkit.WaitTimeout):
		t.Fatalf("POST /password/: no answer within %v", testkit.WaitTimeout)
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	p := res.p
	if p.status != http.StatusConflict {
		t.Fatalf("POST /password/ checked before the reset: got status %d, want 409; body:\n%s", p.status, p.body)
	}
	if got := passwordError(p.body); got != "elsewhere" {
		t.Errorf("POST /password/: got form error %q, want %q; body:\n%s", got, "elsewhere", p.body)
	}
	if !strings.Contains(p.body, "changed somewhere else") || strings.Contains(p.body, "has been changed") {
		t.Errorf("POST /password/: got no message that the password changed elsewhere, or one of success; body:\n%s", p.body)
	}
	ta.wantGreeting(t, token, "Hello")
	if cur := attacker.get(ta.url("/password/")); cur.status == http.StatusOK {
		t.Errorf("GET /password/ from the attacker's browser after the refusal: got 200, want to be sent to log in")
	}

	// The operator's password logs in; the attacker's old and new ones do not.
	ta.loginAs(t, newBrowser(t), aliceName, operatorsPassword, "")
	for _, pw := range []string{alicePassword, attackersPassword} {
		if p := ta.send(t, formPost("/login/", url.Values{"username": {aliceName}, "password": {pw}})); p.status != http.StatusBadRequest {
			t.Errorf("login with %q: got status %d, want 400", pw, p.status)
		}
	}
}

// After a successful change the page it lands on says so and shows no
// form: an empty form under "your password has been changed" reads as an
// invitation to change it again. A later visit gets the form back.
func TestPasswordChangedPageShowsSuccessNotTheForm(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	for _, lang := range testLanguages {
		t.Run(lang.code, func(t *testing.T) {
			ta.addUser(t, "pw-"+lang.code, alicePassword)
			b := newBrowser(t)
			ta.loginAs(t, b, "pw-"+lang.code, alicePassword, "")
			p := b.post(ta.url("/password/"), passwordForm(alicePassword, aliceNewPassword, aliceNewPassword))
			if p.status != http.StatusSeeOther || p.header.Get("Location") != "/password/" {
				t.Fatalf("POST /password/: got %d to %q, want 303 to /password/", p.status, p.header.Get("Location"))
			}
			p = b.getIn(ta.url("/password/"), lang.acceptLanguage)
			wantFlash(t, "GET /password/ after the change", p, "password_changed", "0")
			if strings.Contains(p.body, `id="password-form"`) || hasInput(p.body, "current_password") {
				t.Errorf("GET /password/ after the change: got the form again, want the success state only; body:\n%s", p.body)
			}
			want := map[string]string{"en": "Password changed", "zh": "密码已修改"}[lang.code]
			if got := greeting(p.body); got != want || !strings.Contains(p.body, `<a href="/" class="button primary" id="password-done">`) {
				t.Errorf("GET /password/ after the change: got heading %q (and a Done link: %v), want %q with one; body:\n%s", got, strings.Contains(p.body, `id="password-done"`), want, p.body)
			}
			checkPageLanguage(t, "the changed page", p, lang.code, lang.html)

			// The flash is shown once: the next visit is the form.
			p = b.getIn(ta.url("/password/"), lang.acceptLanguage)
			if k, _ := flashOf(p.body); k != "" || !hasInput(p.body, "current_password") {
				t.Errorf("GET /password/ again: got flash %q, form %v; want no flash and the form", k, hasInput(p.body, "current_password"))
			}
		})
	}
}

// An error names the field it is about (aria-describedby) and puts the
// focus there, so a screen reader reads it with the field: the
// confirmation for a mismatch, the new password for a weak one.
func TestPasswordErrorIsTiedToItsField(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)
	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"mismatch", passwordForm(alicePassword, aliceNewPassword, aliceNewPassword+"x"), "confirm_password"},
		{"weak", passwordForm(alicePassword, "short", "short"), "new_password"},
		{"current", passwordForm("wrong-guess", aliceNewPassword, aliceNewPassword), "current_password"},
	} {
		p := b.post(ta.url("/password/"), tc.form)
		if !hasInput(p.body, tc.field, `aria-invalid="true"`, `aria-describedby="password-error`, "autofocus") {
			t.Errorf("%s: got no %s with aria-invalid, aria-describedby=password-error and autofocus; body:\n%s", tc.name, tc.field, p.body)
		}
	}
}
