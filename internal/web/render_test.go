package web

import (
	"bytes"
	"html/template"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"loginsvc/templates"
)

// layoutLangSwitch is the layout's language switch as it was written
// before it was rendered apart (a range inside the <nav>): the reference
// the rendered switch must equal byte for byte.
const layoutLangSwitch = `<nav class="lang" id="lang-switch">
{{range .}}{{if .Current}}<span aria-current="true" lang="{{.HTML}}" data-lang="{{.Code}}">{{.Name}}</span>{{else}}<a href="{{.Href}}" lang="{{.HTML}}" hreflang="{{.HTML}}" data-lang="{{.Code}}">{{.Name}}</a>{{end}}
{{end}}</nav>`

// The language switch the server renders apart (at start for the usual
// addresses, per request for the rest) is exactly what the layout's range
// rendered in place, for every address, hostile ones included: quotes,
// markup, javascript: and encoded newlines in the path or query land in
// the href attribute escaped as html/template escapes them there.
func TestLanguageSwitchIsTheLayoutsOwn(t *testing.T) {
	t.Parallel()
	ts, err := ParseTemplates(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	ref := template.Must(template.New("ref").Parse(layoutLangSwitch))
	shown := template.Must(template.New("shown").Parse(`<nav class="lang" id="lang-switch">
{{.}}</nav>`))
	targets := append([]string{}, switchPaths...)
	targets = append(targets,
		"/?a=b&c=d", "/sessions/?x=%22%3E%3Cscript%3Ealert(1)%3C/script%3E", `/"><script>alert(1)</script>`,
		"/%0d%0aSet-Cookie:%20x=y", "/javascript:alert(1)", "/'onmouseover='x", "/中文/路径?q=ü", "/%E4%B8%AD",
		"/a b", "/&amp;", "/login/?next=https%3A%2F%2Fevil.example%2F", "//evil.example/", "/%00", "/?",
		"/"+strings.Repeat("x", 2000),
	)
	for _, l := range ts.locales.list {
		for _, target := range targets {
			r := httptest.NewRequest("GET", "/", nil)
			u, err := url.ParseRequestURI(target)
			if err != nil {
				u = &url.URL{Path: target}
			}
			r.URL = u
			uri := r.URL.RequestURI()
			var want, got strings.Builder
			if err := ref.Execute(&want, ts.languageChoices(uri, l)); err != nil {
				t.Fatal(err)
			}
			h, err := ts.langSwitchFor(r, l)
			if err != nil {
				t.Fatalf("%s %q: %v", l.code, uri, err)
			}
			if err := shown.Execute(&got, h); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("%s, %q:\n got %s\nwant %s", l.code, uri, got.String(), want.String())
			}
		}
		for _, path := range switchPaths {
			if _, ok := ts.langSwitches[l.code][path]; !ok {
				t.Errorf("%s: no switch rendered at start for %s", l.code, path)
			}
		}
	}
}

// The logged-in index page written from its skeleton is byte for byte the
// page html/template renders from the same view, in both languages, with
// and without an idle deadline, for hostile user names (markup, quotes,
// '+', NUL, invalid UTF-8, the skeleton's own markers, a placeholder) and
// addresses: each value lands escaped as html/template escapes it there.
func TestIndexSkeletonIsTheTemplatesOutput(t *testing.T) {
	t.Parallel()
	ts, err := ParseTemplates(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	users := []string{
		"alice", "Zoë", "李雷", `<script>alert("x")</script>`, `"'&+<>`, "a\x00b", "\xff\xfe\xfd", "{name}",
		"}}{{.User}}", slotMarker(slotUser), slotMarker(slotLangSwitch) + slotMarker(slotEndsAgo),
		"line\nbreak\ttab", "a\u2028b\u2029c", "&amp;&#34;", "javascript:alert(1)", " ", strings.Repeat("ü<", 300),
	}
	uris := []string{"/", "/?x=%22%3E%3Cscript%3E", `/"><img src=x onerror=alert(1)>`}
	// Offsets off the minute's half, so the two renders, microseconds
	// apart, round to the same relative time.
	offsets := []time.Duration{0, 10 * time.Second, 10*time.Minute + 10*time.Second, -(3*time.Hour + 10*time.Second), 29*time.Minute + 50*time.Second, 5*24*time.Hour + 10*time.Second, -400 * 24 * time.Hour}
	for _, l := range ts.locales.list {
		for i, user := range users {
			uri := uris[i%len(uris)]
			r := httptest.NewRequest("GET", "/", nil)
			r.URL = &url.URL{Path: uri}
			langs, err := ts.langSwitchFor(r, l)
			if err != nil {
				t.Fatal(err)
			}
			for j, off := range offsets {
				now := time.Now()
				p := indexPage{EndsAt: now.Add(off + 8*time.Hour).In(time.FixedZone("X", 5*3600+1800))}
				if j%3 != 0 {
					p.IdleEnds = now.Add(off)
				}
				v := view{Lang: l, Account: true, User: user, LangSwitch: langs, Page: p}
				var want, got bytes.Buffer
				if err := ts.pages[l.code]["index.html"].ExecuteTemplate(&want, "layout", v); err != nil {
					t.Fatal(err)
				}
				if err := ts.skeletonFor(l, p).write(&got, l, indexValues{user: user, langSwitch: langs, page: p, now: time.Now()}); err != nil {
					t.Fatal(err)
				}
				if got.String() != want.String() {
					t.Errorf("%s, user %q, %v: the skeleton's page differs:\n got %s\nwant %s", l.code, user, off, got.String(), want.String())
				}
			}
		}
	}
}
