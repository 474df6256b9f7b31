package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// A locale is one language the pages are written in: its catalog of
// messages (templates/locales/CODE.json) and how it is named to browsers.
type locale struct {
	// code is the file name, the lang cookie's value and the switch's
	// ?to= value: "en", "zh".
	code string
	// tag is what Accept-Language is matched against.
	tag language.Tag
	// html is the <html lang> and Content-Language value: "en", "zh-Hans".
	html string
	// messages maps a key ("login.title") to its text, with {name}
	// placeholders.
	messages map[string]string
	// holes are each message's placeholders, found once at load rather
	// than with a regexp on every use in a page.
	holes map[string][]string
	// counted are the plural messages that take only {count}, written
	// out at load for the counts below countedUpTo: a relative time on
	// every page view would otherwise build its key and text each time.
	counted map[string]*[countedUpTo]string
}

// countedUpTo bounds the counts written out in advance (minutes up to an
// hour, hours up to a day, days up to about three months).
const countedUpTo = 100

// HTML is the language's <html lang> value.
func (l *locale) HTML() string { return l.html }

// supportedLocales are the languages of the pages; the first is the
// fallback when Accept-Language names none of them.
var supportedLocales = []struct {
	code string
	tag  language.Tag
	html string
}{
	{"en", language.English, "en"},
	{"zh", language.SimplifiedChinese, "zh-Hans"},
}

// locales holds every locale and picks one per request.
type locales struct {
	list    []*locale
	byCode  map[string]*locale
	matcher language.Matcher
}

// langCookie names the cookie that holds a chosen language; it overrides
// Accept-Language.
const langCookie = "lang"

// loadLocales reads locales/CODE.json from fsys for every supported
// language and checks that the catalogs agree: the same keys, the same
// placeholders per key, no empty text, and every message the Go code names
// (see msg) present. A catalog that fails stops the server at start.
func loadLocales(fsys fs.FS) (*locales, error) {
	ls := &locales{byCode: map[string]*locale{}}
	var tags []language.Tag
	for _, s := range supportedLocales {
		b, err := fs.ReadFile(fsys, "locales/"+s.code+".json")
		if err != nil {
			return nil, fmt.Errorf("read catalog %s: %w", s.code, err)
		}
		messages, err := parseCatalog(b)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", s.code, err)
		}
		l := &locale{code: s.code, tag: s.tag, html: s.html, messages: messages, holes: map[string][]string{}}
		for key, text := range messages {
			l.holes[key] = placeholders(text)
		}
		ls.list = append(ls.list, l)
		ls.byCode[s.code] = l
		tags = append(tags, s.tag)
	}
	ls.matcher = language.NewMatcher(tags)
	if err := ls.check(); err != nil {
		return nil, err
	}
	for _, l := range ls.list {
		l.countAhead()
	}
	return ls, nil
}

// countAhead fills l.counted from the catalog, once it is checked. A
// message that cannot be written out for some count is left to plural,
// which says why when a page asks for it.
func (l *locale) countAhead() {
	l.counted = map[string]*[countedUpTo]string{}
next:
	for _, m := range goMessages {
		if !m.plural {
			continue
		}
		var forms [countedUpTo]string
		for n := range countedUpTo {
			text, err := l.plural(m.key, n)
			if err != nil {
				continue next
			}
			forms[n] = text
		}
		l.counted[m.key] = &forms
	}
}

// parseCatalog reads a flat JSON object of key to text, refusing duplicate
// keys (encoding/json would silently keep the last).
func parseCatalog(b []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("want one JSON object of key to text")
	}
	messages := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var text string
		if err := dec.Decode(&text); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		if _, dup := messages[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		messages[key] = text
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return messages, nil
}

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// placeholders are the distinct {name}s of text, sorted.
func placeholders(text string) []string {
	p := placeholder.FindAllString(text, -1)
	slices.Sort(p)
	return slices.Compact(p)
}

// check compares every catalog with the first one and looks up every
// message the Go code names.
func (ls *locales) check() error {
	var problems []string
	base := ls.list[0]
	for _, l := range ls.list {
		for key, text := range l.messages {
			if strings.TrimSpace(text) == "" {
				problems = append(problems, fmt.Sprintf("%s: %q is empty", l.code, key))
			}
		}
		if l == base {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(base.messages)) {
			text, ok := l.messages[key]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %q is missing (it is in %s)", l.code, key, base.code))
				continue
			}
			if got, want := placeholders(text), placeholders(base.messages[key]); !slices.Equal(got, want) {
				problems = append(problems, fmt.Sprintf("%s: %q has placeholders %v, %s has %v", l.code, key, got, base.code, want))
			}
		}
		for _, key := range slices.Sorted(maps.Keys(l.messages)) {
			if _, ok := base.messages[key]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %q is not in %s", l.code, key, base.code))
			}
		}
	}
	for _, m := range goMessages {
		if err := ls.has(m.key, m.plural); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("catalogs disagree:\n%s", strings.Join(problems, "\n"))
	}
	return nil
}

