package web

import (
	"net/http"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// The tests in this file use short real durations. They do not call
// t.Parallel, so they run before the parallel tests start and are not
// starved of CPU by argon2id hashing elsewhere in the package.
//

// Every check below follows from when requests were sent and answered, not
// from how fast the server is: a session saved by a request sent at S with
// idle timeout I lives at least until S+I, and at most until the answer to
// the last request that saved it plus I.

func TestIdleTimeout(t *testing.T) {
	const idle = time.Second
	const every = 300 * time.Millisecond
	ta := newTestApp(t, redistest.Start(t), withLifetime(time.Minute), withIdleTimeout(idle))
	token := ta.login(t, newBrowser(t), false)
	// The login's own save happened after a slow password check, at an
	// instant the test cannot see; this request re-saves at a known one.
	prevSent := time.Now()
	ta.wantGreeting(t, token, "Hello, alice")
	lastAnswer := time.Now()

	// Used every 300ms, the session outlives its idle timeout twice over.
	start := time.Now()
	for time.Since(start) < 2*idle+every {
		time.Sleep(every)
		sent := time.Now()
		p := replay(t, http.MethodGet, ta.url("/"), token)
		lastAnswer = time.Now()
		if gap := lastAnswer.Sub(prevSent); gap >= idle {
			t.Fatalf("could not use the session every %v: %v passed between sending one request and the answer to the next, want < idle %v", every, gap, idle)
		}
		if got := greeting(p.body); got != "Hello, alice" {
			t.Fatalf("%v after login, used every %v: got greeting %q, want %q", sent.Sub(start), every, got, "Hello, alice")
		}
		prevSent = sent
	}
	t.Logf("still logged in after %v of use every %v (idle timeout %v)", time.Since(start).Round(time.Millisecond), every, idle)

	// Left alone for longer than the idle timeout, it is gone.
	time.Sleep(idle + idle/2 - time.Since(lastAnswer))
	ta.wantGreeting(t, token, "Hello")
	if ta.exists(t, testkit.SessionKey(token)) {
		t.Fatalf("after %v idle: key %s exists, want it expired", idle+idle/2, testkit.SessionKey(token))
	}
}

func TestAbsoluteLifetimeEndsASessionInUse(t *testing.T) {
	const lifetime = 2 * time.Second
	for _, tc := range []struct {
		name string
		idle time.Duration
	}{
		{"without idle timeout", 0},
		{"with idle timeout longer than the lifetime", time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := newTestApp(t, redistest.Start(t), withLifetime(lifetime), withIdleTimeout(tc.idle))
			loginSent := time.Now()
			token := ta.login(t, newBrowser(t), false)
			loginAnswered := time.Now()

			// The session starts between loginSent and loginAnswered, so it
			// must be alive for every request answered before
			// loginSent+lifetime and dead for every request sent after
			// loginAnswered+lifetime.
			var firstOut time.Time
			for {
				sent := time.Now()
				if sent.After(loginAnswered.Add(lifetime + 500*time.Millisecond)) {
					break
				}
				p := replay(t, http.MethodGet, ta.url("/"), token)
				answered := time.Now()
				got := greeting(p.body)
				switch {
				case got != "Hello, alice" && got != "Hello":
					t.Fatalf("at %v: got status %d, body:\n%s", sent.Sub(loginSent), p.status, p.body)
				case got == "Hello" && firstOut.IsZero():
					firstOut = sent
				case got == "Hello, alice" && !firstOut.IsZero():
					t.Fatalf("at %v: logged in again, after being logged out at %v", sent.Sub(loginSent), firstOut.Sub(loginSent))
				}
				if got == "Hello" && answered.Before(loginSent.Add(lifetime)) {
					t.Fatalf("request answered %v after login: got logged out, want alive until the lifetime %v", answered.Sub(loginSent), lifetime)
				}
				if got == "Hello, alice" && sent.After(loginAnswered.Add(lifetime)) {
					t.Fatalf("request sent %v after login: got logged in, want the session ended by its lifetime %v", sent.Sub(loginSent), lifetime)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if firstOut.IsZero() {
				t.Fatalf("got the session alive while in use until the end, want it ended by its lifetime %v", lifetime)
			}
			t.Logf("lifetime %v: first logged-out request sent %v after the login", lifetime, firstOut.Sub(loginSent).Round(time.Millisecond))
			if ta.exists(t, testkit.SessionKey(token)) {
				t.Fatalf("past the lifetime: key %s exists, want it gone", testkit.SessionKey(token))
			}
		})
	}
}
