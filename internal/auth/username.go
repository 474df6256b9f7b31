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

// ErrInvalidNewUsername refuses a name for a new user that NormalizeUsername
// accepts but that is outside the set new names are held to (see
// CheckNewUsername).
var ErrInvalidNewUsername = errors.New("a new username may hold only letters and digits of any script, '.', '_', '-' and '@', and may not start with '-'")

// CheckNewUsername returns the canonical form of a name for a new user
// (AddUser), held to a smaller set than NormalizeUsername, which every
// lookup uses: letters (with the combining marks that write them) and
// digits of any script, '.', '_', '-' and '@', not starting with '-' or a
// mark. The name reaches protected apps raw in Remote-User, where ',' '"'
// '<' '>' or a space could make "mallory, alice" read as a list holding
// alice; and a leading '-' reads as an option on a command line. Users
// created before keep their names and log in as before.
func CheckNewUsername(s string) (string, error) {
	name, err := NormalizeUsername(s)
	if err != nil {
		return "", err
	}
	for i, r := range name {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
		case r == '.' || r == '_' || r == '@':
		case r == '-' && i > 0:
		case unicode.IsMark(r) && i > 0:
		default:
			return "", ErrInvalidNewUsername
		}
	}
	return name, nil
}
