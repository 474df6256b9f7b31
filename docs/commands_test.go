package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"loginsvc/internal/redistest"
	"loginsvc/internal/testkit"
)

// root is the repository root, seen from this package's directory.
const root = ".."

func TestMain(m *testing.M) {
	code := m.Run()
	if err := testkit.RemoveBuilt(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// coverage says how one command block of the documentation is kept true:
// Run runs it here, or RanBy names what runs it elsewhere, or Offline says
// why nothing can run it on the test machines. Exactly one is set.
type coverage struct {
	Run     func(t *testing.T, h *harness, b block)
	RanBy   []ranBy
	Offline string
}

// ranBy is a test, or a step of the test command, that runs a block's
// commands: File (from the repository root) must contain Contains, so a
// renamed or removed test is noticed.
type ranBy struct {
	File, Contains string
}

// test names a Go test in file.
func test(file, name string) ranBy { return ranBy{File: file, Contains: "func " + name + "("} }

// commandBlocks accounts for every ```sh and ```console block of the README
// and docs/*.md, by its page and first command (comment left off). A block
// missing here fails TestEveryCommandBlockRuns, and so does an entry that
// no longer names a block.
var commandBlocks = map[string]coverage{
	"README.md: export GOTOOLCHAIN=go1.27.3": {Run: runReadmeStart},
	"docs/api.md: curl -s -X POST http://localhost:8080/api/login -H 'Content-Type: application/json' \\": {Run: runAPI},
	"docs/operations.md: export REDIS_URL=redis://127.0.0.1:6379/0":                                       {Run: runUserCommands},
	"docs/operations.md: ./server user mfa status alice": {RanBy: []ranBy{
		test("cmd/server/cli_mfa_test.go", "TestUserMFAStatus"),
		test("cmd/server/cli_mfa_linux_test.go", "TestUserMFAResetAsksOnATerminal"),
	}},
	"docs/operations.md: ./server sessions list":                                       {Run: runSessionCommands},
	"docs/operations.md: redis-cli XGROUP CREATE events siem '$' MKSTREAM":             {Run: runEventsConsumerGroup},
	"docs/operations.md: REDIS_URL=redis://127.0.0.1:6379/0 ./server events tail -n 2": {Run: runEventsTail},
	"docs/operations.md: curl -s localhost:9090/metrics | grep loginsvc_logins_total":  {Run: runMetrics},
	"docs/operations.md: curl -s 'http://127.0.0.1:9090/api/v1/query' --data-urlencode 'query=up{job=\"loginsvc\"}'": {RanBy: []ranBy{
		test("deploy/monitoring_test.go", "TestComposeMonitoring"),
	}},
	"docs/redis.md: redis-cli -p 39017 --scan --pattern 'scs:session:*'": {Run: runRedisWalkthrough},
	"docs/benchmark.md: ./scripts/bench.sh": {RanBy: []ranBy{
		{File: "scripts/test.sh", Contains: "./scripts/bench.sh --smoke"},
	}},
	"docs/running.md: ./scripts/stand-in-images.sh": {RanBy: []ranBy{
		{File: "scripts/test.sh", Contains: "./scripts/stand-in-images.sh"},
		{File: "scripts/stand-in-images.sh", Contains: "LABEL=org.loginsvc.stand-in"},
	}},
	"docs/running.md: docker compose up --build": {RanBy: []ranBy{
		test("deploy/docker_test.go", "TestComposeStack"),
	}},
	"docs/running.md: docker compose -f docker-compose.yml -f compose.sentinel.yml up --build": {RanBy: []ranBy{
		test("deploy/compose_sentinel_test.go", "TestComposeSentinelFailover"),
	}},
	"docs/running.md: helm install loginsvc deploy/helm/loginsvc -n auth --create-namespace \\": {RanBy: []ranBy{
		// No cluster runs here: the chart is linted and rendered with
		// every examples/ file, redis-sentinel.yaml among them.
		test("deploy/helm_test.go", "TestHelmLint"),
		test("deploy/helm_test.go", "TestHelmTemplate"),
	}},
	"docs/security.md: export GOTOOLCHAIN=go1.27.3": {RanBy: []ranBy{
		{File: "scripts/test.sh", Contains: "golang.org/x/vuln/cmd/govulncheck@v1.9.0"},
		{File: "scripts/test.sh", Contains: "./scripts/vulndb.sh"},
	}},
}

// TestEveryCommandBlockRuns runs, or finds the test that runs, every
// command block a reader would copy from the README and docs/*.md, so that
// a command the pages show cannot drift from what the binary, Redis and
// the scripts do.
func TestEveryCommandBlockRuns(t *testing.T) {
	blocks := commandBlocksOfPages(t)
	seen := map[string]bool{}
	for _, b := range blocks {
		if seen[b.Key()] {
			t.Errorf("%s:%d: two blocks start with %q on one page: give one another first command, or tell them apart here", b.File, b.Line, b.First())
		}
		seen[b.Key()] = true
	}
	for _, key := range slices.Sorted(maps.Keys(commandBlocks)) {
		c := commandBlocks[key]
		if !seen[key] {
			t.Errorf("commandBlocks has %q, which no page shows any more: update the entry to the block's new first command", key)
		}
		n := 0
		for _, set := range []bool{c.Run != nil, len(c.RanBy) > 0, c.Offline != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Errorf("commandBlocks[%q] sets %d of Run, RanBy and Offline, want exactly one", key, n)
		}
		for _, r := range c.RanBy {
			b, err := os.ReadFile(filepath.Join(root, r.File))
			if err != nil || !bytes.Contains(b, []byte(r.Contains)) {
				t.Errorf("commandBlocks[%q]: %s does not contain %q (err %v): name what runs the block now", key, r.File, r.Contains, err)
			}
		}
	}
	var unaccounted []string
	for _, b := range blocks {
		if _, ok := commandBlocks[b.Key()]; !ok {
			unaccounted = append(unaccounted, fmt.Sprintf("%s:%d %q", b.File, b.Line, b.Key()))
		}
	}
	if len(unaccounted) > 0 {
		t.Fatalf("command blocks that nothing runs (add each to commandBlocks in docs/commands_test.go, with a Run that runs it or the test that does):\n  %s", strings.Join(unaccounted, "\n  "))
	}
	if t.Failed() {
		t.FailNow()
	}

	h := newHarness(t)
	for _, b := range blocks {
		c := commandBlocks[b.Key()]
		name := fmt.Sprintf("%s:%d", b.File, b.Line)
		switch {
		case c.Run != nil:
			t.Run(name, func(t *testing.T) { c.Run(t, h, b) })
		case c.Offline != "":
			t.Logf("%s %q: not run: %s", name, b.First(), c.Offline)
		}
	}
}

// --- the pages and their blocks ---

// pages are the files whose command blocks are checked: the README and
// every page of docs/, the decisions included.
func pages(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	for _, pattern := range []string{"docs/*.md", "docs/decisions/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, err := filepath.Rel(root, f)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, filepath.ToSlash(rel))
		}
	}
	return files
}

// block is one fenced block of a page.
type block struct {
	File  string   // from the repository root
	Line  int      // of the opening fence, 1-based
	Lang  string   // the fence's language
	Lines []string // between the fences, the block's indentation removed
}

var fence = regexp.MustCompile("^(\\s*)```\\s*(\\S*)\\s*$")

// blocksOf returns every fenced block of the page file.
func blocksOf(t *testing.T, file string) []block {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var out []block
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		b := block{File: file, Line: i + 1, Lang: m[2]}
		for i++; i < len(lines); i++ {
			if fence.MatchString(lines[i]) && strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "```")) == "" {
				break
			}
			b.Lines = append(b.Lines, strings.TrimPrefix(lines[i], m[1]))
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: a ``` block that never ends", file, b.Line)
		}
		out = append(out, b)
	}
	return out
}

// commandBlocksOfPages returns the blocks a reader runs in a shell.
func commandBlocksOfPages(t *testing.T) []block {
	t.Helper()
	var out []block
	for _, p := range pages(t) {
		for _, b := range blocksOf(t, p) {
			switch b.Lang {
			case "sh", "console", "bash", "shell", "shell-session":
				out = append(out, b)
			}
		}
	}
	return out
}

// command is one command of a block and what the page shows it printing.
type command struct {
	Text    string   // as typed, continuation lines included
	Output  []string // console blocks: the lines up to the next prompt
	Comment string   // the "# …" after it, if any
}

var trailingComment = regexp.MustCompile(`\s{2,}#\s(.*)$`)

// Commands splits the block into its commands: in a console block the
// lines after "$ ", in a sh block every line; a line ending in a backslash
// goes on on the next.
func (b block) Commands() []command {
	var out []command
	console := b.Lang == "console" || b.Lang == "shell-session"
	for i := 0; i < len(b.Lines); i++ {
		line := b.Lines[i]
		if console {
			if !strings.HasPrefix(line, "$ ") {
				if len(out) > 0 && line != "" {
					out[len(out)-1].Output = append(out[len(out)-1].Output, line)
				}
				continue
			}
			line = strings.TrimPrefix(line, "$ ")
		} else if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		text := line
		for strings.HasSuffix(line, "\\") && i+1 < len(b.Lines) {
			i++
			line = b.Lines[i]
			text += "\n" + line
		}
		c := command{Text: text}
		if m := trailingComment.FindStringSubmatch(text); m != nil {
			c.Comment = m[1]
		}
		out = append(out, c)
	}
	return out
}

// First is the block's first command without its comment.
func (b block) First() string {
	cmds := b.Commands()
	if len(cmds) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(cmds[0].Text, "\n")
	return strings.TrimSpace(trailingComment.ReplaceAllString(first, ""))
}

// Key names the block in commandBlocks.
func (b block) Key() string { return b.File + ": " + b.First() }

// --- the harness: the built server, Redis, and a shell ---

// harness is what the blocks run against: the built server as ./server in
// a directory of its own, one replica on the embedded Redis (what `go run ./cmd/server`
// starts) and one on a real redis-server, with metrics and pprof on.
type harness struct {
	bin      string
	binDir   string // holds `server`, as `go build -o server ./cmd/server` leaves it
	redis    *redistest.Server
	embedded *replica
	real     *replica
}

// replica is one running server.
type replica struct {
	base    string // http://127.0.0.1:PORT
	metrics string // 127.0.0.1:PORT of METRICS_ADDR
	proc    *testkit.Process
}

// demoUser is the user `go run ./cmd/server` creates.
const demoUser = "demo"

// testPassword is the password the blocks' users get.
const testPassword = "correct horse battery staple"

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{bin: testkit.ServerBinary(t), binDir: t.TempDir()}
	if err := os.Symlink(h.bin, filepath.Join(h.binDir, "server")); err != nil {
		t.Fatal(err)
	}
	h.redis = redistest.Start(t)
	h.embedded = h.start(t, "embedded")
	h.real = h.start(t, "real", "REDIS_URL="+h.redis.URL(), "PPROF=on",
		"DEVICE_COOKIE_KEY=646f63732d746573742d6b65792d6f662d33322d62797465732d2d2d2d2d2d21")
	return h
}