// has reports a missing message in any catalog; a plural message needs
// its .one and .other forms (.zero is optional).
func (ls *locales) has(key string, plural bool) error {
	keys := []string{key}
	if plural {
		keys = []string{key + ".one", key + ".other"}
	}
	for _, l := range ls.list {
		for _, k := range keys {
			if _, ok := l.messages[k]; !ok {
				return fmt.Errorf("%s: no message %q", l.code, k)
			}
		}
	}
	return nil
}

// forRequest is the request's language: the lang cookie if it names one,
// else the best match for Accept-Language, else English.
func (ls *locales) forRequest(r *http.Request) *locale {
	for _, c := range r.CookiesNamed(langCookie) {
		if l, ok := ls.byCode[c.Value]; ok {
			return l
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := ls.matcher.Match(tags...)
	return ls.list[i]
}

// A message the Go code names by key (error pages, flashes, device
// words). Declaring it through msg or pluralMsg lists it in goMessages,
// which loadLocales checks, so a key missing from a catalog stops the
// server at start instead of failing one page later.
type message struct {
	key    string
	plural bool
}

var goMessages []message

// msg declares a message the Go code uses and returns its key.
func msg(key string) string {
	goMessages = append(goMessages, message{key: key})
	return key
}

// pluralMsg declares a message chosen by a count (see locale.plural).
func pluralMsg(key string) string {
	goMessages = append(goMessages, message{key: key, plural: true})
	return key
}

// text returns the message key with its {name} placeholders filled from
// args, given as name, value pairs; names the message does not use are
// ignored, so one call can serve several messages. A missing key or an
// unfilled placeholder is an error, so a template that names one fails to
// render rather than showing a blank, a raw key or a "{name}".
func (l *locale) text(key string, args ...any) (string, error) {
	s, ok := l.messages[key]
	if !ok {
		return "", fmt.Errorf("catalog %s has no message %q", l.code, key)
	}
	if len(args)%2 != 0 {
		return "", fmt.Errorf("message %q: arguments must be name, value pairs", key)
	}
	want, ok := l.holes[key]
	if !ok {
		want = placeholders(s)
	}
	if len(want) == 0 {
		return s, nil
	}
	filled := 0
	for i := 0; i+1 < len(args); i += 2 {
		name, _ := args[i].(string)
		if hole := "{" + name + "}"; slices.Contains(want, hole) {
			s = strings.ReplaceAll(s, hole, fmt.Sprint(args[i+1]))
			filled++
		}
	}
	if filled != len(want) {
		return "", fmt.Errorf("message %q takes %v, got arguments %v", key, want, args)
	}
	return s, nil
}

// plural is text for a count: key.zero (when the catalog has it) for 0,
// key.one for 1, key.other otherwise, with {count} filled in.
func (l *locale) plural(key string, n int, args ...any) (string, error) {
	if forms := l.counted[key]; forms != nil && len(args) == 0 && n >= 0 && n < countedUpTo {
		return forms[n], nil
	}
	form := key + ".other"
	switch {
	case n == 0 && l.messages[key+".zero"] != "":
		form = key + ".zero"
	case n == 1:
		form = key + ".one"
	}
	if strings.Contains(l.messages[form], "{count}") {
		args = append([]any{"count", n}, args...)
	}
	return l.text(form, args...)
}

// Relative times: rounded to the nearest unit, so a deadline set 30
// minutes from now reads "in 30 minutes", not "in 29 minutes".
var (
	msgJustNow    = msg("time.just_now")
	msgInAMoment  = msg("time.in_a_moment")
	msgMinutesAgo = pluralMsg("time.minutes_ago")
	msgHoursAgo   = pluralMsg("time.hours_ago")
	msgDaysAgo    = pluralMsg("time.days_ago")
	msgInMinutes  = pluralMsg("time.in_minutes")
	msgInHours    = pluralMsg("time.in_hours")
	msgInDays     = pluralMsg("time.in_days")
)

// relative says how far t is from now: "5 minutes ago", "in 2 hours".
func (l *locale) relative(t, now time.Time) (string, error) {
	d := now.Sub(t)
	past := d >= 0
	if !past {
		d = -d
	}
	unit := func(ago, in string) string {
		if past {
			return ago
		}
		return in
	}
	minutes := int(d.Round(time.Minute) / time.Minute)
	hours := int(d.Round(time.Hour) / time.Hour)
	days := int(d.Round(24*time.Hour) / (24 * time.Hour))
	switch {
	case minutes < 1:
		return l.text(unit(msgJustNow, msgInAMoment))
	case minutes < 60:
		return l.plural(unit(msgMinutesAgo, msgInMinutes), minutes)
	case hours < 24:
		return l.plural(unit(msgHoursAgo, msgInHours), hours)
	default:
		return l.plural(unit(msgDaysAgo, msgInDays), days)
	}
}

// exactTime is the hover text of a relative time, the same in every
// language: the service does not know the reader's time zone, so UTC.
func exactTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// machineTime is a <time datetime> value.
func machineTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
