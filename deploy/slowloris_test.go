package deploy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Slow-loris figures of deploy/haproxy.cfg (timeout http-request and the
// per-source connection limit); the test checks the behaviour a user
// notices and prints the rest.
const (
	// slowLorisConns is how many connections the attacker opens, all from
	// one loopback address: past the 100 per source, more than the
	// 1,024 worker connections nginx fell at.
	slowLorisConns = 1500
	// slowLorisRun is how long the attack and the legitimate requests run.
	slowLorisRun = 12 * time.Second
	// haproxyRequestTimeout is `timeout http-request` in haproxy.cfg.
	haproxyRequestTimeout = 5 * time.Second
)

// TestHAProxyHoldsAgainstSlowLoris: 1,500 connections from 127.0.0.2
// dribbling a header line every 2s, and one sending a body at 1 byte/s
// from 127.0.0.3, against the real haproxy with haproxy.cfg in front of
// one replica. Ten legitimate requests from 127.0.0.1 over the same time
// all succeed, the per-source limit refuses the attacker's connections
// past 100, each held one is cut at the request timeout, and so is the
// slow body.
func TestHAProxyHoldsAgainstSlowLoris(t *testing.T) {
	conns := slowLorisConns
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		// Each attacking connection is one descriptor here (the Go runtime
		// has raised the soft limit to the hard one); keep 500 spare for
		// the test's own clients and the harness.
		if avail := int(lim.Cur) - 500; avail < conns {
			t.Logf("ulimit -n is %d: %d attacking connections instead of %d", lim.Cur, max(avail, 200), conns)
			conns = max(avail, 200)
		}
	}
	c := startCluster(t, 1)
	lbAddr := strings.TrimPrefix(c.LB, "http://")

	var opened, refused, cut, cutLate atomic.Int64
	var cutAfter sync.Map // index -> time.Duration
	stop := make(chan struct{})
	var attackers sync.WaitGroup
	start := time.Now()
	for i := range conns {
		attackers.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 3 * time.Second}
			conn, err := d.Dial("tcp", lbAddr)
			if err != nil {
				refused.Add(1)
				return
			}
			defer func() { _ = conn.Close() }()
			t0 := time.Now()
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: loginsvc\r\n"); err != nil {
				refused.Add(1)
				return
			}
			// Read in the background: haproxy's answer ends the connection,
			// a 408 at the request timeout, or nothing at all when the
			// per-source limit closes it before reading.
			answer := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(conn)
				answer <- string(b)
			}()
			for n := 0; ; n++ {
				select {
				case got := <-answer:
					if !strings.HasPrefix(got, "HTTP/1.1 408") {
						refused.Add(1)
						return
					}
					after := time.Since(t0)
					opened.Add(1)
					cut.Add(1)
					cutAfter.Store(i, after)
					if after > haproxyRequestTimeout+2*time.Second {
						cutLate.Add(1)
					}
					return
				case <-stop:
					opened.Add(1)
					return
				case <-time.After(2 * time.Second):
					_, _ = fmt.Fprintf(conn, "X-Slow-%d: x\r\n", n)
				}
			}
		})
	}

	// The slow body, from its own address.
	bodyCut := make(chan time.Duration, 1)
	go func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, Timeout: 3 * time.Second}
		conn, err := d.Dial("tcp", lbAddr)
		if err != nil {
			bodyCut <- -1
			return
		}
		defer func() { _ = conn.Close() }()
		t0 := time.Now()
		_, _ = io.WriteString(conn, "POST /login/ HTTP/1.1\r\nHost: loginsvc\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(conn))
			close(closed)
		}()
		for {
			select {
			case <-closed:
				bodyCut <- time.Since(t0)
				return
			case <-time.After(time.Second):
				if _, err := io.WriteString(conn, "u"); err != nil {
					<-closed
					bodyCut <- time.Since(t0)
					return
				}
			}
			if time.Since(t0) > slowLorisRun+10*time.Second {
				bodyCut <- 0 // never cut
				return
			}
		}
	}()

	// Ten legitimate requests spread over the attack.
	legit := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var failures []string
	var worst time.Duration
	for i := range 10 {
		time.Sleep(slowLorisRun / 10)
		t0 := time.Now()
		status, _, _, err := tryGet(legit, c.LB+"/healthz", nil)
		worst = max(worst, time.Since(t0))
		if err != nil || status != http.StatusOK {
			failures = append(failures, fmt.Sprintf("request %d: status %d, %v", i+1, status, err))
		}
	}
	close(stop)
	attackers.Wait()
	body := <-bodyCut

	var maxCut time.Duration
	cutAfter.Range(func(_, v any) bool { maxCut = max(maxCut, v.(time.Duration)); return true })
	t.Logf("%d slow connections from 127.0.0.2 over %v: %d refused at once (per-source limit), %d held, %d of them cut by haproxy (latest after %v); "+
		"10 legitimate requests from 127.0.0.1: %d failed, slowest %v; body at 1 byte/s cut after %v",
		conns, time.Since(start).Round(time.Second), refused.Load(), opened.Load(), cut.Load(), maxCut.Round(time.Millisecond),
		len(failures), worst.Round(time.Millisecond), body.Round(time.Millisecond))

	for _, f := range failures {
		t.Errorf("legitimate %s, want 200 during the attack", f)
	}
	if held := opened.Load(); held > 100 {
		t.Errorf("%d attacking connections from one address were held, want at most 100 (per-source limit)", held)
	}
	if refused.Load() < int64(conns-100) {
		t.Errorf("%d attacking connections refused, want at least %d", refused.Load(), conns-100)
	}
	if cutLate.Load() > 0 || cut.Load() < opened.Load() {
		t.Errorf("%d of %d held connections cut, %d later than %v: want every one cut at the request timeout",
			cut.Load(), opened.Load(), cutLate.Load(), haproxyRequestTimeout+2*time.Second)
	}
	if body <= 0 || body > haproxyRequestTimeout+2*time.Second {
		t.Errorf("body at 1 byte/s: cut after %v (0: never, -1: no connection), want within %v", body, haproxyRequestTimeout+2*time.Second)
	}
}