// baseEnv is the environment of everything the harness runs: this
// process's, without any REDIS_URL or ADDR of the machine. The built
// server is not on PATH: the pages say ./server, or go run ./cmd/server.
func (h *harness) baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "REDIS_URL", "ADDR", "METRICS_ADDR", "PPROF", "LOG_FORMAT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start runs the server with env added and waits until /readyz answers.
func (h *harness) start(t *testing.T, name string, env ...string) *replica {
	t.Helper()
	addr, metrics := testkit.FreeAddr(t), testkit.FreeAddr(t)
	r := &replica{
		base:    "http://" + addr,
		metrics: metrics,
		proc:    testkit.NewProcess(t, filepath.Join(t.TempDir(), name+".log")),
	}
	cmd := exec.Command(h.bin)
	cmd.Env = append(h.baseEnv(), append([]string{"ADDR=" + addr, "METRICS_ADDR=" + metrics, "INSTANCE_ID=docs-" + name}, env...)...)
	if err := r.proc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	client := testkit.Client(t, nil)
	testkit.Eventually(t, "the "+name+" server answers /readyz", 30*time.Second, func() (bool, string) {
		if !r.proc.Running() {
			t.Fatalf("the %s server exited:\n%s", name, r.proc.LogTail(30))
		}
		resp, err := client.Get(r.base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return r
}

// output is what the replica has printed so far.
func (r *replica) output() string { return r.proc.Output() }

// shell runs a block's commands one by one as a reader would, in bash, with
// the values a run makes (addresses, ports, tokens, ids) put in place of
// the page's examples.
type shell struct {
	t     *testing.T
	h     *harness
	env   map[string]string
	subst []string // old, new, … applied in order to every command
	stdin string
	dir   string // the working directory: the repository root unless set
}

func (h *harness) shell(t *testing.T) *shell {
	return &shell{t: t, h: h, env: map[string]string{}}
}

// replace adds a substitution: old in a command becomes new.
func (s *shell) replace(old, new string) { s.subst = append(s.subst, old, new) }

func (s *shell) environ() []string {
	env := s.h.baseEnv()
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		env = append(env, k+"="+s.env[k])
	}
	return env
}

func (s *shell) expand(c command) string {
	text := c.Text
	for i := 0; i+1 < len(s.subst); i += 2 {
		text = strings.ReplaceAll(text, s.subst[i], s.subst[i+1])
	}
	return text
}

var assignment = regexp.MustCompile(`^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)

// assigns reports whether text only sets a variable (`TOKEN=…`, `export
// REDIS_URL=…`, `KEY="…$(…)…"`), and which, as opposed to running a command
// with a variable set for it (`REDIS_URL=… server events tail`).
func assigns(text string) (string, bool) {
	m := assignment.FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	v := strings.TrimSpace(trailingComment.ReplaceAllString(strings.TrimPrefix(text, m[0]), ""))
	quotedValue := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if strings.HasPrefix(m[0], "export") || quotedValue || !strings.ContainsAny(v, " \t\n") {
		return m[1], true
	}
	return "", false
}

// run runs c and returns its standard output; a failure (or a run longer
// than a minute) fails the test. An assignment (`TOKEN=…`, `export
// REDIS_URL=…`) is evaluated by bash and kept for the commands after it.
func (s *shell) run(c command) string {
	s.t.Helper()
	text := s.expand(c)
	if name, ok := assigns(text); ok {
		out, err := s.exec(text+"\nprintf %s \"$"+name+"\"", time.Minute)
		if err != nil {
			s.t.Fatalf("%s\n(ran: %s): %v\n%s", c.Text, text, err, out)
		}
		s.env[name] = out
		return ""
	}
	out, err := s.exec(text, time.Minute)
	if err != nil {
		s.t.Fatalf("%s\n(ran: %s): %v\n%s", c.Text, text, err, out)
	}
	return out
}

// runFor runs c for d and then stops it (a command that follows, such as
// --follow), returning what it printed; exiting early with an error fails.
func (s *shell) runFor(c command, d time.Duration) string {
	s.t.Helper()
	text := s.expand(c)
	out, err := s.exec(text, d)
	if !errors.Is(err, context.DeadlineExceeded) {
		s.t.Fatalf("%s\n(ran: %s): ended before it was stopped (%v)\n%s", c.Text, text, err, out)
	}
	return out
}

// exec runs text in bash (with pipefail, as a careful reader's shell) in
// its own process group, killed whole after timeout. stderr goes into the
// error only.
func (s *shell) exec(text string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", text)
	cmd.Dir = root
	if s.dir != "" {
		cmd.Dir = s.dir
	}
	cmd.Env = s.environ()
	cmd.Stdin = strings.NewReader(s.stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), ctx.Err()
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%w; stderr: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// commandsOf returns b's commands, failing unless it has want of them: a
// runner below knows what each one is for.
func commandsOf(t *testing.T, b block, want int) []command {
	t.Helper()
	cmds := b.Commands()
	if len(cmds) != want {
		var texts []string
		for _, c := range cmds {
			texts = append(texts, c.Text)
		}
		t.Fatalf("%s:%d has %d commands, want %d (its runner in docs/commands_test.go knows %d): %q", b.File, b.Line, len(cmds), want, want, texts)
	}
	return cmds
}

// --- checks on what the commands print ---

// jsonKeys returns the keys of the JSON object text, nested objects' keys
// as "outer.inner", so that two records can be compared by shape.
func jsonKeys(t *testing.T, what, text string) []string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(text)), &v); err != nil {
		t.Fatalf("%s: not a JSON object: %v\n%s", what, err, text)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			keys = append(keys, prefix+k)
			if inner, ok := val.(map[string]any); ok {
				walk(prefix+k+".", inner)
			}
		}
	}
	walk("", v)
	slices.Sort(keys)
	return keys
}

