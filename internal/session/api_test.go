package session

// API sessions: a token for scripts that is a session like a cookie's, in
// the same index, but that never loads as a cookie, as a cookie never
// loads as a token.

import (
	"context"
	"testing"
	"time"
)

// startAPI starts an API session of user and returns its token and record.
func startAPI(t *testing.T, m *Manager, user, stamp string) (string, Record) {
	t.Helper()
	token, rec, err := m.StartAPI(context.Background(), Login{User: user, Stamp: stamp, IP: "192.0.2.9", UserAgent: "curl/8.5.0"})
	if err != nil {
		t.Fatalf("StartAPI(%q): %v", user, err)
	}
	if !ValidToken(token) || !rec.API || rec.User != user {
		t.Fatalf("StartAPI(%q): got token %q, record %+v; want a token and an API record of %s", user, token, rec, user)
	}
	return token, rec
}

// bearerUser is who token is logged in as, sent as a bearer token.
func bearerUser(t *testing.T, m *Manager, token string) string {
	t.Helper()
	ctx, err := m.LoadToken(context.Background(), token)
	if err != nil {
		t.Fatalf("LoadToken: %v", err)
	}
	return m.User(ctx)
}

func TestAPISessionIsASessionThatNeverLoadsAsACookie(t *testing.T) {
	h := newHarness(t)
	m := h.manager(Config{IdleTimeout: 30 * time.Minute})
	stamp := h.addUser(t, "alice")
	apiToken, apiRec := startAPI(t, m, "alice", stamp)
	cookie, _ := login(t, m, "alice", stamp)

	for _, tc := range []struct {
		name       string
		user       func() string
		wantUser   string
		whyRefused string
	}{
		{"API token as a bearer token", func() string { return bearerUser(t, m, apiToken) }, "alice", ""},
		{"API token as a cookie", func() string { return userOf(t, m, apiToken) }, "", "a page must not ride a script's token"},
		{"API token among cookies", func() string { return m.User(loadAll(t, m, apiToken, newToken())) }, "", "a page must not ride a script's token"},
		{"browser cookie as a bearer token", func() string { return bearerUser(t, m, cookie) }, "", "a script must not ride a browser's cookie"},
		{"browser cookie as a cookie", func() string { return userOf(t, m, cookie) }, "alice", ""},
		{"malformed bearer token", func() string { return bearerUser(t, m, "not a token") }, "", "no such session"},
	} {
		if got := tc.user(); got != tc.wantUser {
			t.Errorf("%s: got user %q, want %q (%s)", tc.name, got, tc.wantUser, tc.whyRefused)
		}
	}

	// In the user's index beside the browser session, marked as an API
	// session, and revoked like any other.
	records := list(t, m, "alice")
	kinds := map[string]bool{}
	for _, r := range records {
		kinds[r.ID] = r.API
	}
	if len(records) != 2 || !kinds[apiRec.ID] {
		t.Fatalf("List(alice): got %+v, want the browser session and API session %s marked API", records, apiRec.ID)
	}
	if err := m.Revoke(context.Background(), "alice", apiRec.ID); err != nil {
		t.Fatalf("Revoke(API session): %v", err)
	}
	if got := bearerUser(t, m, apiToken); got != "" {
		t.Errorf("bearer token after Revoke: got user %q, want none", got)
	}
}

func TestAPISessionTouchIsStoredByFlush(t *testing.T) {
	h := newHarness(t)
	// A 10s idle timeout: a use is recorded at most once a second.
	m := h.manager(Config{IdleTimeout: 10 * time.Second})
	token, _ := startAPI(t, m, "alice", h.addUser(t, "alice"))
	key := "scs:session:" + hashOf(token)
	before := h.pexpireTime(t, key)

	time.Sleep(1100 * time.Millisecond)
	ctx, err := m.LoadToken(context.Background(), token)
	if err != nil {
		t.Fatalf("LoadToken: %v", err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if after := h.pexpireTime(t, key); after <= before {
		t.Errorf("idle deadline after a use past the touch interval: got %d, want later than %d", after, before)
	}
}

// loadAll is load of several cookies.
func loadAll(t *testing.T, m *Manager, tokens ...string) context.Context {
	t.Helper()
	ctx, err := m.Load(context.Background(), tokens...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return ctx
}

// COOKIE_DOMAIN: the cookie is sent to sibling subdomains, set and cleared
// with the same Domain.
func TestCookieDomain(t *testing.T) {
	h := newHarness(t)
	m := h.manager(Config{CookieName: "__Secure-session_id", CookieSecure: true, CookieDomain: "example.test"})
	token, _ := login(t, m, "alice", h.addUser(t, "alice"))
	ctx := load(t, m, token)
	if err := m.End(ctx); err != nil {
		t.Fatalf("End: %v", err)
	}
	cleared := save(t, m, ctx)
	if cleared == nil || cleared.Domain != "example.test" || cleared.MaxAge >= 0 {
		t.Errorf("logout cookie: got %+v, want one clearing the cookie for Domain example.test", cleared)
	}
	ctx = load(t, m, "")
	if err := m.Start(ctx, Login{User: "alice", Stamp: "$argon2id$stamp-of-alice"}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if c := save(t, m, ctx); c == nil || c.Domain != "example.test" || !c.Secure || !c.HttpOnly {
		t.Errorf("login cookie: got %+v, want Domain example.test, Secure, HttpOnly", c)
	}
}
