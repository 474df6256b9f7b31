package auth

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestNormalizeUsername(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string // want "" means refused
	}{
		{"plain", "alice", "alice"},
		{"case is kept", "Admin", "Admin"},
		{"inner space", "bob smith", "bob smith"},
		{"digits and punctuation", "ops-team_2.0@example", "ops-team_2.0@example"},
		{"fullwidth to ASCII", "ｆｕｌｌwidth", "fullwidth"},
		{"fullwidth digits", "user１２", "user12"},
		{"composed é", "caf\u00e9", "caf\u00e9"},
		{"decomposed é", "cafe\u0301", "caf\u00e9"},
		{"ligature", "\ufb01nn", "finn"},
		{"non-Latin", "Ωμέγα", "Ωμέγα"},
		{"64 characters", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"64 decomposed é", strings.Repeat("e\u0301", 64), strings.Repeat("\u00e9", 64)},
		{"64 fullwidth", strings.Repeat("ａ", 64), strings.Repeat("a", 64)},

		{"empty", "", ""},
		{"65 characters", strings.Repeat("a", 65), ""},
		{"65 fullwidth", strings.Repeat("ａ", 65), ""},
		{"leading space", " alice", ""},
		{"trailing space", "alice ", ""},
		{"only spaces", "   ", ""},
		{"leading tab", "\talice", ""},
		{"leading no-break space", "\u00a0alice", ""},
		{"trailing ideographic space", "alice\u3000", ""},
		{"NUL", "al\x00ice", ""},
		{"newline", "al\nice", ""},
		{"carriage return", "alice\r", ""},
		{"escape", "\x1b[31malice", ""},
		{"DEL", "al\x7fice", ""},
		{"C1 control", "al\u0085ice", ""},
		{"zero-width space", "al\u200bice", ""},
		{"zero-width joiner", "al\u200dice", ""},
		{"byte order mark", "\ufeffalice", ""},
		{"right-to-left override", "alice\u202egpj", ""},
		{"soft hyphen", "al\u00adice", ""},
		{"open brace", "al{ice", ""},
		{"close brace", "alice}", ""},
		{"hash tag", "{alice}", ""},
		{"fullwidth brace", "al\uff5bice", ""},
		{"small brace", "al\ufe5bice", ""},
		{"asterisk", "al*", ""},
		{"fullwidth asterisk", "al\uff0a", ""},
		{"invalid UTF-8", "al\xffice", ""},
		{"truncated UTF-8", "alic\xc3", ""},
		{"replacement character", "al\ufffdice", ""},
		{"a kilobyte", strings.Repeat("a", 1024), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizeUsername(tt.in)
			switch {
			case tt.want == "" && !errors.Is(err, ErrInvalidUsername):
				t.Errorf("NormalizeUsername(%q): got %q, %v; want %v", tt.in, got, err, ErrInvalidUsername)
			case tt.want != "" && (err != nil || got != tt.want):
				t.Errorf("NormalizeUsername(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzNormalizeUsername(f *testing.F) {
	for _, seed := range []string{
		"alice", "ｆｕｌｌwidth", "cafe\u0301", "caf\u00e9", "al\u200bice", " alice", "a{b}*",
		"\ufb01", "\ufdfa", "\u1100\u1161\u11a8", "e" + strings.Repeat("\u0301", 40), "al\xffice", "",
		strings.Repeat("ａ", 64),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeUsername(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidUsername) || out != "" {
				t.Fatalf("NormalizeUsername(%q) = %q, %v; want \"\" and %v on refusal", in, out, err, ErrInvalidUsername)
			}
			return
		}
		again, err := NormalizeUsername(out)
		if err != nil || again != out {
			t.Errorf("NormalizeUsername(%q) = %q, but normalizing that again gives %q, %v", in, out, again, err)
		}
		if n := utf8.RuneCountInString(out); !utf8.ValidString(out) || n == 0 || n > MaxUsernameChars {
			t.Errorf("NormalizeUsername(%q) = %q: want 1-%d characters of valid UTF-8", in, out, MaxUsernameChars)
		}
		if strings.ContainsAny(out, "{}*") || strings.TrimSpace(out) != out {
			t.Errorf("NormalizeUsername(%q) = %q: want no braces, '*' or surrounding space", in, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Errorf("NormalizeUsername(%q) = %q: holds control or format character %U", in, out, r)
			}
		}
	})
}

// New names are letters and digits of any script, '.', '_', '-', '@';
// names that reach apps in Remote-User and read as lists, quotes, markup
// or options are refused for new users only.
func TestCheckNewUsername(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"plain", "alice", true},
		{"case kept", "Admin", true},
		{"dots, underscores, hyphens, at", "ops-team_2.0@example.com", true},
		{"non-Latin letters", "Ωμέγα", true},
		{"Devanagari with its marks", "नमस्ते", true},
		{"CJK", "山田", true},
		{"Arabic-Indic digits", "user٣", true},
		{"decomposed é", "cafe\u0301", true},
		{"fullwidth, folded to ASCII", "ｆｕｌｌwidth", true},
		{"inner hyphen", "a-b", true},

		{"comma", "mallory, alice", false},
		{"comma without space", "mallory,alice", false},
		{"double quote", `ali"ce`, false},
		{"less than", "<alice>", false},
		{"space", "bob smith", false},
		{"semicolon", "a;b", false},
		{"slash", "a/b", false},
		{"plus", "a+b", false},
		{"colon", "a:b", false},
		{"leading hyphen", "-alice", false},
		{"only a hyphen", "-", false},
		{"leading combining mark", "\u0301alice", false},
		{"emoji", "alice😀", false},
		{"invalid even for a lookup", "al\x00ice", false},
		{"empty", "", false},
	} {
		_, err := CheckNewUsername(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckNewUsername(%q) = %v, want accepted %v", tc.name, tc.in, err, tc.ok)
		}
		if !tc.ok && err != nil && !errors.Is(err, ErrInvalidNewUsername) && !errors.Is(err, ErrInvalidUsername) {
			t.Errorf("%s: got %v, want ErrInvalidNewUsername or ErrInvalidUsername", tc.name, err)
		}
	}
}
