package web

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"text/template/parse"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
	"loginsvc/internal/testkit"
	"loginsvc/templates"
)

// testLocales are the embedded catalogs, loaded as the server loads them.
var testLocales = sync.OnceValues(func() (*locales, error) { return loadLocales(templates.FS) })

// catalogText is the text of key in the catalog code. It panics on a
// missing one: it runs while the test binary initialises.
func catalogText(code, key string) string {
	ls, err := testLocales()
	if err != nil {
		panic(err)
	}
	s, ok := ls.byCode[code].messages[key]
	if !ok {
		panic(fmt.Sprintf("catalog %s has no %q", code, key))
	}
	return s
}

// invalidLogin is the English message of every refused login, which the
// login, input and throttle tests look for.
var invalidLogin = catalogText("en", msgInvalidLogin)

// testLanguages are the page languages with an Accept-Language that asks
// for each and the <html lang> it must get.
var testLanguages = []struct {
	code, acceptLanguage, html string
}{
	{"en", "en-US,en;q=0.9", "en"},
	{"zh", "zh-CN,zh;q=0.9,en;q=0.5", "zh-Hans"},
}

func TestCatalogsHaveTheSameKeysAndAllAreUsed(t *testing.T) {
	t.Parallel()
	ls, err := testLocales()
	if err != nil {
		t.Fatalf("loadLocales: %v", err)
	}
	en := slices.Sorted(maps.Keys(ls.byCode["en"].messages))
	for _, l := range ls.list {
		if got := slices.Sorted(maps.Keys(l.messages)); !slices.Equal(got, en) {
			t.Errorf("catalog %s: got keys %v, want the English set %v", l.code, got, en)
		}
	}

	// Every key is named by a template or the Go code: no dead text for
	// translators to keep up.
	used := map[string]bool{"lang.name": true} // read by languageChoices
	use := func(m message) {
		if !m.plural {
			used[m.key] = true
			return
		}
		for _, form := range []string{".zero", ".one", ".other"} {
			used[m.key+form] = true
		}
	}
	for _, m := range goMessages {
		use(m)
	}
	// From the sources: the parsed pages have their fixed words written in.
	for _, name := range append([]string{"layout.html"}, pageNames...) {
		src, err := fs.ReadFile(templates.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		tr := parse.New(name)
		tr.Mode = parse.SkipFuncCheck
		trees := map[string]*parse.Tree{}
		if _, err := tr.Parse(string(src), "", "", trees); err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, tt := range trees {
			for _, m := range messagesIn(tt.Root) {
				use(m)
			}
		}
	}
	for _, key := range en {
		if !used[key] {
			t.Errorf("catalog key %q is used by no template and no Go code", key)
		}
	}
}

// copyFS is the embedded templates as a MapFS, for tests that break one
// file.
func copyFS(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(templates.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templates.FS, path)
		m[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatalf("copy templates: %v", err)
	}
	return m
}

// A catalog or template that would render a blank or a raw key stops the
// server at start.
func TestBrokenCatalogsStopTheStart(t *testing.T) {
	t.Parallel()
	edit := func(file, old, new string) func(fstest.MapFS) {
		return func(m fstest.MapFS) {
			m[file] = &fstest.MapFile{Data: []byte(strings.Replace(string(m[file].Data), old, new, 1))}
		}
	}
	for _, tc := range []struct {
		name   string
		break_ func(fstest.MapFS)
		want   string
	}{
		{"key missing in zh", edit("locales/zh.json", `"nav.login": "登录",`, ""), `"nav.login" is missing`},
		{"key only in zh", edit("locales/zh.json", `{`, `{"nav.extra": "多余",`), `"nav.extra" is not in en`},
		{"placeholder renamed", edit("locales/zh.json", `"您好，{name}"`, `"您好，{user}"`), "placeholders"},
		{"empty text", edit("locales/zh.json", `"登录",`, `"",`), "is empty"},
		{"duplicate key", edit("locales/en.json", `{`, `{"nav.login": "Sign in",`), "appears twice"},
		{"not an object", edit("locales/en.json", `{`, `[{`), "JSON object"},
		{"catalog file missing", func(m fstest.MapFS) { delete(m, "locales/zh.json") }, "read catalog zh"},
		{"message the Go code uses missing everywhere", func(m fstest.MapFS) {
			edit("locales/en.json", `"flash.logged_out": "You've been signed out.",`, "")(m)
			edit("locales/zh.json", `"flash.logged_out": "您已退出登录。",`, "")(m)
		}, `no message "flash.logged_out"`},
		{"template names an unknown key", edit("index.html", `{{t "index.logged_in"}}`, `{{t "index.no_such_key"}}`), `no message "index.no_such_key"`},
		{"template names an unknown plural", edit("index.html", `{{t "index.logged_in"}}`, `{{tn "index.no_such_key" 2}}`), `"index.no_such_key.one"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := copyFS(t)
			tc.break_(m)
			_, err := ParseTemplates(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseTemplates: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseTemplates(copyFS(t)); err != nil {
		t.Fatalf("ParseTemplates of the unbroken copy: %v", err)
	}
}

// Messages are text, written into the template at start: markup in a
// catalog is shown, not obeyed, in an element, an attribute and the title
// alike, and template syntax in one is not run, even a lone brace that
// would join the action after it.
func TestMessagesAreShownAsText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"markup", `<b onclick=\"x()\">it's & \"so\"</b>`, `&lt;b onclick=&#34;x()&#34;&gt;it&#39;s &amp; &#34;so&#34;&lt;/b&gt;`},
		{"template syntax", `{{.User}} {{template \"layout\" .}}`, `&#123;&#123;.User&#125;&#125; &#123;&#123;template &#34;layout&#34; .&#125;&#125;`},
		{"a brace before an action", `Home {`, `Home &#123;`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := copyFS(t)
			en := string(m["locales/en.json"].Data)
			for _, key := range []string{"index.logged_in", "nav.account", "index.title"} { // element, attribute, title
				i := strings.Index(en, `"`+key+`": "`)
				j := i + strings.Index(en[i:], "\",\n")
				en = en[:i] + `"` + key + `": "` + tc.text + en[j:]
			}
			m["locales/en.json"] = &fstest.MapFile{Data: []byte(en)}
			tmpl, err := ParseTemplates(m)
			if err != nil {
				t.Fatalf("ParseTemplates: %v", err)
			}
			var out strings.Builder
			v := view{Lang: tmpl.locales.byCode["en"], Account: true, User: aliceName, Page: indexPage{EndsAt: time.Now().Add(time.Hour)}}
			if err := tmpl.pages["en"]["index.html"].ExecuteTemplate(&out, "layout", v); err != nil {
				t.Fatalf("render: %v", err)
			}
			page := out.String()
			if want := "<p>" + tc.want + "</p>"; !strings.Contains(page, want) {
				t.Errorf("index.logged_in: page lacks %s:\n%s", want, page)
			}
			if want := `aria-label="` + tc.want + `"`; !strings.Contains(page, want) {
				t.Errorf("nav.account: page lacks %s:\n%s", want, page)
			}
			if want := `<title>` + tc.want + ` · loginsvc</title>`; !strings.Contains(page, want) {
				t.Errorf("index.title: page lacks %s:\n%s", want, page)
			}
		})
	}
}

// A key that only turns up at run time (from data) fails the render with
// the generic 500 page, never a blank.
func TestUnknownKeyAtRunTimeIsAServerError(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ctx, err := ta.app.sessions.Load(context.Background(), "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tc := range testLanguages {
		req := httptest.NewRequest(http.MethodGet, "/login/", nil).WithContext(ctx)
		req.Header.Set("Accept-Language", tc.acceptLanguage)
		rec := httptest.NewRecorder()
		ta.app.render(rec, req, http.StatusOK, "login.html", loginPage{Error: "login.no_such_key"})
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "no_such_key") {
			t.Errorf("%s: render with an unknown key: got status %d, body:\n%s\nwant the 500 page", tc.code, rec.Code, rec.Body.String())
		}
	}
	if !strings.Contains(ta.logs.String(), "no_such_key") {
		t.Errorf("got no log line naming the missing key; logs:\n%s", ta.logs.String())
	}
}

