package testkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is one run of a child process that a test owns: redis-server, a
// replica of the service, nginx. A restart is a new Process, so that waiting
// on an old run can never be mistaken for the new one.
//
// Signals go to the process itself (Signal) or to its process group
// (SignalGroup), which it leads: the group holds whatever it forks (nginx's
// workers, redis-server's AOF rewrite), so nothing it started can outlive it.
type Process struct {
	cmd      *exec.Cmd
	logPath  string
	logStart int64         // size of the log before this run wrote to it
	done     chan struct{} // closed once cmd.Wait has returned
	err      error         // cmd.Wait's result; read only after done is closed
}

// StartProcess starts cmd in its own process group, with its stdout and
// stderr appended to the file logPath after a line that says when and what
// was started, and returns without waiting for it to be ready.
//
// The log is a file, not a pipe, so that Wait never blocks on a grandchild
// that inherited it, and so that what a process printed before it died is
// still there to show. Its own process group keeps a Ctrl-C on the test from
// reaching it directly, and lets Kill take its children with it.
//
// Whatever state the test leaves it in (running, stopped by SIGSTOP,
// exited), the process and its group are killed in tb.Cleanup, which fails
// the test if they survive. Use exec.Command, not CommandContext: the
// process lives exactly as long as the test says.
func StartProcess(tb testing.TB, cmd *exec.Cmd, logPath string) (*Process, error) {
	tb.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(f, "=== testkit: start at %s: %s\n", time.Now().Format("15:04:05.000"), cmd); err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, logPath: logPath, logStart: start, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// Whatever the process left in its group (a worker, a forked
		// child) goes with it. Now, not at cleanup: the group's id is the
		// process's pid, which the kernel may hand out again once the
		// group is empty.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		close(p.done)
	}()
	tb.Cleanup(func() {
		if !p.Running() {
			return
		}
		if err := p.Kill(WaitTimeout); err != nil {
			tb.Errorf("testkit: cleanup: %v\n%s", err, p.LogTail(20))
		}
	})
	return p, nil
}

// Pid is the process id, which is also the id of its process group.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited yet; one stopped by
// SIGSTOP is running. A nil *Process, never started, is not.
func (p *Process) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process exited: nil for exit code 0, an *exec.ExitError
// otherwise. It is meaningful only once Running is false.
func (p *Process) Err() error {
	if p.Running() {
		return errors.New("still running")
	}
	return p.err
}

// Signal sends sig to the process alone, as an orchestrator does (a
// SIGTERM, to let it shut down its own children). A process that is already
// gone needs no signal: that is not an error, and WaitExit tells the rest.
func (p *Process) Signal(sig syscall.Signal) error { return p.signal(p.Pid(), sig) }

// SignalGroup sends sig to the process and everything in its group (a
// SIGSTOP that must freeze the workers too). Like Signal, it ignores a group
// that is already gone.
func (p *Process) SignalGroup(sig syscall.Signal) error { return p.signal(-p.Pid(), sig) }

func (p *Process) signal(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Kill simulates a crash: SIGKILL to the whole group, after a SIGCONT so
// that nothing in it is left stopped, and waits up to timeout until the
// process has exited and been reaped.
func (p *Process) Kill(timeout time.Duration) error {
	if err := p.SignalGroup(syscall.SIGCONT); err != nil {
		return err
	}
	if err := p.SignalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.WaitExit(timeout) {
		return fmt.Errorf("%s (pid %d) survived SIGKILL for %v", p.cmd.Path, p.Pid(), timeout)
	}
	return nil
}

// WaitExit waits up to timeout for the process to exit and reports whether
// it did; Err then says how.
func (p *Process) WaitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Output is what was written to the log since this run started, so that a
// message from an earlier run (say, its failed bind) is not taken for one of
// this run.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.logStart {
		return ""
	}
	return string(b[p.logStart:])
}

// LogTail is LogTail of this process's log file, earlier runs included.
func (p *Process) LogTail(n int) string { return LogTail(p.logPath, n) }

// LogTail returns the last n lines of the log file at path, headed by its
// name, for a failure message: enough to see why a process failed without
// drowning the test's output.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	text := strings.TrimRight(string(b), "\n")
	if text == "" {
		return fmt.Sprintf("(%s is empty)", path)
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("last %d lines of %s:\n%s", len(lines), path, strings.Join(lines, "\n"))
}
