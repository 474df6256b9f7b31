// Package logging builds the service's logger: slog in text or JSON lines,
// written through a Writer that buffers lines in memory and flushes them on
// a short interval, so that a request's log line costs the request no
// write system call, and at Close, so that no line is lost at shutdown.
package logging

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Formats are the accepted values of LOG_FORMAT.
const (
	FormatText = "text" // key=value, slog's TextHandler
	FormatJSON = "json" // one JSON object a line, slog's JSONHandler
)

// New returns a logger writing format (FormatText or FormatJSON) lines at
// level and above to w. Its handler is a *Handler, whose LogAttrs is the
// request log's fast path.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	if format != FormatText && format != FormatJSON {
		return nil, fmt.Errorf("log format %q: want %s or %s", format, FormatText, FormatJSON)
	}
	// slog's handler and the fast path write lines whole, each with one
	// Write; a Writer takes them under its own lock, anything else under
	// one shared here.
	if _, ok := w.(*Writer); !ok {
		w = &lockedWriter{w: w}
	}
	opts := &slog.HandlerOptions{Level: level}
	h := &Handler{json: format == FormatJSON, w: w}
	if h.json {
		h.Handler = slog.NewJSONHandler(w, opts)
	} else {
		h.Handler = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), nil
}

// FlushEvery is how long a line may wait in a Writer's buffer: short enough
// for `docker logs -f` and a tailing operator, long enough that a busy
// replica writes a few times a second instead of once per request.
const FlushEvery = 100 * time.Millisecond

// bufferSize is a Writer's buffer: a few hundred request lines. A fuller
// buffer is written out at once, so a burst never blocks on the timer.
const bufferSize = 64 << 10

// Writer buffers what is written to it and passes it on to the underlying
// writer every interval, when the buffer fills, on Flush and at Close.
// Writes are whole lines from slog's handlers, and a line is never split
// across two writes downstream unless it is larger than the buffer. It is
// safe for concurrent use.
type Writer struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// NewWriter returns a Writer flushing to w every interval (FlushEvery if
// interval <= 0). Close it to stop its timer and flush what is left.
func NewWriter(w io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = FlushEvery
	}
	lw := &Writer{buf: bufio.NewWriterSize(w, bufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flushLoop(interval)
	return lw
}

func (w *Writer) flushLoop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Write buffers p. After Close it writes p through at once, so a line
// logged late in shutdown is not lost either.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Available() < len(p) && w.buf.Buffered() > 0 {
		// Keep the line whole: out goes what is there, then the line.
		if err := w.buf.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := w.buf.Write(p)
	if err == nil && w.closed {
		err = w.buf.Flush()
	}
	return n, err
}

// Flush writes out whatever is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Buffered() == 0 {
		return nil
	}
	return w.buf.Flush()
}

// Close stops the timer and flushes. Writes after it go straight through.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}