// checkPageLanguage fails unless p is wholly in the language code: the
// <html lang> and Content-Language, no catalog key or {placeholder} left
// raw, and no text of the other catalogs.
func checkPageLanguage(t *testing.T, what string, p page, code, html string) {
	t.Helper()
	ls, err := testLocales()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.body, `<html lang="`+html+`">`) {
		t.Errorf("%s: got no <html lang=%q>; body:\n%s", what, html, p.body)
	}
	if got := p.header.Get("Content-Language"); got != html {
		t.Errorf("%s: got Content-Language %q, want %q", what, got, html)
	}
	if m := placeholder.FindString(p.body); m != "" {
		t.Errorf("%s: got unfilled placeholder %s; body:\n%s", what, m, p.body)
	}
	mine := ls.byCode[code].messages
	for key := range mine {
		if strings.Contains(p.body, key) {
			t.Errorf("%s: got raw catalog key %q in the page; body:\n%s", what, key, p.body)
		}
	}
	for _, other := range ls.list {
		if other.code == code {
			continue
		}
		for key, text := range other.messages {
			// Language names are on every page's switch; short
			// words and texts with placeholders match too much.
			if key == "lang.name" || len(text) < 4 || text == mine[key] || strings.Contains(text, "{") {
				continue
			}
			if strings.Contains(p.body, text) {
				t.Errorf("%s (%s): got %s text %q (%s) in the page", what, code, other.code, text, key)
			}
		}
	}
}

