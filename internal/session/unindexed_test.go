package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

// TestSessionsNoIndexKnowsEnd: a login stored by a version from before
// the per-user index (or by plain scs/redisstore) is in no index, so a
// password change, delete or "sign out everywhere" could not end it. Its
// next request ends it instead, whether or not the user still exists.
func TestSessionsNoIndexKnowsEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, userExists := range []bool{true, false} {
		t.Run(fmt.Sprintf("user exists %v", userExists), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := h.manager(Config{Lifetime: time.Hour, IdleTimeout: 30 * time.Minute})
			if userExists {
				h.addUser(t, "alice")
			}
			// What the service stored before it kept an index: the record
			// without expires_at, and no index entry.
			token := preIndexToken(t)
			now := time.Now().UTC()
			doc, err := m.codec.Encode(now.Add(time.Hour), map[string]any{
				fieldUsername: "alice",
				fieldLoginAt:  now.Format(time.RFC3339Nano),
			})
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			key := testkit.SessionKey(token)
			if err := h.raw.Set(ctx, key, doc, 30*time.Minute).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}

			req := load(t, m, token)
			if got := m.User(req); got != "" {
				t.Errorf("unindexed session: logged in as %q, want not logged in", got)
			}
			if c := save(t, m, req); c == nil || c.MaxAge >= 0 {
				t.Errorf("unindexed session: got cookie %v, want it cleared", c)
			}
			if h.exists(t, key) {
				t.Errorf("unindexed session: key %s still exists, want it deleted", key)
			}
			if got := h.index(t, "alice"); len(got) != 0 {
				t.Errorf("index of alice: got %v, want none", got)
			}
		})
	}
}

func preIndexToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
