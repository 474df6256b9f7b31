package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"loginsvc/internal/redistest"
	"loginsvc/internal/session"
)

// openTerminal opens a pseudo-terminal and returns its two ends: what is
// written to the controller is what a person types at the terminal.
func openTerminal(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { _ = ptmx.Close() })
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), req, uintptr(arg)); errno != 0 {
			t.Fatalf("ioctl %#x on /dev/ptmx: %v", req, errno)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/pts/%d: %v", n, err)
	}
	t.Cleanup(func() { _ = pts.Close() })
	return ptmx, pts
}

// On a terminal a reset asks first, naming the user and how many sessions
// end, and goes ahead on y or yes only.
func TestUserMFAResetAsksOnATerminal(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	rdb := openRedis(t, redis.URL())
	client := redis.Client(t)
	addUser(t, rdb, "alice")
	at := time.Now().UTC().Truncate(time.Second)
	addFactors(t, rdb, "alice", factorsSetup{totpAt: at, codes: 10, recoveryAt: at})
	s1 := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.1", UserAgent: firefoxUA})
	s2 := startSession(t, rdb, session.Login{User: "alice", IP: "192.0.2.2", UserAgent: androidUA})
	const question = `Reset two-step verification of "alice" and end 2 session(s)? [y/N] `

	reset := func(answer string) (string, error) {
		controller, terminal := openTerminal(t)
		if _, err := controller.WriteString(answer); err != nil {
			t.Fatalf("type %q: %v", answer, err)
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"user", "mfa", "reset", "alice"}, env{"REDIS_URL": redis.URL()}.getenv, terminal, &out)
		return out.String(), err
	}

	before := userKeys(t, client, "alice")
	for _, answer := range []string{"\n", "n\n", "no\n", "yep\n"} {
		out, err := reset(answer)
		checkExit1(t, err, "not reset")
		if out != question {
			t.Errorf("answer %q: stdout got %q, want only the question %q", answer, out, question)
		}
	}
	if got := userKeys(t, client, "alice"); len(got) != len(before) {
		t.Errorf("keys user:{alice}:* after answering no: got %v, want %v", got, before)
	}
	checkKeys(t, client, map[string]bool{s1.Key: true, s2.Key: true})

	out, err := reset("yes\n")
	if err != nil {
		t.Fatalf("answer yes: %v (output %q)", err, out)
	}
	if want := question + "reset two-step verification of \"alice\", ended 2 session(s)\n"; out != want {
		t.Errorf("answer yes: got %q, want %q", out, want)
	}
	if got := userKeys(t, client, "alice"); len(got) != 0 {
		t.Errorf("keys user:{alice}:* after the reset: got %v, want none", got)
	}
	checkKeys(t, client, map[string]bool{s1.Key: false, s2.Key: false, "user:{alice}": true})
}