func TestEveryPageRendersInBothLanguages(t *testing.T) {
	rs := redistest.Start(t)
	ta := newTestApp(t, rs)
	me, other := newBrowser(t), newBrowser(t)
	ta.loginAs(t, me, aliceName, alicePassword, firefoxLinux)
	ta.loginAs(t, other, aliceName, alicePassword, chromeAndroid)
	token := me.tokenInJar(ta.url("/"))
	ta.app.static = panickyFS{ta.app.static}
	boom := httptest.NewServer(ta.app.Handler())
	t.Cleanup(boom.Close)

	type step struct {
		name   string
		b      *browser // nil: no cookies
		method string
		path   string
		form   url.Values
		header map[string]string
		flash  string // a flash cookie to plant first
		status int
	}
	get := func(b *browser, path string, status int) step {
		return step{name: "GET " + path, b: b, method: http.MethodGet, path: path, status: status}
	}
	post := func(name string, b *browser, path string, form url.Values, status int) step {
		return step{name: name, b: b, method: http.MethodPost, path: path, form: form, status: status}
	}
	withFlash := func(value string) step {
		s := get(me, "/sessions/", http.StatusOK)
		s.name, s.flash = "flash "+value, value
		return s
	}
	steps := []step{
		get(nil, "/", 200), get(nil, "/login/", 200), get(nil, "/login/?next=%2Fsessions%2F", 200), get(nil, "/logout/", 200),
		get(nil, "/no-such-page", 404), get(nil, "/lang?to=klingon", 400),
		post("POST /login/ refused", nil, "/login/", url.Values{"username": {aliceName}, "password": {"wrong"}}, 400),
		post("POST /login/ too large", nil, "/login/", url.Values{"username": {strings.Repeat("a", maxFormBytes)}}, 413),
		{name: "403 cross-site POST", method: http.MethodPost, path: "/logout/", form: url.Values{}, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403},
		{name: "500 page", method: http.MethodGet, path: boom.URL + "/static/boom.css", status: 500},
		get(me, "/", 200), get(me, "/sessions/", 200), get(me, "/password/", 200), get(me, "/logout/", 200),
		post("password mismatch", me, "/password/", passwordForm(alicePassword, aliceNewPassword, "other"), 400),
		post("password weak", me, "/password/", passwordForm(alicePassword, "short", "short"), 400),
		post("password current wrong", me, "/password/", passwordForm("wrong-password", aliceNewPassword, aliceNewPassword), 400),
		post("password same", me, "/password/", passwordForm(alicePassword, alicePassword, alicePassword), 400),
		post("revoke unknown session", me, "/sessions/AAAAAAAAAAAAAAAA/revoke", url.Values{}, 404),
		withFlash("logged_out"), withFlash("session_revoked"), withFlash("session_not_found"),
		withFlash("others_revoked.0"), withFlash("others_revoked.1"), withFlash("others_revoked.5"),
		withFlash("password_changed.0"), withFlash("password_changed.1"), withFlash("password_changed.5"),
	}
	for _, lang := range testLanguages {
		t.Run(lang.code, func(t *testing.T) {
			for _, s := range steps {
				b := s.b
				if b == nil {
					b = &browser{t: t, client: testkit.Client(t, nil)}
				}
				b.t = t
				if s.flash != "" {
					b.setCookie(ta, flashCookie, s.flash)
				}
				target := s.path
				if !strings.HasPrefix(target, "http") {
					target = ta.url(s.path)
				}
				req := newRequest(t, s.method, target, s.form)
				req.Header.Set("Accept-Language", lang.acceptLanguage)
				for k, v := range s.header {
					req.Header.Set(k, v)
				}
				p := b.do(req)
				if p.status != s.status {
					t.Errorf("%s: got status %d, want %d; body:\n%s", s.name, p.status, s.status, p.body)
					continue
				}
				checkPageLanguage(t, s.name, p, lang.code, lang.html)
				if s.flash != "" {
					kind, count, _ := strings.Cut(s.flash, ".")
					wantFlash(t, s.name, p, kind, count)
				}
			}
		})
	}

	// The 503 page, last: it needs Redis stopped.
	rs.Stop(t)
	for _, lang := range testLanguages {
		req := newRequest(t, http.MethodGet, ta.url("/"), nil)
		req.Header.Set("Accept-Language", lang.acceptLanguage)
		req.Header.Set("Cookie", testCookieName+"="+token)
		p := doRequest(t, testkit.Client(t, nil), req)
		if p.status != http.StatusServiceUnavailable {
			t.Fatalf("%s: GET / with Redis stopped: got status %d, want 503", lang.code, p.status)
		}
		checkPageLanguage(t, "503 page", p, lang.code, lang.html)
	}
}