// sameKeys fails unless the JSON the command printed has the fields the
// page shows it printing.
func sameKeys(t *testing.T, c command, shown, got string) {
	t.Helper()
	want, have := jsonKeys(t, "the page's example of "+c.Text, shown), jsonKeys(t, c.Text, got)
	if !slices.Equal(have, want) {
		t.Errorf("%s prints the fields %q, the page shows %q", c.Text, have, want)
	}
}

// columns splits a text table's header into its column names (two or more
// spaces apart).
func columns(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// login logs user in through the form, as a browser with userAgent, and
// returns the session cookie's value.
func login(t *testing.T, base, user, password, userAgent string) string {
	t.Helper()
	form := url.Values{"username": {user}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, base+"/login/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", userAgent)
	resp, err := testkit.Client(t, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login/ as %s: status %d, want 303\n%s", user, resp.StatusCode, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "session_id" && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatalf("POST /login/ as %s: no session_id cookie in %q", user, resp.Header.Values("Set-Cookie"))
	return ""
}

// apiLogin logs user in through /api/login and returns the token.
func apiLogin(t *testing.T, base, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := testkit.Client(t, nil).Post(base+"/api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var got struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.Token == "" {
		t.Fatalf("POST /api/login as %s: status %d, err %v", user, resp.StatusCode, err)
	}
	return got.Token
}

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

var demoLine = regexp.MustCompile(`demo user created: username "([^"]+)", password "([^"]+)"`)

// demoPassword is the password the embedded replica printed for the demo
// user.
func (h *harness) demoPassword(t *testing.T) string {
	t.Helper()
	m := demoLine.FindStringSubmatch(h.embedded.output())
	if m == nil || m[1] != demoUser {
		t.Fatalf("the embedded server printed no `demo user created` line:\n%s", h.embedded.proc.LogTail(30))
	}
	return m[2]
}

// --- the blocks that run here ---

// runReadmeStart: the README's two commands. `go run ./cmd/server` is the
// harness's embedded replica (the same package, built once); the page's
// claims about it are checked on its output. `./scripts/test.sh` is the
// command that runs this test.
func runReadmeStart(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 3)
	// The toolchain the export names is the one go.mod asks for, and the
	// one this test runs on: a README that named another would leave a
	// reader with a go command that refuses the module.
	if want := []string{"export", "GOTOOLCHAIN=" + runtime.Version()}; !slices.Equal(strings.Fields(cmds[0].Text)[:2], want) {
		t.Errorf("first command %q, want %q (the Go these tests run on)", cmds[0].Text, strings.Join(want, " "))
	}
	cmds = cmds[1:]
	if got := strings.Fields(cmds[0].Text); !slices.Equal(got[:3], []string{"go", "run", "./cmd/server"}) {
		t.Fatalf("second command %q, want go run ./cmd/server", cmds[0].Text)
	}
	out := h.embedded.output()
	for _, want := range []string{"embedded in-memory Redis", "redis_cli=\"redis-cli -p ", "REDIS_URL=redis://127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("go run ./cmd/server printed no %q:\n%s", want, h.embedded.proc.LogTail(30))
		}
	}
	h.demoPassword(t)
	resp, err := testkit.Client(t, nil).Get(h.embedded.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET / of go run ./cmd/server: %s, want 200", resp.Status)
	}
	if !strings.HasPrefix(cmds[1].Text, "./scripts/test.sh") {
		t.Fatalf("third command %q, want ./scripts/test.sh", cmds[1].Text)
	}
	if st, err := os.Stat(filepath.Join(root, "scripts", "test.sh")); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("scripts/test.sh is not an executable file (%v)", err)
	}
}

