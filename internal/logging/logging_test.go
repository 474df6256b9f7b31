package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter counts the writes that reach it: each one is a system
// call on a real stdout.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) state() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.writes
}

// Many lines from many goroutines reach the output in a few writes, each
// line whole, and Close leaves none behind: what a server logs in its
// last moments is there after it stops.
func TestWriterBatchesLinesAndLosesNoneAtClose(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := NewWriter(out, time.Hour) // only Close (and a full buffer) flushes
	log, err := New(w, FormatJSON, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				log.Info("request", "g", g, "i", i, "route", "GET /{$}")
			}
		})
	}
	wg.Wait()
	if _, writes := out.state(); writes > goroutines*perG/20 {
		t.Errorf("before Close: %d writes for %d lines, want the lines batched (at most one write per 20)", writes, goroutines*perG)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	text, writes := out.state()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != goroutines*perG {
		t.Fatalf("after Close: got %d lines, want %d", len(lines), goroutines*perG)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var rec struct {
			Msg  string
			G, I int
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Msg != "request" {
			t.Fatalf("line %q is not a whole JSON request line: %v", l, err)
		}
		seen[fmt.Sprint(rec.G, rec.I)] = true
	}
	if len(seen) != goroutines*perG {
		t.Errorf("got %d distinct lines, want %d", len(seen), goroutines*perG)
	}
	t.Logf("%d lines in %d writes", len(lines), writes)

	// A line logged after Close is written at once.
	log.Info("late")
	if text, _ := out.state(); !strings.Contains(text, `"msg":"late"`) {
		t.Error("a line logged after Close was not written")
	}
}

// Without Close, a line reaches the output within the flush interval.
func TestWriterFlushesOnTheInterval(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := NewWriter(out, 20*time.Millisecond)
	defer func() { _ = w.Close() }()
	log, err := New(w, FormatText, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	deadline := time.Now().Add(2 * time.Second)
	for {
		if text, _ := out.state(); strings.Contains(text, "msg=hello") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the line was not flushed within 2s with a 20ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRefusesAnUnknownFormat(t *testing.T) {
	t.Parallel()
	if _, err := New(&bytes.Buffer{}, "xml", slog.LevelInfo); err == nil {
		t.Error(`New(format "xml"): got no error, want one`)
	}
}
