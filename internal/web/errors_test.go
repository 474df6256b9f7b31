package web

// A handler that fails: a panic anywhere behind Handler is one generic 500
// page, one log line with the request id, and the server carries on.

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// panickyFS is the static file system the App serves: opening one of
// its trap names panics, so a panic happens inside the real middleware
// chain; every other name is the real static file.
type panickyFS struct{ fs.FS }

// panicSecret is what the trap panics carry: the log must name it, the
// page must not.
const panicSecret = "panic-detail-7c1e"

func (p panickyFS) Open(name string) (fs.File, error) {
	switch name {
	case "boom.css":
		panic(panicSecret)
	case "index.css":
		var none []string
		_ = none[len(name)] // a runtime error, not a panic(value)
	case "abort.css":
		panic(http.ErrAbortHandler)
	case "error.css":
		panic(errors.New(panicSecret))
	}
	return p.FS.Open(name)
}

// TestPanicInAHandlerIsAGeneric500 makes handlers behind App.Handler panic
// and checks the answer, the log and that the server carries on.
func TestPanicInAHandlerIsAGeneric500(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	a := ta.app
	a.static = panickyFS{a.static}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	client := testkit.Client(t, nil)
	home := func(t *testing.T) {
		t.Helper()
		p := doRequest(t, client, newRequest(t, http.MethodGet, srv.URL+"/", nil))
		if p.status != http.StatusOK || greeting(p.body) != "Hello" {
			t.Fatalf("GET / after the panic: got status %d, greeting %q; want 200, %q", p.status, greeting(p.body), "Hello")
		}
	}
	check := func(t *testing.T, p page, logged string, logsBefore int) {
		t.Helper()
		if p.status != http.StatusInternalServerError {
			t.Fatalf("got status %d, want 500; body:\n%s", p.status, p.body)
		}
		if !strings.Contains(p.body, "Something went wrong") {
			t.Errorf("got body without the generic message:\n%s", p.body)
		}
		for _, leak := range []string{panicSecret, "partial page", aliceName, "index out of range"} {
			if strings.Contains(p.body, leak) {
				t.Errorf("got body containing %q, want the generic page only:\n%s", leak, p.body)
			}
		}
		checkNoGoErrorText(t, "panic page", p.body)
		checkHardeningHeaders(t, "panic page", p)
		if got := strings.Count(ta.logs.String(), logged) - logsBefore; got != 1 {
			t.Errorf("got %d log lines with %q, want 1:\n%s", got, logged, ta.logs.String())
		}
	}

	for _, tc := range []struct {
		path string
		// logged is what the one log line about the panic contains.
		logged string
	}{
		{"/static/boom.css", panicSecret},
		{"/static/index.css", "index out of range"},
		{"/static/error.css", panicSecret},
	} {
		t.Run(tc.path, func(t *testing.T) {
			before := strings.Count(ta.logs.String(), tc.logged)
			check(t, doRequest(t, client, newRequest(t, http.MethodGet, srv.URL+tc.path, nil)), tc.logged, before)
			home(t)
		})
	}

	t.Run("after part of a page was written", func(t *testing.T) {
		// The session chain buffers the page, so none of it may leak
		// out next to the error page. The chain is Handler's own.
		const marker = "partial-write-3b9a"
		h := a.everyResponse(a.withSession(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "partial page "+aliceName)
			panic(marker)
		})))
		partial := httptest.NewServer(h)
		t.Cleanup(partial.Close)
		before := strings.Count(ta.logs.String(), marker)
		check(t, doRequest(t, client, newRequest(t, http.MethodGet, partial.URL+"/", nil)), marker, before)
		home(t)
	})

	t.Run("ErrAbortHandler", func(t *testing.T) {
		// net/http's way to abort a response: the connection is cut, no
		// page is written, and the server carries on.
		if _, err := fetch(client, newRequest(t, http.MethodGet, srv.URL+"/static/abort.css", nil)); err == nil {
			t.Fatalf("GET /static/abort.css: got a response, want the connection cut")
		}
		home(t)
	})
	if n := strings.Count(ta.logs.String(), "level=ERROR"); n != 4 {
		t.Errorf("got %d ERROR log lines, want 4 (one per recovered panic):\n%s", n, ta.logs.String())
	}
}

// TestPanicLogLineCarriesTheRequestID: the one log line about a panic must
// name the request id the client was given in X-Request-Id, and the panicked
// request must be in the access log like every other ("one line per
// request", logRequests), or an operator cannot connect a user's report to
// the error.
func TestPanicLogLineCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, redistest.Start(t))
	ta.app.static = panickyFS{ta.app.static}
	srv := httptest.NewServer(ta.app.Handler())
	t.Cleanup(srv.Close)

	p := doRequest(t, testkit.Client(t, nil), newRequest(t, http.MethodGet, srv.URL+"/static/boom.css", nil))
	if p.status != http.StatusInternalServerError {
		t.Fatalf("GET /static/boom.css: got status %d, want 500", p.status)
	}
	id := p.header.Get("X-Request-Id")
	if id == "" {
		t.Fatalf("GET /static/boom.css: got no X-Request-Id, want one")
	}
	var panicLine, accessLine string
	for _, line := range strings.Split(ta.logs.String(), "\n") {
		switch {
		case strings.Contains(line, panicSecret):
			panicLine = line
		case strings.Contains(line, "msg=request ") && strings.Contains(line, "path=/static/boom.css"):
			accessLine = line
		}
	}
	if !strings.Contains(panicLine, "request_id="+id) {
		t.Errorf("panic log line: got %q, want it to carry request_id=%s (the X-Request-Id sent)", panicLine, id)
	}
	if !strings.Contains(accessLine, "status=500") || !strings.Contains(accessLine, "request_id="+id) {
		t.Errorf("access log line for the panicked request: got %q, want one with status=500 and request_id=%s", accessLine, id)
	}
}
