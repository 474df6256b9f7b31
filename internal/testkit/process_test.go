package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := RemoveBuilt(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// startSh starts script with sh -c as p's next run.
func startSh(t *testing.T, p *Process, script string) {
	t.Helper()
	if err := p.Start(exec.Command("sh", "-c", script)); err != nil {
		t.Fatalf("start sh -c %q: %v", script, err)
	}
}

// newSh returns a Process of t logging to a fresh file, running script.
func newSh(t *testing.T, script string) *Process {
	t.Helper()
	p := NewProcess(t, filepath.Join(t.TempDir(), "sh.log"))
	startSh(t, p, script)
	return p
}

// waitFor waits for p to exit and fails the test if it does not.
func waitFor(t *testing.T, p *Process) {
	t.Helper()
	if !p.WaitExit(WaitTimeout) {
		t.Fatalf("pid %d still running after %v", p.Pid(), WaitTimeout)
	}
}

// gone reports whether no live process has the id pid: none at all, or a
// zombie that its new parent has not reaped yet.
func gone(pid int) (bool, string) {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true, ""
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true, "" // exited between the two looks
	}
	// pid (comm) STATE ...; comm may hold spaces, so look after the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
		return true, ""
	}
	return false, fmt.Sprintf("pid %d is alive: %s", pid, s)
}

// childPid reads the pid that a script printed as its first line.
func childPid(t *testing.T, p *Process) int {
	t.Helper()
	var pid int
	Eventually(t, "the script prints its child's pid", 0, func() (bool, string) {
		for _, line := range strings.Split(p.Output(), "\n") {
			if n, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
				pid = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("output so far %q", p.Output())
	})
	return pid
}

func TestProcessLogsEachRunAfterTheLast(t *testing.T) {
	// The quotes keep the words out of the start line, which quotes the
	// script: only what the shell printed can match.
	p := newSh(t, `echo "first""-out"; echo "first""-err" >&2`)
	waitFor(t, p)
	first := p.Output()
	startSh(t, p, `echo "second""-out"`)
	waitFor(t, p)

	for _, tc := range []struct {
		name      string
		got       string
		want, not []string
	}{
		{"first run's Output", first, []string{"=== testkit: start at ", "first-out", "first-err"}, nil},
		{"second run's Output", p.Output(), []string{"second-out"}, []string{"first-out", "first-err"}},
		{"LogTail", p.LogTail(20), []string{"first-out", "first-err", "second-out"}, nil},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.got, w) {
				t.Errorf("%s: got %q, want it to contain %q", tc.name, tc.got, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(tc.got, n) {
				t.Errorf("%s: got %q, want no %q (an earlier run's)", tc.name, tc.got, n)
			}
		}
	}
}

func TestProcessErrIsTheExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
	} {
		p := newSh(t, tc.script)
		waitFor(t, p)
		var exit *exec.ExitError
		switch err := p.Err(); {
		case tc.code == 0 && err != nil:
			t.Errorf("sh -c %q: Err() = %v, want nil", tc.script, err)
		case tc.code != 0 && (!errors.As(err, &exit) || exit.ExitCode() != tc.code):
			t.Errorf("sh -c %q: Err() = %v, want exit status %d", tc.script, err, tc.code)
		}
		if p.Running() {
			t.Errorf("sh -c %q: Running() after exit", tc.script)
		}
	}
}

func TestProcessSignalReachesTheProcess(t *testing.T) {
	// The shell exits 0 on SIGTERM, as a server shutting down cleanly does.
	// Quoted as in TestProcessLogsEachRunAfterTheLast, so the start line
	// cannot match.
	p := newSh(t, `trap 'echo "got""-TERM"; exit 0' TERM; echo "trap""-set"; while :; do sleep 0.05; done`)
	Eventually(t, "the shell has set its trap", 0, func() (bool, string) {
		return strings.Contains(p.Output(), "trap-set"), p.Output()
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p)
	if err := p.Err(); err != nil {
		t.Errorf("after SIGTERM: Err() = %v, want nil (the trap's exit 0)\n%s", err, p.LogTail(10))
	}
	if !strings.Contains(p.Output(), "got-TERM") {
		t.Errorf("Output %q: the trap did not run", p.Output())
	}
	// A process that is gone needs no signal.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after exit: got %v, want nil", err)
	}
}

