package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"loginsvc/internal/redistest"
)

// A client that trickles its headers (slow loris) is cut off by the read
// header timeout instead of holding a connection forever.
func TestSlowHeadersAreCutOff(t *testing.T) {
	rs := redistest.Start(t)
	s := startServer(t, env{"REDIS_URL": rs.URL()})
	s.waitStatus(t, "/readyz", http.StatusOK)

	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Never finish the headers; the server must give up and close.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = bufio.NewReader(conn).ReadString('\n')
	elapsed := time.Since(start)
	if err == nil {
		// A 408 line is fine too, as long as the connection then ends.
		t.Logf("server answered before closing")
	}
	if elapsed > 20*time.Second {
		t.Fatalf("connection held %v with unfinished headers, want it closed by the read header timeout", elapsed)
	}
	t.Logf("unfinished headers cut off after %v", elapsed.Round(time.Millisecond))
}

// Headers beyond the bound are refused with 431, not read into memory.
func TestOversizedHeadersAreRefused(t *testing.T) {
	rs := redistest.Start(t)
	s := startServer(t, env{"REDIS_URL": rs.URL()})
	s.waitStatus(t, "/readyz", http.StatusOK)

	req, err := http.NewRequest(http.MethodGet, s.base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status got %d, want 431", resp.StatusCode)
	}
}
