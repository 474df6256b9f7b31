package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
)

// Templates holds the parsed pages.
type Templates struct {
	pages map[string]*template.Template
}

// ParseTemplates parses every page with the layout from fsys, so a missing
// or broken template stops the server at start, not at request time.
func ParseTemplates(fsys fs.FS) (*Templates, error) {
	t := &Templates{pages: map[string]*template.Template{}}
	for _, name := range []string{"index.html", "login.html", "logout.html", "error.html"} {
		p, err := template.New(name).ParseFS(fsys, "layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		t.pages[name] = p
	}
	return t, nil
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var buf bytes.Buffer
	if err := a.templates.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		a.serverError(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

type errorPage struct {
	Title   string
	Message string
}

// errorPage writes a short human page. It renders from a template parsed at
// start; if even that fails, it falls back to plain text.
func (a *App) errorPage(w http.ResponseWriter, status int, title, message string) {
	var buf bytes.Buffer
	if err := a.templates.pages["error.html"].ExecuteTemplate(&buf, "layout", errorPage{title, message}); err != nil {
		http.Error(w, title, status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
