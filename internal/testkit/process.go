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

// Process is a child process that a test owns: redis-server, a replica of
// the service, haproxy. It may be started again after it has exited, on the
// same log file, as a restarted server is; each Start is a fresh run, so
// waiting on an old run can never be mistaken for waiting on the new one.
//
// Signals go to the process itself (Signal) or to its process group
// (SignalGroup), which it leads: the group holds whatever it forks (haproxy's
// workers, redis-server's AOF rewrite), so nothing it started can outlive it.
//
// Methods are meant to be called from the test's goroutines, one at a time.
type Process struct {
	logPath string
	run     *run // the current run; nil until the first Start
}

// run is one run of a Process.
type run struct {
	cmd      *exec.Cmd
	logStart int64         // size of the log before this run wrote to it
	done     chan struct{} // closed once cmd.Wait has returned
	err      error         // cmd.Wait's result; read only after done is closed
}

// NewProcess returns a Process, not started yet, whose output goes to the
// file logPath. Whatever state the test leaves it in (never started,
// running, stopped by SIGSTOP, exited), its current run and that run's group
// are killed in tb.Cleanup, which fails the test if they survive. tb is the
// owner: a restart from a subtest lives on until the owner's test ends.
func NewProcess(tb testing.TB, logPath string) *Process {
	tb.Helper()
	p := &Process{logPath: logPath}
	tb.Cleanup(func() {
		if !p.Running() {
			return
		}
		if err := p.Kill(WaitTimeout); err != nil {
			tb.Errorf("testkit: cleanup: %v\n%s", err, p.LogTail(20))
		}
	})
	return p
}

// Start starts cmd as the next run, in its own process group, with its
// stdout and stderr appended to the log after a line that says when and
// what was started, and returns without waiting for it to be ready. Start
// while a run is still going is an error.
//
// The log is a file, not a pipe, so that Wait never blocks on a grandchild
// that inherited it, and so that what a process printed before it died is
// still there to show. Its own process group keeps a Ctrl-C on the test from
// reaching it directly, and lets Kill take its children with it. Use
// exec.Command, not CommandContext: the process lives exactly as long as the
// test says.
func (p *Process) Start(cmd *exec.Cmd) error {
	if p.Running() {
		return fmt.Errorf("start %s: pid %d of %s is still running", cmd, p.Pid(), p.run.cmd)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "=== testkit: start at %s: %s\n", time.Now().Format("15:04:05.000"), cmd); err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	r := &run{cmd: cmd, logStart: start, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		// Whatever the process left in its group (a worker, a forked
		// child) goes with it. Now, not at cleanup: the group's id is the
		// process's pid, which the kernel may hand out again once the
		// group is empty.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		close(r.done)
	}()
	p.run = r
	return nil
}

// Pid is the current run's process id, which is also the id of its process
// group; 0 before the first Start.
func (p *Process) Pid() int {
	if p.run == nil {
		return 0
	}
	return p.run.cmd.Process.Pid
}

// Running reports whether the current run has not exited yet; one stopped by
// SIGSTOP is running. A Process never started is not.
func (p *Process) Running() bool {
	if p.run == nil {
		return false
	}
	select {
	case <-p.run.done:
		return false
	default:
		return true
	}
}

// Err is how the current run exited: nil for exit code 0, an
// *exec.ExitError otherwise. It is meaningful only once Running is false.
func (p *Process) Err() error {
	switch {
	case p.run == nil:
		return errors.New("never started")
	case p.Running():
		return errors.New("still running")
	}
	return p.run.err
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
	if p.run == nil {
		return errors.New("never started")
	}
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
		return fmt.Errorf("%s (pid %d) survived SIGKILL for %v", p.run.cmd.Path, p.Pid(), timeout)
	}
	return nil
}

// WaitExit waits up to timeout for the current run to exit and reports
// whether it did; Err then says how. A Process never started has not exited.
func (p *Process) WaitExit(timeout time.Duration) bool {
	if p.run == nil {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.run.done:
		return true
	case <-t.C:
		return false
	}
}

// Output is what was written to the log since the current run started, so
// that a message from an earlier run (say, its failed bind) is not taken for
// one of this run.
func (p *Process) Output() string {
	if p.run == nil {
		return ""
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil || int64(len(b)) < p.run.logStart {
		return ""
	}
	return string(b[p.run.logStart:])
}

// LogTail is LogTail of the process's log file, earlier runs included.
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
