package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// serverPackage is what ServerBinary builds.
const serverPackage = "loginsvc/cmd/server"

// built is the server binary of this test process, built at most once.
var built struct {
	once sync.Once
	dir  string // removed by RemoveBuilt
	path string
	err  error
}

// ServerBinary returns the path of the service's binary, built from the
// working tree on first use in this test process and shared by every later
// caller, so that tests which run it as a child process (the CLI, replicas
// behind haproxy) pay for one build. A failed build fails the test, with the
// compiler's output.
//
// The binary lives in a directory of its own that outlives any one test, so
// a package that calls ServerBinary removes it in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := testkit.RemoveBuilt(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
func ServerBinary(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "loginsvc-server-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		bin := filepath.Join(dir, "server")
		// By import path, so it builds the same from any package's
		// directory. `go test` puts its own GOROOT/bin first on PATH, so
		// this is the toolchain that builds the test.
		out, err := exec.Command("go", "build", "-o", bin, serverPackage).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build %s: %v\n%s", serverPackage, err, out)
			return
		}
		built.path = bin
	})
	if built.err != nil {
		tb.Fatalf("build the server: %v", built.err)
	}
	return built.path
}

// RemoveBuilt removes what ServerBinary built, if anything. Call it from
// TestMain once every test has run: a test still running the binary would
// lose it.
func RemoveBuilt() error {
	if built.dir == "" {
		return nil
	}
	if err := os.RemoveAll(built.dir); err != nil {
		return fmt.Errorf("remove the built server: %w", err)
	}
	return nil
}
