package deploy

// What the chart must agree with, read from the server's own source with
// go/ast rather than copied into the test: the environment variables
// cmd/server reads, the routes internal/web registers, the headers a
// forward-auth answer carries, and the server's shutdown deadline.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseDir parses the non-test Go files of a directory of the repository.
func parseDir(t testing.TB, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(repoRoot(t), dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("%s: no Go files", dir)
	}
	return fset, files
}

// stringArg is the value of a call's i-th argument when it is a string
// literal.
func stringArg(call *ast.CallExpr, i int) (string, bool) {
	if len(call.Args) <= i {
		return "", false
	}
	lit, ok := call.Args[i].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// calledName is the name a call is made by: f for f(...), m for x.m(...).
func calledName(call *ast.CallExpr) string {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		return fn.Sel.Name
	}
	return ""
}

// serverEnvVars are the environment variables cmd/server reads: the first
// argument of every env("NAME", default) and getenv("NAME") call
// (parseConfig's helper and the getenv that run is given; main passes
// os.Getenv).
func serverEnvVars(t testing.TB) map[string]bool {
	t.Helper()
	_, files := parseDir(t, "cmd/server")
	vars := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if name := calledName(call); name == "env" || name == "getenv" {
				if v, ok := stringArg(call, 0); ok {
					vars[v] = true
				}
			}
			return true
		})
	}
	// A sanity floor: if the config code changed shape so that this finds
	// almost nothing, the env checks would pass vacuously.
	for _, must := range []string{"REDIS_URL", "DEVICE_COOKIE_KEY", "SHUTDOWN_DRAIN", "ADDR", "INSTANCE_ID"} {
		if !vars[must] {
			t.Fatalf("cmd/server: found no env(%q, …) or getenv(%q) call (found %v): update serverEnvVars to how config.go reads it", must, must, slices.Sorted(maps.Keys(vars)))
		}
	}
	return vars
}

// webRoutes are the patterns registered in internal/web/routes.go, as
// written ("GET /readyz", "/auth/"), from every Handle and HandleFunc call.
func webRoutes(t testing.TB) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	name := filepath.Join(repoRoot(t), "internal", "web", "routes.go")
	f, err := parser.ParseFile(fset, name, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	routes := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if name := calledName(call); name == "Handle" || name == "HandleFunc" {
			if p, ok := stringArg(call, 0); ok {
				routes[p] = true
			}
		}
		return true
	})
	if len(routes) == 0 {
		t.Fatal("internal/web/routes.go: no Handle or HandleFunc calls found")
	}
	return routes
}

// hasGETRoute reports whether routes.go registers exactly this path for
// GET, as "GET /path" (which serves HEAD too) or without a method.
func hasGETRoute(routes map[string]bool, path string) bool {
	return routes["GET "+path] || routes[path]
}

// forwardAuthHeaders are the identity headers of a successful forward-auth
// answer: the constants that internal/web's forwardAuth sets
// unconditionally, at the top level of its body (the login URL header is
// set only inside the no-session branch).
func forwardAuthHeaders(t testing.TB) []string {
	t.Helper()
	_, files := parseDir(t, "internal/web")
	consts := map[string]string{}
	var body *ast.BlockStmt
	for _, f := range files {
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								consts[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Name.Name == "forwardAuth" && d.Recv != nil {
					body = d.Body
				}
			}
		}
	}
	if body == nil {
		t.Fatal("internal/web: no method forwardAuth: update forwardAuthHeaders")
	}
	var headers []string
	// A header is set as h.Set(CONST, …) or, sharing a value, h[CONST] = …;
	// only constants of the package count (not "Vary" and the like).
	add := func(e ast.Expr) {
		id, ok := e.(*ast.Ident)
		if !ok {
			return
		}
		v, ok := consts[id.Name]
		if !ok {
			t.Fatalf("forwardAuth sets header %s, which is not a string constant of internal/web", id.Name)
		}
		headers = append(headers, v)
	}
	for _, stmt := range body.List {
		switch st := stmt.(type) {
		case *ast.ExprStmt:
			if call, ok := st.X.(*ast.CallExpr); ok && calledName(call) == "Set" && len(call.Args) == 2 {
				add(call.Args[0])
			}
		case *ast.AssignStmt:
			if len(st.Lhs) == 1 {
				if ix, ok := st.Lhs[0].(*ast.IndexExpr); ok {
					add(ix.Index)
				}
			}
		}
	}
	if len(headers) == 0 {
		t.Fatal("internal/web forwardAuth: no header.Set(CONST, …) or h[CONST] = … at the top level of its body: update forwardAuthHeaders")
	}
	return headers
}

// serverShutdownDeadline is how long the server gives in-flight requests
// after the drain: the N*time.Second of the one context.WithTimeout call in
// cmd/server/serve.go.
func serverShutdownDeadline(t testing.TB) time.Duration {
	t.Helper()
	fset := token.NewFileSet()
	name := filepath.Join(repoRoot(t), "cmd", "server", "serve.go")
	f, err := parser.ParseFile(fset, name, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	var found []time.Duration
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || calledName(call) != "WithTimeout" || len(call.Args) != 2 {
			return true
		}
		if d, err := secondsLiteral(call.Args[1]); err == nil {
			found = append(found, d)
		}
		return true
	})
	if len(found) != 1 {
		t.Fatalf("cmd/server/serve.go: %d context.WithTimeout(…, N*time.Second) calls, want the one shutdown deadline: update serverShutdownDeadline", len(found))
	}
	return found[0]
}

// secondsLiteral reads N*time.Second.
func secondsLiteral(e ast.Expr) (time.Duration, error) {
	bin, ok := e.(*ast.BinaryExpr)
	if !ok || bin.Op != token.MUL {
		return 0, fmt.Errorf("not N*time.Second")
	}
	lit, ok := bin.X.(*ast.BasicLit)
	sel, ok2 := bin.Y.(*ast.SelectorExpr)
	if !ok || !ok2 || lit.Kind != token.INT || sel.Sel.Name != "Second" {
		return 0, fmt.Errorf("not N*time.Second")
	}
	n, err := strconv.Atoi(lit.Value)
	return time.Duration(n) * time.Second, err
}