// runAPI: log in, whoami and log out with curl against the embedded
// replica as the demo user; each answer has the fields the page shows.
func runAPI(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 4)
	s := h.shell(t)
	s.replace("http://localhost:8080", h.embedded.base)
	s.replace(`"password":"…"`, `"password":"`+h.demoPassword(t)+`"`)
	got := s.run(cmds[0])
	sameKeys(t, cmds[0], cmds[0].Output[0], got)
	var login struct{ Token string }
	if err := json.Unmarshal([]byte(got), &login); err != nil || login.Token == "" {
		t.Fatalf("no token in %s", got)
	}
	example := strings.TrimPrefix(cmds[1].Text, "TOKEN=")
	s.replace("TOKEN="+example, "TOKEN="+login.Token)
	s.run(cmds[1])
	sameKeys(t, cmds[2], cmds[2].Output[0], s.run(cmds[2]))
	if got, want := strings.TrimSpace(s.run(cmds[3])), cmds[3].Output[0]; got != want {
		t.Errorf("%s printed %q, the page shows %q", cmds[3].Text, got, want)
	}
}

// runUserCommands: the user commands against a real redis-server, each
// password read from stdin.
func runUserCommands(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 6)
	s := h.shell(t)
	s.replace("redis://127.0.0.1:6379/0", h.redis.URL())
	// go run builds the same package the harness built once.
	s.replace("go run ./cmd/server", h.bin)
	s.stdin = testPassword + "\n"
	for i, c := range cmds {
		out := s.run(c)
		if strings.HasSuffix(strings.TrimSpace(trailingComment.ReplaceAllString(c.Text, "")), "user list") && !strings.Contains(out, "alice") {
			t.Errorf("command %d, %s: no alice in %q", i, c.Text, out)
		}
	}
	s.env["REDIS_URL"] = h.redis.URL()
	if out := s.run(command{Text: "go run ./cmd/server user list"}); strings.Contains(out, "alice") {
		t.Errorf("alice is still listed after `user delete alice`: %q", out)
	}
}

