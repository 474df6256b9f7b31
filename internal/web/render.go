package web

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"text/template/parse"
	"time"

	"loginsvc/internal/activity"
	"loginsvc/internal/session"
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"index.html", "login.html", "logout.html", "error.html", "sessions.html", "password.html", "code.html", "reauth.html", "security.html", "totp.html", "codes.html"}

// Templates holds the parsed pages, once per language: the translate
// functions are bound to a catalog at parse time.
type Templates struct {
	locales *locales
	// pages maps a locale code, then a page name, to its template.
	pages map[string]map[string]*template.Template
	// langSwitch is layout.html's "lang-switch": the language switch,
	// rendered apart from the page (see langSwitchFor).
	langSwitch *template.Template
	// langSwitches are langSwitch's output for the pages' usual
	// addresses (switchPaths), by locale code then request URI, rendered
	// at start; read-only after ParseTemplates.
	langSwitches map[string]map[string]template.HTML
	// indexSkeletons are the logged-in index page's skeletons by locale
	// code (render_index.go); read-only after ParseTemplates.
	indexSkeletons map[string]indexSkeletons
}

// switchPaths are the addresses whose language switch is rendered at
// start: the pages a browser GETs without a query. Any other address
// (a query, a 404's path) has its switch rendered per request, the same
// way. A fixed list, so that no request can grow the set.
var switchPaths = []string{"/", "/login/", "/logout/", "/sessions/", "/password/", "/security/", "/security/totp/", "/reauth/", "/login/code/", "/login/step-up/"}

// ParseTemplates reads the catalogs and parses every page with the layout
// from fsys for every language, so a broken template, a catalog missing a
// key, or a template naming a key no catalog has stops the server at start,
// not at request time.
func ParseTemplates(fsys fs.FS) (*Templates, error) {
	ls, err := loadLocales(fsys)
	if err != nil {
		return nil, err
	}
	t := &Templates{locales: ls, pages: map[string]map[string]*template.Template{}}
	layout, err := fs.ReadFile(fsys, "layout.html")
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	for _, l := range ls.list {
		t.pages[l.code] = map[string]*template.Template{}
		for _, name := range pageNames {
			page, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, fmt.Errorf("read template: %w", err)
			}
			// As ParseFS(fsys, "layout.html", name) would, with the fixed
			// words written in first.
			p := template.New(name).Funcs(l.funcs())
			if _, err := p.New("layout.html").Parse(l.inline(string(layout))); err != nil {
				return nil, fmt.Errorf("parse template layout.html for %s: %w", name, err)
			}
			if _, err := p.Parse(l.inline(string(page))); err != nil {
				return nil, fmt.Errorf("parse template %s: %w", name, err)
			}
			for _, tt := range p.Templates() {
				if tt.Tree == nil {
					continue
				}
				for _, m := range messagesIn(tt.Tree.Root) {
					if err := ls.has(m.key, m.plural); err != nil {
						return nil, fmt.Errorf("template %s (%s): %w", name, tt.Name(), err)
					}
				}
			}
			t.pages[l.code][name] = p
		}
	}
	// The switch has no message to inline and calls no function, but
	// the layout's other actions need the functions to parse.
	all, err := template.New("layout.html").Funcs(ls.list[0].funcs()).Parse(string(layout))
	if err != nil {
		return nil, fmt.Errorf("parse template layout.html: %w", err)
	}
	if t.langSwitch = all.Lookup("lang-switch"); t.langSwitch == nil {
		return nil, fmt.Errorf("template layout.html: no lang-switch")
	}
	t.langSwitches = map[string]map[string]template.HTML{}
	t.indexSkeletons = map[string]indexSkeletons{}
	for _, l := range ls.list {
		if t.indexSkeletons[l.code], err = parseIndexSkeletons(fsys, l, layout); err != nil {
			return nil, err
		}
		t.langSwitches[l.code] = map[string]template.HTML{}
		for _, path := range switchPaths {
			h, err := t.renderLangSwitch(path, l)
			if err != nil {
				return nil, err
			}
			t.langSwitches[l.code][path] = h
		}
	}
	return t, nil
}

// langSwitchFor is the language switch of a page at r in l: what the
// layout's range over the choices rendered in its place before, escaped
// by html/template in the same context (element content; the test
// TestLanguageSwitchIsTheLayoutsOwn compares the two for hostile
// addresses). Rendering it was 12% of a logged-in page view's CPU; for
// the usual addresses it is now a lookup.
func (t *Templates) langSwitchFor(r *http.Request, l *locale) (template.HTML, error) {
	uri := r.URL.RequestURI()
	if h, ok := t.langSwitches[l.code][uri]; ok {
		return h, nil
	}
	return t.renderLangSwitch(uri, l)
}

// renderLangSwitch renders the switch of a page at request URI uri.
func (t *Templates) renderLangSwitch(uri string, l *locale) (template.HTML, error) {
	var b strings.Builder
	if err := t.langSwitch.Execute(&b, t.languageChoices(uri, l)); err != nil {
		return "", fmt.Errorf("render the language switch: %w", err)
	}
	return template.HTML(b.String()), nil //nolint:gosec // G203: html/template's own output, escaped in the context the layout puts it in
}

