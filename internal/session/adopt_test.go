package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"loginsvc/internal/testkit"
)

// TestSessionsNoIndexKnowsAreAdopted: a session stored by a version from
// before the per-user index (or by plain scs/redisstore) is in no index,
// so a password change or delete could not end it. On its next request it
// joins its user's index, once, and from then on is ended like any other;
// one whose user is gone ends instead.
func TestSessionsNoIndexKnowsAreAdopted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name       string
		userExists bool
	}{
		{"user exists: adopted into the index", true},
		{"user deleted: the session ends", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			m := h.manager(Config{Lifetime: time.Hour, IdleTimeout: 30 * time.Minute})
			if tt.userExists {
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
			got := m.User(req)
			save(t, m, req)

			if !tt.userExists {
				if got != "" {
					t.Fatalf("session of a deleted user: logged in as %q, want not logged in", got)
				}
				if h.exists(t, key) {
					t.Errorf("session of a deleted user: key %s still exists, want it deleted", key)
				}
				return
			}
			if got != "alice" {
				t.Fatalf("pre-index session: logged in as %q, want alice", got)
			}
			if _, ok := h.index(t, "alice")[testkit.TokenHash(token)]; !ok {
				t.Fatalf("after one request: index of alice is %v, want it to hold the session", h.index(t, "alice"))
			}
			n, err := m.RevokeAll(ctx, "alice", "")
			if err != nil || n != 1 {
				t.Fatalf("RevokeAll after adoption: got %d, %v; want 1, nil", n, err)
			}
			if u := userOf(t, m, token); u != "" {
				t.Errorf("after RevokeAll: token logged in as %q, want not logged in", u)
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
