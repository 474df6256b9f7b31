package web

// /static/ serves the static folder and nothing else: no traversal shape
// reaches a template's source.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
)

// rawGet sends "GET target HTTP/1.1" to ta byte for byte, so that no client
// cleans or re-escapes the path, and reads the answer.
func rawGet(t *testing.T, ta *testApp, target string) page {
	t.Helper()
	u, err := url.Parse(ta.srv.URL)
	if err != nil {
		t.Fatalf("parse %q: %v", ta.srv.URL, err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, u.Host); err != nil {
		t.Fatalf("write GET %s: %v", target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to GET %s: %v", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the body of GET %s: %v", target, err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func TestStaticServesOnlyTheStaticFolder(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))

	p := rawGet(t, ta, "/static/style.css")
	if p.status != http.StatusOK {
		t.Fatalf("GET /static/style.css: got status %d, want 200", p.status)
	}
	if got, want := p.header.Get("Cache-Control"), "public, max-age=3600"; got != want {
		t.Errorf("GET /static/style.css: got Cache-Control %q, want %q", got, want)
	}

	for _, target := range []string{
		"/static/..%2flogin.html",
		"/static/..%2f",
		"/static/..%2findex.html",
		"/static/..%2flocales%2fen.json",
		"/static/%2e%2e/login.html",
		"/static/%2e%2e%2flogin.html",
		"/static/../login.html",
		"/static/./style.css/..%2f..%2flogin.html",
		"/static/",
		"/static/.",
		"/static/%2e",
		"/static/style.css%2f..%2f..%2flayout.html",
	} {
		t.Run(target, func(t *testing.T) {
			p := rawGet(t, ta, target)
			// A redirect is the router cleaning a literal "." or "..":
			// it sends the browser to the cleaned path, served like any
			// other.
			switch p.status {
			case http.StatusNotFound, http.StatusBadRequest, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
			default:
				t.Fatalf("GET %s: got status %d, want 404, 400 or the router's redirect; body:\n%.200s", target, p.status, p.body)
			}
			// Neither a template's source, nor a message catalog, nor a
			// folder listing; the 404 page itself links style.css.
			for _, leak := range []string{"{{", `"common.home"`, `<a href="style.css">`} {
				if strings.Contains(p.body, leak) {
					t.Errorf("GET %s: got status %d with %q in the body, want neither source nor listing; body:\n%.300s", target, p.status, leak, p.body)
				}
			}
		})
	}
}