// addUsers creates users with testPassword through the CLI.
func (h *harness) addUsers(t *testing.T, names ...string) {
	t.Helper()
	s := h.shell(t)
	s.env["REDIS_URL"] = h.redis.URL()
	s.stdin = testPassword + "\n"
	s.dir = h.binDir
	for _, n := range names {
		s.run(command{Text: "./server user add " + n})
	}
}

// runSessionCommands: alice logged in from Firefox, bob through the API;
// the page's listing, JSON, show and revokes run on them, with their ids
// in place of the page's.
func runSessionCommands(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 7)
	h.addUsers(t, "alice", "bob")
	login(t, h.real.base, "alice", testPassword, firefox)
	apiLogin(t, h.real.base, "bob", testPassword)

	s := h.shell(t)
	s.env["REDIS_URL"] = h.redis.URL()
	s.dir = h.binDir // where ./server is, as after go build -o server
	list := s.run(cmds[0])
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if got, want := columns(lines[0]), columns(cmds[0].Output[0]); !slices.Equal(got, want) {
		t.Errorf("%s: columns %q, the page shows %q", cmds[0].Text, got, want)
	}
	ids := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > 1 {
			ids[f[1]] = f[0]
		}
	}
	for i, user := range []string{"alice", "bob"} {
		shown := strings.Fields(cmds[0].Output[1+i])
		if shown[1] != user || ids[user] == "" {
			t.Fatalf("%s lists %v; the page's row %d is %s's, who has no session here", cmds[0].Text, ids, i+1, shown[1])
		}
		s.replace(shown[0], ids[user])
	}
	sameKeys(t, cmds[1], cmds[1].Output[0], s.run(cmds[1]))
	if out := s.run(cmds[2]); !strings.Contains(out, ids["bob"]) {
		t.Errorf("%s does not show bob's session %s:\n%s", cmds[2].Text, ids["bob"], out)
	}
	s.run(cmds[3])
	if got := strings.TrimSpace(s.run(cmds[4])); got != cmds[4].Comment {
		t.Errorf("%s printed %q, the page says %q", cmds[4].Text, got, cmds[4].Comment)
	}
	if got := strings.TrimSpace(s.run(cmds[5])); got != "0" {
		t.Errorf("%s printed %q after both sessions were revoked, want 0", cmds[5].Text, got)
	}
	s.run(cmds[6])
}