var htmlLang = regexp.MustCompile(`<html lang="([^"]+)">`)

func TestLanguageFollowsAcceptLanguageAndTheCookie(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	for _, tc := range []struct {
		acceptLanguage, cookie, want string
	}{
		{"", "", "en"},
		{"en-US,en;q=0.9", "", "en"},
		{"zh", "", "zh-Hans"},
		{"zh-CN,zh;q=0.9", "", "zh-Hans"},
		{"zh-Hans-CN", "", "zh-Hans"},
		{"zh-TW", "", "zh-Hans"}, // closer than English for a Chinese reader
		{"fr-FR,fr;q=0.9", "", "en"},
		{"fr, zh;q=0.5", "", "zh-Hans"},
		{"en-GB,zh;q=0.9", "", "en"},
		{"not a ;;; language", "", "en"},
		// The cookie overrides the header; an unknown value is ignored.
		{"zh-CN", "en", "en"},
		{"en-US", "zh", "zh-Hans"},
		{"", "zh", "zh-Hans"},
		{"zh-CN", "fr", "zh-Hans"},
		{"en-US", "zh-Hans", "en"},
	} {
		req := newRequest(t, http.MethodGet, ta.url("/login/"), nil)
		if tc.acceptLanguage != "" {
			req.Header.Set("Accept-Language", tc.acceptLanguage)
		}
		if tc.cookie != "" {
			req.Header.Set("Cookie", langCookie+"="+tc.cookie)
		}
		p := doRequest(t, testkit.Client(t, nil), req)
		m := htmlLang.FindStringSubmatch(p.body)
		if p.status != http.StatusOK || m == nil || m[1] != tc.want {
			t.Errorf("GET /login/ with Accept-Language %q, lang cookie %q: got status %d, %v; want <html lang=%q>", tc.acceptLanguage, tc.cookie, p.status, m, tc.want)
		}
	}
}

