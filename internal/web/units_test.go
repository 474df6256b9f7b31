package web

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"loginsvc/internal/session"
)

var safeNextCases = []struct {
	next, want string
}{
	// Paths on this site are kept.
	{"/", "/"},
	{"/account?x=1", "/account?x=1"},
	{"/account/settings#top", "/account/settings#top"},
	{"/a//b", "/a//b"},
	// Everything that could leave the site becomes "/".
	{"", "/"},
	{"https://evil", "/"},
	{"http://evil/path", "/"},
	{"//evil", "/"},
	{"///evil", "/"},
	{"/\\evil", "/"},
	{"\\\\evil", "/"},
	{"\\/evil", "/"},
	{"/%2F%2Fevil", "/"},
	{"/%2f/evil", "/"},
	{"/%5Cevil", "/"},
	{"/%5cevil", "/"},
	{"/%252F%252Fevil", "/"},
	{"%2F%2Fevil", "/"},
	{"/\tevil", "/"},
	{"/\t/evil", "/"},
	{"/%09/evil", "/"},
	{"/\n/evil", "/"},
	{"/\r\nSet-Cookie:x=y", "/"},
	{"/%0d%0aSet-Cookie:x=y", "/"},
	{"/\x00evil", "/"},
	{"javascript:alert(1)", "/"},
	{"JaVaScRiPt:alert(1)", "/"},
	{"data:text/html,<script>alert(1)</script>", "/"},
	{"evil.example", "/"},
	{" /account", "/"},
	{"/%zz", "/"},
	{"/" + strings.Repeat("a", 4096), "/"},
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for _, tc := range safeNextCases {
		if got := safeNext(tc.next); got != tc.want {
			t.Errorf("safeNext(%q): got %q, want %q", tc.next, got, tc.want)
		}
	}
}

// FuzzSafeNext checks that whatever safeNext returns is a path on this
// site: "/" or the input itself, starting with one slash, never "//" or
// "/\", with nothing a browser would strip or read as a slash, and no
// scheme, host or user info when parsed, before or after decoding.
func FuzzSafeNext(f *testing.F) {
	for _, tc := range safeNextCases {
		f.Add(tc.next)
	}
	base, err := url.Parse("https://site.example/login/")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: want %q or the input unchanged", next, got, "/")
		}
		if got == "/" {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("safeNext(%q) = %q: want a single leading slash", next, got)
		}
		if strings.ContainsAny(got, "\\\t\r\n\x00") {
			t.Fatalf("safeNext(%q) = %q: want no backslash or character a browser strips", next, got)
		}
		for _, s := range []string{got, unescapeAll(got)} {
			u, err := url.Parse(s)
			if err != nil {
				continue // a browser would not follow it anywhere else either
			}
			if u.Scheme != "" || u.Host != "" || u.User != nil {
				t.Fatalf("safeNext(%q) = %q: %q parses with scheme %q, host %q, user %v; want none", next, got, s, u.Scheme, u.Host, u.User)
			}
			if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
				t.Fatalf("safeNext(%q) = %q: resolves to %q, want a URL on %s", next, got, r, base.Host)
			}
		}
	})
}