func TestProcessKillTakesItsChildren(t *testing.T) {
	p := newSh(t, "sleep 100 & echo $!; wait")
	child := childPid(t, p)

	if err := p.Kill(WaitTimeout); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Error("Running() after Kill")
	}
	Eventually(t, "the child of a killed process is gone", 0, func() (bool, string) { return gone(child) })
}

func TestProcessLeavesNoChildWhenItExits(t *testing.T) {
	// The shell exits at once, leaving its child behind in the group.
	p := newSh(t, "sleep 100 & echo $!")
	child := childPid(t, p)
	waitFor(t, p)
	Eventually(t, "the child of an exited process is gone", 0, func() (bool, string) { return gone(child) })
}

func TestProcessCleanupKillsAStoppedProcess(t *testing.T) {
	var pid int
	t.Run("test that leaves its process stopped", func(t *testing.T) {
		p := newSh(t, "sleep 100")
		pid = p.Pid()
		if err := p.SignalGroup(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	})
	// Cleanup waits until the process is reaped, so it is gone at once.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after its test ended (kill -0: %v)", pid, err)
	}
}

// A run started from a subtest (a restart in one step of a longer test)
// lives as long as the Process's owner, not as long as the subtest.
func TestProcessRunBelongsToItsOwner(t *testing.T) {
	var pid int
	t.Run("owner", func(t *testing.T) {
		p := NewProcess(t, filepath.Join(t.TempDir(), "sh.log"))
		t.Run("step that restarts it", func(t *testing.T) {
			startSh(t, p, "sleep 100")
			pid = p.Pid()
		})
		if !p.Running() {
			t.Fatalf("pid %d ended with the subtest that started it; want it to run until its owner ends", pid)
		}
		if err := p.Start(exec.Command("true")); err == nil {
			t.Error("Start while running: got nil error, want one")
		}
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after its owner ended (kill -0: %v)", pid, err)
	}
}

func TestProcessNeverStarted(t *testing.T) {
	p := NewProcess(t, filepath.Join(t.TempDir(), "x.log"))
	if p.Running() || p.WaitExit(0) || p.Pid() != 0 {
		t.Errorf("never started: Running %v, WaitExit %v, Pid %d; want false, false, 0", p.Running(), p.WaitExit(0), p.Pid())
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("Signal before Start: got nil error, want one")
	}
	if err := p.Start(exec.Command("/nonexistent/binary")); err == nil {
		t.Error("Start of a missing binary: got nil error, want one")
	}
	if p.Running() {
		t.Error("Running() after a failed Start")
	}
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, path string
		n          int
		want       string
	}{
		{"missing", filepath.Join(dir, "missing.log"), 5, "(cannot read "},
		{"empty", write("empty.log", "\n"), 5, "empty.log is empty)"},
		{"short", write("short.log", "a\nb\n"), 5, "last 2 lines of " + filepath.Join(dir, "short.log") + ":\na\nb"},
		{"long", write("long.log", "a\nb\nc\nd\n"), 2, "last 2 lines of " + filepath.Join(dir, "long.log") + ":\nc\nd"},
	} {
		if got := LogTail(tc.path, tc.n); !strings.Contains(got, tc.want) {
			t.Errorf("%s: LogTail(%d) = %q, want it to contain %q", tc.name, tc.n, got, tc.want)
		}
	}
}

func TestServerBinaryIsBuiltOnce(t *testing.T) {
	start := time.Now()
	bin := ServerBinary(t)
	t.Logf("first ServerBinary call took %v", time.Since(start).Round(time.Millisecond))
	if again := ServerBinary(t); again != bin {
		t.Errorf("second call: got %s, want the first call's %s", again, bin)
	}
	out, err := exec.Command(bin, "-help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "usage") {
		t.Errorf("%s -help: got %v and %q, want exit 0 and a usage text", bin, err, out)
	}
}