func TestLanguageSwitch(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	b := newBrowser(t)
	ta.login(t, b, false)

	// Every page links to the other language, coming back to itself.
	p := b.getIn(ta.url("/sessions/?x=1"), "en")
	want := `href="/lang?next=%2Fsessions%2F%3Fx%3D1&amp;to=zh"`
	if !strings.Contains(p.body, want) {
		t.Fatalf("GET /sessions/: got no language switch link %s; body:\n%s", want, p.body)
	}

	for _, tc := range []struct {
		query, location, cookie string
		status                  int
	}{
		{"to=zh&next=%2Fsessions%2F%3Fx%3D1", "/sessions/?x=1", "zh", 303},
		{"to=en&next=%2Fpassword%2F", "/password/", "en", 303},
		{"to=zh", "/", "zh", 303},
		{"to=zh&next=%2F%2Fevil.example%2F", "/", "zh", 303},
		{"to=zh&next=https%3A%2F%2Fevil.example%2F", "/", "zh", 303},
		{"to=fr&next=%2F", "", "", 400},
		{"next=%2F", "", "", 400},
	} {
		p := b.get(ta.url("/lang?" + tc.query))
		if p.status != tc.status || p.header.Get("Location") != tc.location {
			t.Errorf("GET /lang?%s: got %d to %q, want %d to %q", tc.query, p.status, p.header.Get("Location"), tc.status, tc.location)
		}
		c := cookieSet(p, langCookie)
		if tc.cookie == "" {
			if c != nil {
				t.Errorf("GET /lang?%s: got lang cookie %v, want none", tc.query, c)
			}
			continue
		}
		if c == nil || c.Value != tc.cookie || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
			t.Errorf("GET /lang?%s: got lang cookie %v, want %s, HttpOnly, SameSite=Lax, Path=/, persistent", tc.query, c, tc.cookie)
		}
	}

	// The choice sticks, whatever the browser asks for.
	b.get(ta.url("/lang?to=zh&next=%2F"))
	p = b.getIn(ta.url("/"), "en-US")
	if got := greeting(p.body); !strings.Contains(p.body, `<html lang="zh-Hans">`) || got != "您好，alice" {
		t.Fatalf("GET / after choosing Chinese: got greeting %q, want 您好，alice in a zh-Hans page", got)
	}
	if n := len(ta.sessionKeys(t)); n != 1 {
		t.Fatalf("after switching language: got %d session keys, want only the login's 1", n)
	}
}

func TestRelativeTimes(t *testing.T) {
	t.Parallel()
	ls, err := testLocales()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d      time.Duration // t = now - d
		en, zh string
	}{
		{0, "just now", "刚刚"},
		{20 * time.Second, "just now", "刚刚"},
		{time.Minute, "1 minute ago", "1 分钟前"},
		{5*time.Minute + 10*time.Second, "5 minutes ago", "5 分钟前"},
		{59*time.Minute + 40*time.Second, "1 hour ago", "1 小时前"},
		{3 * time.Hour, "3 hours ago", "3 小时前"},
		{30 * time.Hour, "1 day ago", "1 天前"},
		{72 * time.Hour, "3 days ago", "3 天前"},
		{-20 * time.Second, "in less than a minute", "1 分钟内"},
		{-30*time.Minute + time.Millisecond, "in 30 minutes", "30 分钟后"},
		{-24 * time.Hour, "in 1 day", "1 天后"},
		{-2 * time.Hour, "in 2 hours", "2 小时后"},
		// Past the counts written out at load (countedUpTo).
		{150 * 24 * time.Hour, "150 days ago", "150 天前"},
		{-400 * 24 * time.Hour, "in 400 days", "400 天后"},
	} {
		for code, want := range map[string]string{"en": tc.en, "zh": tc.zh} {
			got, err := ls.byCode[code].relative(now.Add(-tc.d), now)
			if err != nil || got != want {
				t.Errorf("%s: relative(now - %v): got %q, %v; want %q", code, tc.d, got, err, want)
			}
		}
	}
}