// fixedMessage is a template action that shows one message with nothing
// to fill in.
var fixedMessage = regexp.MustCompile(`\{\{t "([^"{}]+)"\}\}`)

// inline writes into a template's source, HTML-escaped, every message that
// is the same on every request ({{t "key"}} of a message without
// placeholders), so rendering a page spends no function call and no
// escaper on them: they were most of a page's actions. Escaped text is
// right wherever these templates show a message (element content, quoted
// attributes, the title); they have no script or style. Braces are
// escaped too, so no message can read as template syntax, alone or with
// the action next to it. A key the catalog lacks is left to the t call,
// which ParseTemplates checks.
func (l *locale) inline(src string) string {
	return fixedMessage.ReplaceAllStringFunc(src, func(action string) string {
		key := fixedMessage.FindStringSubmatch(action)[1]
		text, ok := l.messages[key]
		if !ok || len(l.holes[key]) > 0 {
			return action
		}
		return braces.Replace(html.EscapeString(text))
	})
}

// braces escapes what html.EscapeString leaves and the template parser
// would read.
var braces = strings.NewReplacer("{", "&#123;", "}", "&#125;")

// funcs are the template functions, bound to l:
//
//	t "key" ["name" value]...    the message, placeholders filled
//	tn "key" count [...]         the plural form for count
//	ago TIME                     "5 minutes ago" / "in 2 hours"
//	exact TIME                   "2026-01-02 15:04 UTC", for a title
//	datetime TIME                RFC 3339, for <time datetime>
//	device session.Device        "Firefox 133 on Linux (Desktop)"
func (l *locale) funcs() template.FuncMap {
	return template.FuncMap{
		"t":        l.text,
		"tn":       l.plural,
		"ago":      func(t time.Time) (string, error) { return l.relative(t, time.Now()) },
		"exact":    exactTime,
		"datetime": machineTime,
		"device":   l.device,
	}
}