// unescapeAll percent-decodes s until it stops changing (or cannot).
func unescapeAll(s string) string {
	for range 5 {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return s
		}
		s = d
	}
	return s
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	tokens := make([]string, 50)
	for i := range tokens {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		tokens[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	for _, tok := range tokens {
		if !session.ValidToken(tok) {
			t.Errorf("session.ValidToken(%q) = false for a token shaped like scs's, want true", tok)
		}
	}
	good := tokens[0]
	for _, tc := range []struct {
		name, token string
		want        bool
	}{
		{"all letters", strings.Repeat("a", 43), true},
		{"dash and underscore", strings.Repeat("-_", 21) + "A", true},
		{"empty", "", false},
		{"one short", good[:42], false},
		{"one long", good + "A", false},
		{"padded", good + "=", false},
		{"standard base64 plus", good[:42] + "+", false},
		{"standard base64 slash", good[:42] + "/", false},
		{"space", good[:42] + " ", false},
		{"dot", good[:42] + ".", false},
		{"NUL", good[:42] + "\x00", false},
		{"newline", good[:42] + "\n", false},
		{"non-ASCII letter", good[:41] + "é", false},
		{"high byte", good[:42] + "\xff", false},
		{"4 KB", strings.Repeat("A", 4096), false},
		{"hex of 32 bytes (64 chars)", strings.Repeat("ab", 32), false},
	} {
		if got := session.ValidToken(tc.token); got != tc.want {
			t.Errorf("%s: session.ValidToken(%q) = %v, want %v", tc.name, tc.token, got, tc.want)
		}
	}
}

// FuzzValidToken compares validToken with an independent oracle: a token is
// valid exactly when it is 43 characters that base64url-decode (unpadded) to
// 32 bytes. A valid token must also survive as a cookie value unchanged.
func FuzzValidToken(f *testing.F) {
	for _, s := range []string{
		"", strings.Repeat("A", 43), strings.Repeat("A", 42) + "=", strings.Repeat("A", 42) + "\n",
		strings.Repeat("A", 41) + "\r\n", "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg", strings.Repeat("+/", 21) + "A",
		"eyJ1c2VybmFtZSI6ImFsaWNlIn0", strings.Repeat("é", 21) + "A",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		want := len(s) == 43 && err == nil && len(raw) == 32
		if got := session.ValidToken(s); got != want {
			t.Fatalf("session.ValidToken(%q) = %v, want %v (decodes to %d bytes, err %v)", s, got, want, len(raw), err)
		}
		if !want {
			return
		}
		c := &http.Cookie{Name: testCookieName, Value: s}
		if got := c.String(); got != testCookieName+"="+s {
			t.Fatalf("valid token %q does not survive as a cookie: %q", s, got)
		}
	})
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string // X-Forwarded-For header lines
		want    string
	}{
		{"no proxies trusted: header ignored", nil, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer: header ignored", proxies, "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"untrusted peer claiming a trusted hop", proxies, "203.0.113.7:5000", []string{"10.0.0.9"}, "203.0.113.7"},
		{"trusted peer without header", proxies, "10.0.0.2:5000", nil, "10.0.0.2"},
		{"trusted peer: the client it saw", proxies, "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed leftmost entries ignored", proxies, "10.0.0.2:5000", []string{"6.6.6.6, 7.7.7.7, 198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted hop behind a proxy chain", proxies, "10.0.0.2:5000", []string{"6.6.6.6, 198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"header split over several lines", proxies, "10.0.0.2:5000", []string{"6.6.6.6", "198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"spaces around entries", proxies, "10.0.0.2:5000", []string{" 6.6.6.6 ,  198.51.100.1 "}, "198.51.100.1"},
		{"all hops trusted: the farthest one", proxies, "10.0.0.2:5000", []string{"10.0.0.5, 10.0.0.3"}, "10.0.0.5"},
		{"garbage hop: nearest vouched-for address", proxies, "10.0.0.2:5000", []string{"198.51.100.1, not-an-ip"}, "10.0.0.2"},
		{"garbage left of the client is not reached", proxies, "10.0.0.2:5000", []string{"not-an-ip, 198.51.100.1"}, "198.51.100.1"},
		{"garbage behind a trusted hop", proxies, "10.0.0.2:5000", []string{"junk, 10.0.0.3"}, "10.0.0.3"},
		{"IPv4-mapped trusted peer", proxies, "[::ffff:10.0.0.2]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped client", proxies, "10.0.0.2:5000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv6 proxy and client", proxies, "[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 untrusted peer", proxies, "[2001:db8::9]:5000", []string{"198.51.100.1"}, "2001:db8::9"},
		{"proxy writing address:port", proxies, "10.0.0.2:5000", []string{"198.51.100.1:51234"}, "198.51.100.1"},
		{"proxy writing [IPv6]:port", proxies, "10.0.0.2:5000", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &App{cfg: Config{TrustedProxies: tc.trusted}, log: slog.New(slog.DiscardHandler)}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := a.clientIP(r).String(); got != tc.want {
				t.Fatalf("clientIP(peer %s, X-Forwarded-For %q): got %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}
