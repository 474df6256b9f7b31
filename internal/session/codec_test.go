package session

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func TestJSONCodecRoundTripKeepsValuesAndDeadline(t *testing.T) {
	t.Parallel()
	loginAt := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	tests := []struct {
		name   string
		values map[string]any
		want   map[string]any
	}{
		{
			name: "login fields",
			values: map[string]any{
				fieldUsername:  "alice",
				fieldLoginAt:   loginAt,
				fieldLoginIP:   "203.0.113.7",
				fieldUserAgent: "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" <b>",
				"flash":        "Wïllkommen zurück",
			},
			want: map[string]any{
				fieldUsername:  "alice",
				fieldLoginAt:   loginAt,
				fieldLoginIP:   "203.0.113.7",
				fieldUserAgent: "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" <b>",
				"flash":        "Wïllkommen zurück",
			},
		},
		{name: "nil values", values: nil, want: map[string]any{}},
		{name: "empty values", values: map[string]any{}, want: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codec := JSONCodec{Lifetime: 12 * time.Hour}
			// Local zone and nanoseconds: both must survive.
			deadline := time.Now().Add(time.Hour)

			b, err := codec.Encode(deadline, tt.values)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			gotDeadline, gotValues, err := codec.Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !gotDeadline.Equal(deadline) {
				t.Errorf("deadline: got %v, want %v", gotDeadline, deadline)
			}
			if !reflect.DeepEqual(gotValues, tt.want) {
				t.Errorf("values: got %#v, want %#v", gotValues, tt.want)
			}
		})
	}
}