func TestDeviceSummary(t *testing.T) {
	t.Parallel()
	ls, err := testLocales()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d      session.Device
		en, zh string
	}{
		{session.Device{Browser: "Firefox", Version: "133", OS: "Linux", Kind: "Desktop"}, "Firefox 133 on Linux (Desktop)", "Linux 上的 Firefox 133（桌面设备）"},
		{session.Device{Browser: "Chrome", Version: "131", OS: "Android", Kind: "Mobile"}, "Chrome 131 on Android (Mobile)", "Android 上的 Chrome 131（手机）"},
		{session.Device{Browser: "Safari", OS: "iOS", Kind: "Tablet"}, "Safari on iOS (Tablet)", "iOS 上的 Safari（平板电脑）"},
		{session.Device{OS: "Windows"}, "Windows", "Windows"},
		{session.Device{Browser: "Googlebot", Kind: "Bot"}, "Googlebot (Bot)", "Googlebot（机器人）"},
		{session.Device{Browser: "Edge", Kind: "Fridge"}, "Edge (Fridge)", "Edge（Fridge）"},
		{session.Device{}, "Unknown device", "未知设备"},
		{session.Device{Kind: "Desktop"}, "Unknown device", "未知设备"},
	} {
		for code, want := range map[string]string{"en": tc.en, "zh": tc.zh} {
			got, err := ls.byCode[code].device(tc.d)
			if err != nil || got != want {
				t.Errorf("%s: device(%+v): got %q, %v; want %q", code, tc.d, got, err, want)
			}
		}
	}
	// The English summary matches the CLI's, where both have one.
	d := session.Device{Browser: "Firefox", Version: "133", OS: "Linux", Kind: "Desktop"}
	if got, _ := ls.byCode["en"].device(d); got != d.String() {
		t.Errorf("English device summary %q differs from session.Device.String %q", got, d.String())
	}
}

func TestTextFillsPlaceholders(t *testing.T) {
	t.Parallel()
	l := &locale{code: "xx", messages: map[string]string{"greet": "hi {name}, {name}!", "plain": "hi"}}
	for _, tc := range []struct {
		key     string
		args    []any
		want    string
		wantErr bool
	}{
		{"greet", []any{"name", "<bob>"}, "hi <bob>, <bob>!", false},
		{"greet", []any{"name", "bob", "unused", 1}, "hi bob, bob!", false},
		{"plain", []any{"min", 12}, "hi", false},
		{"greet", nil, "", true},
		{"greet", []any{"nam", "bob"}, "", true},
		{"greet", []any{"name"}, "", true},
		{"missing", nil, "", true},
	} {
		got, err := l.text(tc.key, tc.args...)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("text(%q, %v): got %q, %v; want %q, error %v", tc.key, tc.args, got, err, tc.want, tc.wantErr)
		}
	}
}

// The counts written out at load read exactly as the catalog's message
// does for every count and plural message, in both languages.
func TestCountsWrittenAheadAreTheCatalogs(t *testing.T) {
	t.Parallel()
	ls, err := testLocales()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls.list {
		slow := *l
		slow.counted = nil
		if len(l.counted) == 0 {
			t.Errorf("%s: no plural message written out at load", l.code)
		}
		for key := range l.counted {
			for n := range countedUpTo {
				fast, err1 := l.plural(key, n)
				want, err2 := slow.plural(key, n)
				if fast != want || err1 != nil || err2 != nil {
					t.Errorf("%s: plural(%q, %d): got %q (%v), catalog says %q (%v)", l.code, key, n, fast, err1, want, err2)
				}
			}
		}
	}
}
