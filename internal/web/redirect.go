package web

import (
	"net/netip"
	"net/url"
	"strings"
)

// safeNext returns next if it is a path on this site, else "/". Absolute
// URLs, scheme-relative "//host", backslashes (which browsers read as
// slashes), control characters and their percent-encoded forms all fall
// back to "/", so the login form cannot be used as an open redirect.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return "/"
	}
	decoded := next
	// Decode repeatedly so "%252F%252F" cannot hide a second slash.
	for range 3 {
		d, err := url.PathUnescape(decoded)
		if err != nil {
			return "/"
		}
		if d == decoded {
			break
		}
		decoded = d
	}
	for _, s := range []string{next, decoded} {
		if strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\x00\r\n\t") {
			return "/"
		}
		for _, c := range s {
			if c < 0x20 || c == 0x7f {
				return "/"
			}
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// returnHosts are the hosts a login may send the browser back to besides
// this site's own paths: AUTH_ALLOWED_HOSTS and the host of the login URL.
// Each entry is a lower-case host name (or IP literal) alone, which matches
// that host on the scheme's default port only, or host:port, which matches
// that port only: another port on the same host can be another program.
type returnHosts map[string]bool

// newReturnHosts normalises the configured entries.
func newReturnHosts(entries ...string) returnHosts {
	h := returnHosts{}
	for _, e := range entries {
		if e = strings.ToLower(strings.TrimSpace(e)); e != "" {
			h[e] = true
		}
	}
	return h
}

// safeReturn is safeNext for a return target that may also be an absolute
// URL: next is kept when it is a path on this site, or an http(s) URL
// whose host is in hosts or is own (the host this request reached; with
// httpsOnly, https only). Anything else is "/". It refuses every shape in
// the history of oauth2-proxy's rd= bypasses (CVE-2020-5233,
// CVE-2021-21291): backslashes, "//" and "/\" hosts, userinfo ("@"),
// percent-encoding in the host, whitespace and control characters,
// javascript: and other schemes, a host that merely starts or ends with an
// allowed one ("allowed.com.evil.com", "evil.com#allowed.com",
// "evil.com?.allowed.com"), and non-ASCII (IDN) hosts, which must be
// listed in their xn-- form to be allowed at all.
func safeReturn(next string, hosts returnHosts, own string, httpsOnly bool) string {
	if strings.HasPrefix(next, "/") {
		return safeNext(next)
	}
	if absoluteAllowed(next, hosts, strings.ToLower(own), httpsOnly) {
		return next
	}
	return "/"
}

func absoluteAllowed(next string, hosts returnHosts, own string, httpsOnly bool) bool {
	if next == "" || len(next) > 2048 {
		return false
	}
	for i := 0; i < len(next); i++ {
		// Controls, spaces, DEL and every non-ASCII byte: browsers strip or
		// reinterpret them, and a look-alike host is non-ASCII.
		if c := next[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	scheme, rest, ok := strings.Cut(next, "://")
	scheme = strings.ToLower(scheme)
	if !ok || !(scheme == "https" || scheme == "http" && !httpsOnly) {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if authority == "" || strings.ContainsAny(authority, "@%") {
		return false
	}
	if strings.HasPrefix(tail, "/") && safeNext(tail) != tail {
		return false
	}
	u, err := url.Parse(next)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host != authority {
		return false
	}
	host := strings.ToLower(u.Host)
	if !validHost(host) {
		return false
	}
	if hosts[host] || host == own {
		return true
	}
	// A default port written out is the same place as none.
	if name, port, found := strings.Cut(host, ":"); found && !strings.HasPrefix(host, "[") {
		if port == "443" && scheme == "https" || port == "80" && scheme == "http" {
			return hosts[name] || name == own
		}
	}
	return false
}

// validHost reports whether h is a plain host name, IPv4 address or
// bracketed IPv6 address, with an optional port: letters, digits, dots
// and dashes, no empty label, no trailing dot (which would not match an
// entry exactly and names the same host).
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		i := strings.Index(h, "]")
		if i < 0 {
			return false
		}
		name, port = h[1:i], strings.TrimPrefix(h[i+1:], ":")
		if h[i+1:] != "" && !strings.HasPrefix(h[i+1:], ":") {
			return false
		}
		if _, err := netip.ParseAddr(name); err != nil {
			return false
		}
	} else {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			name, port = h[:i], h[i+1:]
			if port == "" {
				return false
			}
		}
		for _, label := range strings.Split(name, ".") {
			if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
				return false
			}
			for _, c := range label {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					return false
				}
			}
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(port) <= 5
}

// allows reports whether an app at host, reached over scheme, is one of
// the entries: "host" matches the scheme's default port only, as for
// return targets; "host:port" that port only.
func (h returnHosts) allows(scheme, host string) bool {
	host = strings.ToLower(host)
	if h[host] {
		return true
	}
	if name, port, found := strings.Cut(host, ":"); found && !strings.HasPrefix(host, "[") {
		return (port == "443" && scheme == "https" || port == "80" && scheme == "http") && h[name]
	}
	return false
}