func TestJSONCodecStoresReadableJSON(t *testing.T) {
	t.Parallel()
	deadline := time.Date(2026, 11, 25, 19, 0, 0, 0, time.FixedZone("CET", 3600))
	b, err := JSONCodec{}.Encode(deadline, map[string]any{
		fieldUsername:  "alice",
		fieldLoginAt:   "2026-11-25T07:00:00Z",
		fieldLoginIP:   "203.0.113.7",
		fieldUserAgent: "curl/8.5.0",
	})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}

	// What `redis-cli GET` shows is these bytes: a JSON document with the
	// deadline in UTC and every value readable as a string.
	var doc struct {
		Deadline string            `json:"deadline"`
		Values   map[string]string `json:"values"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("stored bytes are not the documented JSON: %v\n%s", err, b)
	}
	if want := "2026-11-25T18:00:00Z"; doc.Deadline != want {
		t.Errorf("deadline: got %q, want %q", doc.Deadline, want)
	}
	want := map[string]string{
		"username":   "alice",
		"login_at":   "2026-11-25T07:00:00Z",
		"login_ip":   "203.0.113.7",
		"user_agent": "curl/8.5.0",
	}
	if !reflect.DeepEqual(doc.Values, want) {
		t.Errorf("values: got %v, want %v", doc.Values, want)
	}
	if !strings.Contains(string(b), `"username":"alice"`) {
		t.Errorf("stored bytes %s: want the username readable as \"username\":\"alice\"", b)
	}
}

func TestJSONCodecDecodeRejects(t *testing.T) {
	t.Parallel()
	const valid = `{"deadline":"2030-01-01T00:00:00Z","values":{"username":"alice"}}`
	gob, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{"username": "alice"})
	if err != nil {
		t.Fatalf("gob Encode: %v", err)
	}
	tests := []struct {
		name  string
		input string
	}{
		{"empty", ""},
		{"garbage", "not a session"},
		{"gob from scs's default codec", string(gob)},
		{"JSON null", "null"},
		{"JSON array", `[1,2]`},
		{"JSON string", `"session"`},
		{"truncated", valid[:len(valid)-3]},
		{"trailing word", valid + " x"},
		{"trailing document", valid + valid},
		{"trailing empty object", valid + "{}"},
		{"trailing closing brace", valid + "}"},
		{"trailing closing bracket", valid + "]"},
		{"no deadline", `{"values":{"username":"alice"}}`},
		{"null deadline", `{"deadline":null,"values":{}}`},
		{"zero deadline", `{"deadline":"0001-01-01T00:00:00Z","values":{}}`},
		{"deadline not a time", `{"deadline":"tomorrow","values":{}}`},
		{"deadline a number", `{"deadline":1893456000,"values":{}}`},
		{"values not an object", `{"deadline":"2030-01-01T00:00:00Z","values":["alice"]}`},
		{"over 64 KiB", paddedDoc(64<<10 + 1)},
		{"a megabyte", paddedDoc(1 << 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			deadline, values, err := JSONCodec{Lifetime: time.Hour}.Decode([]byte(tt.input))
			if err == nil {
				t.Errorf("Decode(%.80q): got deadline %v, values %v, no error; want an error", tt.input, deadline, values)
			}
		})
	}
}

func TestJSONCodecDecodeAcceptsUpTo64KiB(t *testing.T) {
	t.Parallel()
	doc := paddedDoc(64 << 10)
	if len(doc) != 64<<10 {
		t.Fatalf("test document is %d bytes, want %d", len(doc), 64<<10)
	}
	if _, _, err := (JSONCodec{}).Decode([]byte(doc)); err != nil {
		t.Errorf("Decode of a %d-byte session: got %v, want no error", len(doc), err)
	}
}

// paddedDoc returns a valid session document of exactly size bytes.
func paddedDoc(size int) string {
	const head, tail = `{"deadline":"2030-01-01T00:00:00Z","values":{"pad":"`, `"}}`
	return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
}

func TestJSONCodecClampsToAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	loginAt := now.Add(-30 * time.Minute)
	withLogin := map[string]any{
		fieldUsername: "alice",
		fieldLoginAt:  loginAt.Format(time.RFC3339Nano),
	}
	// A login made while the lifetime was an hour.
	endsAt := loginAt.Add(time.Hour)
	withEnd := map[string]any{
		fieldUsername:  "alice",
		fieldLoginAt:   loginAt.Format(time.RFC3339Nano),
		fieldExpiresAt: endsAt.Format(time.RFC3339Nano),
	}
	tests := []struct {
		name     string
		lifetime time.Duration
		values   map[string]any
		deadline time.Time
		want     time.Time
	}{
		{
			name:     "deadline past login_at+Lifetime is clamped",
			lifetime: time.Hour,
			values:   withLogin,
			deadline: now.Add(24 * time.Hour),
			want:     loginAt.Add(time.Hour),
		},
		{
			name:     "deadline before login_at+Lifetime is kept",
			lifetime: time.Hour,
			values:   withLogin,
			deadline: now.Add(10 * time.Minute),
			want:     now.Add(10 * time.Minute),
		},
		{
			name:     "login_at in RFC 3339 without fractions",
			lifetime: time.Hour,
			values:   map[string]any{fieldLoginAt: loginAt.Truncate(time.Second).Format(time.RFC3339)},
			deadline: now.Add(24 * time.Hour),
			want:     loginAt.Truncate(time.Second).Add(time.Hour),
		},
		{
			name:     "no login_at: no clamp",
			lifetime: time.Hour,
			values:   map[string]any{fieldUsername: "alice"},
			deadline: now.Add(24 * time.Hour),
			want:     now.Add(24 * time.Hour),
		},
		{
			name:     "unreadable login_at: no clamp",
			lifetime: time.Hour,
			values:   map[string]any{fieldLoginAt: "half past ten"},
			deadline: now.Add(24 * time.Hour),
			want:     now.Add(24 * time.Hour),
		},
		{
			name:     "Lifetime grew since login: expires_at still holds",
			lifetime: 24 * time.Hour,
			values:   withEnd,
			deadline: now.Add(24 * time.Hour),
			want:     endsAt,
		},
		{
			name:     "Lifetime shrank since login: the shorter one holds",
			lifetime: 45 * time.Minute,
			values:   withEnd,
			deadline: now.Add(24 * time.Hour),
			want:     loginAt.Add(45 * time.Minute),
		},
		{
			name:     "deadline before expires_at is kept",
			lifetime: 24 * time.Hour,
			values:   withEnd,
			deadline: now.Add(10 * time.Minute),
			want:     now.Add(10 * time.Minute),
		},
		{
			name:     "expires_at holds with zero Lifetime",
			lifetime: 0,
			values:   map[string]any{fieldExpiresAt: endsAt.Format(time.RFC3339Nano)},
			deadline: now.Add(24 * time.Hour),
			want:     endsAt,
		},
		{
			name:     "unreadable expires_at: only the lifetime clamps",
			lifetime: 24 * time.Hour,
			values:   map[string]any{fieldLoginAt: loginAt.Format(time.RFC3339Nano), fieldExpiresAt: "tomorrow"},
			deadline: now.Add(48 * time.Hour),
			want:     loginAt.Add(24 * time.Hour),
		},
		{
			name:     "zero Lifetime: no clamp",
			lifetime: 0,
			values:   withLogin,
			deadline: now.Add(24 * time.Hour),
			want:     now.Add(24 * time.Hour),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			codec := JSONCodec{Lifetime: tt.lifetime}
			plain := JSONCodec{}

			t.Run("Encode", func(t *testing.T) {
				b, err := codec.Encode(tt.deadline, tt.values)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				stored, _, err := plain.Decode(b)
				if err != nil {
					t.Fatalf("Decode(%s): %v", b, err)
				}
				if !stored.Equal(tt.want) {
					t.Errorf("stored deadline: got %v, want %v", stored, tt.want)
				}
			})
			t.Run("Decode", func(t *testing.T) {
				b, err := plain.Encode(tt.deadline, tt.values)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				got, _, err := codec.Decode(b)
				if err != nil {
					t.Fatalf("Decode(%s): %v", b, err)
				}
				if !got.Equal(tt.want) {
					t.Errorf("decoded deadline: got %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// is a session the service can save again unchanged.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"deadline":"2030-01-01T00:00:00Z","values":{"username":"alice","login_at":"2029-12-31T23:30:00Z"}}`,
		`{"deadline":"2030-01-01T00:00:00.123456789+05:30","values":null}`,
		`{"deadline":"2030-01-01T00:00:00Z","values":{"n":1.5e300,"neg":-0,"list":[1,"a",null,true],"obj":{"k":"\u00e9\ud83d\ude00"}}}`,
		`{"deadline":"2030-01-01T00:00:00Z","values":{}} {}`,
		`{"deadline":"2030-01-01T00:00:00Z","values":{"login_at":"2029-12-31T23:30:00Z","expires_at":"2029-12-31T23:45:00Z"}}`,
		`{"deadline":"2030-01-01T00:00:00Z","values":{"expires_at":"0001-01-01T00:30:00+01:00"}}`,
		`{"deadline":"2030-01-01T00:00:00Z","values":{"expires_at":17}}`,
		`{"values":{}}`,
		`not json`,
		``,
	} {
		f.Add([]byte(seed))
	}
	codec := JSONCodec{Lifetime: time.Hour}
	f.Fuzz(func(t *testing.T, b []byte) {
		deadline, values, err := codec.Decode(b)
		if err != nil {
			return
		}
		if deadline.IsZero() || values == nil {
			t.Fatalf("Decode(%q) = %v, %v, nil: want a deadline and a values map", b, deadline, values)
		}
		again, err := codec.Encode(deadline, values)
		if err != nil {
			t.Fatalf("Decode(%q) accepted the session, but Encode of the result failed: %v", b, err)
		}
		deadline2, values2, err := codec.Decode(again)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%q))) = %v; want no error (re-encoded: %s)", b, err, again)
		}
		if !deadline2.Equal(deadline) {
			t.Errorf("deadline after re-encoding: got %v, want %v", deadline2, deadline)
		}
		if !reflect.DeepEqual(values2, values) {
			t.Errorf("values after re-encoding: got %#v, want %#v", values2, values)
		}
	})
}

// The memo's decoded documents are shared: each Decode hands out a map of
// its own, so a request's Put never shows in another request's session.
func TestDecodeMemoHandsOutCopies(t *testing.T) {
	c := JSONCodec{Lifetime: time.Hour, memo: newDocMemo()}
	b, err := c.Encode(time.Now().Add(time.Minute), map[string]any{fieldUsername: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	_, first, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	first[fieldUsername] = "mallory"
	_, second, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := second[fieldUsername]; got != "alice" {
		t.Errorf("username after another decode's map was changed: got %v, want alice", got)
	}
}
