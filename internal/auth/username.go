package auth

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

// Skeleton is the UTS #39 confusable skeleton of a canonical name (the
// Unicode 13.0 confusables table): two names with one skeleton look alike,
// such as "admin" and "аdmin" with a Cyrillic а, or "paypal" and "paypa1".
// Case is not folded first, so "Admin" and "admin" keep being two users.
func Skeleton(name string) string { return confusables.Skeleton(name) }

// MaxUsernameChars bounds a username's length in characters.
const MaxUsernameChars = 64

// ErrInvalidUsername means a name breaks the rules of NormalizeUsername.
var ErrInvalidUsername = errors.New("username must be 1-64 characters, without control characters, braces, '*' or surrounding spaces")

// NormalizeUsername returns the canonical form of a username: NFKC, so that
// look-alike compositions ("ｆｕｌｌwidth", "e" + combining accent) name one
// account. It refuses invalid UTF-8, control, format and line or paragraph
// separator characters, braces and '*' (they would break the Redis key
// layout and SCAN patterns), leading or trailing spaces, and names longer
// than MaxUsernameChars.
// Case is kept: "Admin" and "admin" are different users.
func NormalizeUsername(s string) (string, error) {
	if !utf8.ValidString(s) || len(s) > 1024 {
		return "", ErrInvalidUsername
	}
	s = norm.NFKC.String(s)
	n := utf8.RuneCountInString(s)
	if n == 0 || n > MaxUsernameChars || strings.TrimSpace(s) != s {
		return "", ErrInvalidUsername
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == '{' || r == '}' || r == '*' || r == utf8.RuneError {
			return "", ErrInvalidUsername
		}
	}
	return s, nil
}