// messagesIn collects the literal keys that t and tn calls in a template
// name, so they can be looked up at start. Keys computed at run time come
// from the Go code, which declares them with msg.
func messagesIn(n parse.Node) []message {
	var found []message
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			if len(n.Args) >= 2 {
				fn, isIdent := n.Args[0].(*parse.IdentifierNode)
				key, isString := n.Args[1].(*parse.StringNode)
				if isIdent && isString && (fn.Ident == "t" || fn.Ident == "tn") {
					found = append(found, message{key: key.Text, plural: fn.Ident == "tn"})
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	walk(n)
	return found
}

// Device words. Browser and OS names are names and stay as the parser
// gives them; the kind and the joining words are translated.
var (
	msgDeviceUnknown  = msg("device.unknown")
	msgBrowserOnOS    = msg("device.browser_on_os")
	msgDeviceWithKind = msg("device.with_kind")
	deviceKinds       = map[string]string{
		"Desktop": msg("device.kind.desktop"),
		"Mobile":  msg("device.kind.mobile"),
		"Tablet":  msg("device.kind.tablet"),
		"TV":      msg("device.kind.tv"),
		"Bot":     msg("device.kind.bot"),
	}
)

// device is a one-line summary of d in l, as session.Device.String is in
// English for the CLI.
func (l *locale) device(d session.Device) (string, error) {
	s := d.Browser
	if s != "" && d.Version != "" {
		s += " " + d.Version
	}
	var err error
	switch {
	case s != "" && d.OS != "":
		if s, err = l.text(msgBrowserOnOS, "browser", s, "os", d.OS); err != nil {
			return "", err
		}
	case d.OS != "":
		s = d.OS
	case s == "":
		return l.text(msgDeviceUnknown)
	}
	if d.Kind == "" {
		return s, nil
	}
	kind := d.Kind // a kind the parser learned after this code: shown as is
	if key, ok := deviceKinds[d.Kind]; ok {
		if kind, err = l.text(key); err != nil {
			return "", err
		}
	}
	return l.text(msgDeviceWithKind, "device", s, "kind", kind)
}

// view is what layout.html renders: the shared header around one page.
type view struct {
	// Lang is the page's language.
	Lang *locale
	// Account is true on pages that know who is logged in; error pages
	// do not (they may answer before the session is read) and show no
	// account links.
	Account bool
	// User is the logged-in user's name, "" when not logged in.
	User string
	// Flash is the one-time message shown above the page, if any.
	Flash *flash
	// LangSwitch is the language switch's entries, rendered
	// (Templates.langSwitchFor).
	LangSwitch template.HTML
	// Page is the page's own data.
	Page any
	// Notice is the catalog key of a one-time notice of a security event
	// that happened elsewhere ("a new device signed in"), "" for none;
	// NoticeKind its event kind.
	Notice, NoticeKind string
}

// noticeMessages are the notices of the events worth one (see
// activity.Notable).
var noticeMessages = map[string]string{
	activity.SignIn:           msg("notice.sign_in"),
	activity.PasswordChanged:  msg("notice.password_changed"),
	activity.FactorAdded:      msg("notice.factor_added"),
	activity.FactorRemoved:    msg("notice.factor_removed"),
	activity.FactorsReset:     msg("notice.factors_reset"),
	activity.RecoveryCodeUsed: msg("notice.recovery_code_used"),
}

// langChoice is one entry of the language switch.
type langChoice struct {
	// Code is the ?to= value; HTML the lang attribute.
	Code, HTML string
	// Name is the language's name in itself.
	Name string
	// Href switches to the language and comes back to this page.
	Href string
	// Current marks the page's language.
	Current bool
}

// languageChoices is the language switch for a page at request URI uri,
// in l.
func (t *Templates) languageChoices(uri string, l *locale) []langChoice {
	choices := make([]langChoice, 0, len(t.locales.list))
	for _, other := range t.locales.list {
		href := "/lang?" + url.Values{"to": {other.code}, "next": {uri}}.Encode()
		choices = append(choices, langChoice{
			Code: other.code, HTML: other.html, Name: other.messages["lang.name"],
			Href: href, Current: other == l,
		})
	}
	return choices
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page. It shows (and clears) the flash the
// request's cookie carries.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	a.renderView(w, r, status, page, data, a.takeFlash(w, r))
}

// renderNotice is render with f shown in the flash's place (the cookie's
// flash is cleared all the same): for a message that belongs to this
// answer rather than to a redirect.
func (a *App) renderNotice(w http.ResponseWriter, r *http.Request, status int, page string, data any, f *flash) {
	a.takeFlash(w, r)
	a.renderView(w, r, status, page, data, f)
}

func (a *App) renderView(w http.ResponseWriter, r *http.Request, status int, page string, data any, f *flash) {
	l := a.templates.locales.forRequest(r)
	langs, err := a.templates.langSwitchFor(r, l)
	if err != nil {
		a.serverError(w, r, fmt.Errorf("render %s in %s: %w", page, l.code, err))
		return
	}
	v := view{Lang: l, Account: true, User: a.currentUser(r.Context()), Flash: f, LangSwitch: langs, Page: data}
	if kind := a.sessions.TakeNotice(r.Context()); kind != "" {
		v.Notice, v.NoticeKind = noticeMessages[kind], kind
	}
	buf := a.buffers.get()
	defer a.buffers.put(buf)
	if p, ok := data.(indexPage); ok && page == "index.html" && v.User != "" && v.Flash == nil && v.Notice == "" {
		// The steady logged-in view: its skeleton (render_index.go).
		sk := a.templates.skeletonFor(l, p)
		if err := sk.write(buf, l, indexValues{user: v.User, langSwitch: langs, page: p, now: time.Now()}); err != nil {
			a.serverError(w, r, fmt.Errorf("render %s in %s: %w", page, l.code, err))
			return
		}
		writePage(w, status, l, buf)
		return
	}
	if err := a.templates.pages[l.code][page].ExecuteTemplate(buf, "layout", v); err != nil {
		a.serverError(w, r, fmt.Errorf("render %s in %s: %w", page, l.code, err))
		return
	}
	writePage(w, status, l, buf)
}

func writePage(w http.ResponseWriter, status int, l *locale, buf *bytes.Buffer) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", l.html)
	h.Add("Vary", "Accept-Language")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// errorText is an error page's title and message, as catalog keys.
type errorText struct {
	Title, Message string
}

func errorMsg(name string) errorText {
	return errorText{Title: msg("error." + name + ".title"), Message: msg("error." + name + ".message")}
}

// The error pages.
var (
	errServer      = errorMsg("server")
	errUnavailable = errorMsg("unavailable")
	errBadRequest  = errorMsg("bad_request")
	errTooLarge    = errorMsg("too_large")
	errNotFound    = errorMsg("not_found")
	errForbidden   = errorMsg("forbidden")
)

// errorPage writes a short human page in the request's language. It
// renders from a template parsed at start; if even that fails, it falls
// back to plain text. It shows no account details: it may answer before
// the session is read, or because reading it failed.
func (a *App) errorPage(w http.ResponseWriter, r *http.Request, status int, text errorText) {
	if machinePath(r.URL.Path) {
		// Proxies and scripts read a code, never a page.
		writeJSONError(w, status, errorCode(status))
		return
	}
	l := a.templates.locales.forRequest(r)
	langs, err := a.templates.langSwitchFor(r, l)
	v := view{Lang: l, LangSwitch: langs, Page: text}
	var buf bytes.Buffer
	if err == nil {
		err = a.templates.pages[l.code]["error.html"].ExecuteTemplate(&buf, "layout", v)
	}
	if err != nil {
		a.log.Error("render error page", "lang", l.code, "request_id", requestID(r.Context()), "err", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writePage(w, status, l, &buf)
}