var quoted = regexp.MustCompile(`^\s*(?:\d+\)\s*)+"(.*)"$`)

// streamEntries reads redis-cli's nested listing of an XREADGROUP answer
// into its entries: id, then field and value pairs.
func streamEntries(lines []string) map[string][]string {
	entries := map[string][]string{}
	id := ""
	entryID := regexp.MustCompile(`^\d+-\d+$`)
	for _, l := range lines {
		m := quoted.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		switch {
		case entryID.MatchString(m[1]):
			id = m[1]
			entries[id] = nil
		case id != "":
			entries[id] = append(entries[id], m[1])
		}
	}
	return entries
}

// fieldNames returns the names of an entry's field and value pairs.
func fieldNames(pairs []string) []string {
	var names []string
	for i := 0; i < len(pairs); i += 2 {
		names = append(names, pairs[i])
	}
	slices.Sort(names)
	return names
}

// runEventsConsumerGroup: the SIEM consumer group on the service-wide
// stream, reading a real sign-in.
func runEventsConsumerGroup(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 4)
	s := h.shell(t)
	// --no-raw: the page shows redis-cli as on a terminal (numbered,
	// quoted), which it prints only to one.
	s.replace("redis-cli ", fmt.Sprintf("redis-cli --no-raw -p %d ", h.redis.Port()))
	if got, want := strings.TrimSpace(s.run(cmds[0])), cmds[0].Output[0]; got != want {
		t.Errorf("%s printed %q, the page shows %q", cmds[0].Text, got, want)
	}
	login(t, h.real.base, "alice", testPassword, firefox)
	got := streamEntries(strings.Split(s.run(cmds[1]), "\n"))
	shown := streamEntries(cmds[1].Output)
	var shownID, signIn string
	for id := range shown {
		shownID = id
	}
	for id, pairs := range got {
		if slices.Contains(pairs, "sign_in") {
			signIn = id
			if have, want := fieldNames(pairs), fieldNames(shown[shownID]); !slices.Equal(have, want) {
				t.Errorf("the sign_in event has the fields %q, the page shows %q", have, want)
			}
		}
	}
	if signIn == "" {
		t.Fatalf("%s read no sign_in event: %v", cmds[1].Text, got)
	}
	s.replace(shownID, signIn)
	if got, want := strings.TrimSpace(s.run(cmds[2])), cmds[2].Output[0]; got != want {
		t.Errorf("%s printed %q, the page shows %q", cmds[2].Text, got, want)
	}
	s.run(cmds[3])
}

