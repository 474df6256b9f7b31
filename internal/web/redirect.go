package web

import (
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
