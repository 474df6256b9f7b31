package web

import "testing"

// TestSafeReturnRefusesOpenRedirects is the checklist of oauth2-proxy's
// rd= bypasses (CVE-2020-5233, CVE-2021-21291) and their relatives,
// against a login that may return to this site's paths, to
// app.example.com (any default port) and to wiki.example.com:8443 only.
// The request reached login.example.com.
func TestSafeReturnRefusesOpenRedirects(t *testing.T) {
	hosts := newReturnHosts("app.example.com", "wiki.example.com:8443", "xn--bcher-kva.example")
	const own = "login.example.com"
	for _, tc := range []struct {
		next string
		want string // "" means next itself
	}{
		// Kept.
		{"/", ""},
		{"/sessions/?tab=1", ""},
		{"https://app.example.com/", ""},
		{"https://app.example.com", ""},
		{"http://app.example.com/path?q=1#frag", ""},
		{"https://APP.example.com/x", ""},
		{"https://app.example.com:443/x", ""},
		{"https://wiki.example.com:8443/page", ""},
		{"https://login.example.com/back", ""},
		{"https://xn--bcher-kva.example/", ""},
		{"https://app.example.com?next=https://evil.com", ""},
		// Not an allowed host, or not exactly.
		{"https://evil.com/", "/"},
		{"https://app.example.com.evil.com/", "/"},
		{"https://evilapp.example.com/", "/"},
		{"https://example.com/", "/"},
		{"https://evil.com#app.example.com", "/"},
		{"https://evil.com?.app.example.com", "/"},
		{"https://evil.com/app.example.com", "/"},
		{"https://evil.com\\.app.example.com", "/"},
		{"https://app.example.com./", "/"},
		{"https://app.example.com:8080/", "/"},
		{"http://app.example.com:443/", "/"},
		{"https://wiki.example.com/", "/"},
		{"https://wiki.example.com:8444/", "/"},
		{"https://login.example.com:8443/", "/"},
		// Userinfo: the host is what follows the @.
		{"https://app.example.com@evil.com/", "/"},
		{"https://app.example.com:443@evil.com/", "/"},
		{"https://app.example.com%40evil.com/", "/"},
		{"https://app.example.com%2f@evil.com/", "/"},
		{"https://user:pass@app.example.com/", "/"},
		// Backslashes, which browsers read as slashes.
		{"https:\\\\evil.com", "/"},
		{"https:/\\evil.com", "/"},
		{"/\\evil.com", "/"},
		{"\\\\evil.com", "/"},
		{"https://app.example.com\\@evil.com", "/"},
		// Scheme-relative and slashes in all their encodings.
		{"//evil.com", "/"},
		{"///evil.com", "/"},
		{"//app.example.com", "/"},
		{"/%2f%2fevil.com", "/"},
		{"/%2F/evil.com", "/"},
		{"%2f%2fevil.com", "/"},
		{"/%252f%252fevil.com", "/"},
		{"/%5cevil.com", "/"},
		{"https://app.example.com//evil.com", "/"},
		{"https://app.example.com/%2f%2fevil.com", "/"},
		{"https:evil.com", "/"},
		{"https:/evil.com", "/"},
		// Tabs, newlines and other controls browsers strip out of URLs.
		{"/\t/evil.com", "/"},
		{"/\n/evil.com", "/"},
		{"https://app.example.com\t.evil.com/", "/"},
		{"ht\ttps://evil.com", "/"},
		{" https://app.example.com/", "/"},
		{"/%09/evil.com", "/"},
		{"/%0d%0aLocation:%20https://evil.com", "/"},
		// Other schemes.
		{"javascript:alert(1)", "/"},
		{"JaVaScRiPt:alert(1)", "/"},
		{"java\tscript:alert(1)", "/"},
		{"data:text/html,<script>alert(1)</script>", "/"},
		{"ftp://app.example.com/", "/"},
		{"https//app.example.com", "/"},
		// Look-alike (IDN) hosts, and percent-encoded hosts.
		{"https://аpp.example.com/", "/"}, // Cyrillic а
		{"https://app.exаmple.com/", "/"},
		{"https://bücher.example/", "/"},
		{"https://app%2eexample.com/", "/"},
		{"https://%61pp.example.com/", "/"},
		{"https://app.example.com%00.evil.com/", "/"},
		// Empty and odd.
		{"", "/"},
		{"https://", "/"},
		{"https:///path", "/"},
		{"https://[::1/", "/"},
	} {
		want := tc.want
		if want == "" {
			want = tc.next
		}
		if got := safeReturn(tc.next, hosts, own, false); got != want {
			t.Errorf("safeReturn(%q): got %q, want %q", tc.next, got, want)
		}
	}

	// Behind TLS the login never sends the browser to plain http.
	if got := safeReturn("http://app.example.com/", hosts, own, true); got != "/" {
		t.Errorf("safeReturn(http URL) with COOKIE_SECURE: got %q, want %q", got, "/")
	}
	if got := safeReturn("https://app.example.com/", hosts, own, true); got != "https://app.example.com/" {
		t.Errorf("safeReturn(https URL) with COOKIE_SECURE: got %q, want it kept", got)
	}
}