// runEventsTail: the last two events, then alice's as JSON, followed for a
// few seconds.
func runEventsTail(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 2)
	s := h.shell(t)
	s.replace("redis://127.0.0.1:6379/0", h.redis.URL())
	s.dir = h.binDir // where ./server is, as after go build -o server
	if got := strings.Split(strings.TrimSpace(s.run(cmds[0])), "\n"); len(got) != 2 {
		t.Errorf("%s printed %d lines, want 2: %q", cmds[0].Text, len(got), got)
	}
	out := s.runFor(cmds[1], 3*time.Second)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["user"] != "alice" || ev["id"] == nil || ev["kind"] == nil {
			t.Errorf("%s printed %q, want one JSON event of alice's a line, with id and kind", cmds[1].Text, l)
		}
	}
}

// runMetrics: the metrics and a CPU profile of the real replica.
func runMetrics(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 2)
	s := h.shell(t)
	s.replace("localhost:9090", h.real.metrics)
	s.replace("seconds=10", "seconds=1")
	s.env["PPROF_TMPDIR"] = t.TempDir()
	if out := s.run(cmds[0]); !strings.Contains(out, "loginsvc_logins_total{") {
		t.Errorf("%s printed %q, want the login counter's series", cmds[0].Text, out)
	}
	if out := s.run(cmds[1]); !strings.Contains(out, "flat%") {
		t.Errorf("%s printed no profile table:\n%s", cmds[1].Text, out)
	}
}

// runRedisWalkthrough: the redis-cli walkthrough on the embedded Redis,
// with the demo user's browser session.
func runRedisWalkthrough(t *testing.T, h *harness, b block) {
	cmds := commandsOf(t, b, 7)
	port := regexp.MustCompile(`redis_cli="redis-cli -p (\d+)"`).FindStringSubmatch(h.embedded.output())
	if port == nil {
		t.Fatalf("the embedded server printed no redis_cli=…:\n%s", h.embedded.proc.LogTail(30))
	}
	token := login(t, h.embedded.base, demoUser, h.demoPassword(t), "curl/7.88.1")
	shownPort := regexp.MustCompile(`-p (\d+) `).FindStringSubmatch(cmds[0].Text)
	if shownPort == nil {
		t.Fatalf("%s names no port (-p PORT)", cmds[0].Text)
	}
	s := h.shell(t)
	s.replace("-p "+shownPort[1]+" ", "-p "+port[1]+" ")
	s.replace(assignmentValue(t, cmds[1]), token)
	key := testkit.SessionKey(token)

	if out := s.run(cmds[0]); !strings.Contains(out, key) {
		t.Errorf("%s does not list %s:\n%s", cmds[0].Text, key, out)
	}
	s.run(cmds[1])
	s.run(cmds[2])
	if s.env["KEY"] != key {
		t.Errorf("%s made KEY %q, want the session's key %q", cmds[2].Text, s.env["KEY"], key)
	}
	sameKeys(t, cmds[3], cmds[3].Output[0], s.run(cmds[3]))
	for _, i := range []int{4, 6} {
		if n, err := strconv.Atoi(strings.TrimSpace(s.run(cmds[i]))); err != nil || n <= 0 {
			t.Errorf("%s: %v %d, want milliseconds to go", cmds[i].Text, err, n)
		}
	}
	if out := s.run(cmds[5]); !strings.Contains(out, testkit.TokenHash(token)) {
		t.Errorf("%s does not hold the session %s:\n%s", cmds[5].Text, testkit.TokenHash(token), out)
	}
}

// assignmentValue is the example value of an assignment command.
func assignmentValue(t *testing.T, c command) string {
	t.Helper()
	m := assignment.FindStringSubmatch(c.Text)
	if m == nil {
		t.Fatalf("%q is not an assignment", c.Text)
	}
	v := strings.TrimPrefix(c.Text, m[0])
	v = trailingComment.ReplaceAllString(v, "")
	return strings.TrimSpace(v)
}

// --- links ---

var (
	link       = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	inlineCode = regexp.MustCompile("`[^`]*`")
	heading    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	notInSlug  = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// anchors returns the anchors GitHub gives the headings of a page:
// lower case, punctuation dropped, spaces as hyphens, a repeat numbered.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	count := map[string]int{}
	for _, l := range proseLines(t, file) {
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		slug := strings.ReplaceAll(notInSlug.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := count[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		count[slug]++
	}
	return out
}

type proseLine struct {
	n    int
	text string
}

// proseLines are the lines of a page outside its fenced blocks.
func proseLines(t *testing.T, file string) []proseLine {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []proseLine
	in := false
	for i, l := range strings.Split(string(raw), "\n") {
		if fence.MatchString(l) {
			in = !in
			continue
		}
		if !in {
			out = append(out, proseLine{i + 1, l})
		}
	}
	return out
}

// TestEveryLinkLeadsSomewhere checks every relative link of the README and
// docs/: the file exists and, for file.md#anchor (or #anchor on the same
// page), a heading of that page has that anchor. Moving a section to
// another page without its links fails here.
func TestEveryLinkLeadsSomewhere(t *testing.T) {
	for _, page := range pages(t) {
		for _, l := range proseLines(t, page) {
			for _, m := range link.FindAllStringSubmatch(inlineCode.ReplaceAllString(l.text, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := page
				if file != "" {
					path = filepath.ToSlash(filepath.Join(filepath.Dir(page), file))
				}
				if _, err := os.Stat(filepath.Join(root, path)); err != nil {
					t.Errorf("%s:%d: link %s: no file %s", page, l.n, target, path)
					continue
				}
				if anchor != "" && !anchors(t, path)[anchor] {
					t.Errorf("%s:%d: link %s: %s has no heading with the anchor #%s", page, l.n, target, path, anchor)
				}
			}
		}
	}
}
