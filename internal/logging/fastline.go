package logging

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
)

// Handler is the service's slog.Handler: slog's text or JSON handler for
// every line, plus LogAttrs, a fast path for the one line logged on every
// request. Going through slog costs the request a Record, an interface
// call per attribute and the handler's general formatting (7.5% of a
// forward-auth check's CPU in a profile); LogAttrs formats a flat line of
// strings and numbers itself, byte for byte as slog's handler would, and
// hands slog the lines it cannot format that way.
type Handler struct {
	slog.Handler // slog's handler, on the same writer

	json bool
	w    io.Writer // safe for concurrent use, and takes a line in one Write
}

// lockedWriter serialises writes to a writer that does not do so itself,
// so that slog's handler and the fast path never interleave. A Writer
// locks already and is used as it is.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// linePool holds the buffers request lines are formatted in, outside the
// Writer's lock so that formatting on one core never waits for the other.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledLine keeps an exceptional line's buffer out of the pool.
const maxPooledLine = 4 << 10

// LogAttrs logs msg with attrs at level (the caller has asked Enabled),
// formatting the line itself when every attribute is a string, an int64 or
// a float64 whose output it can reproduce exactly, and through slog's
// handler otherwise (a path with a quote, a non-ASCII rune or a control
// character, say): the output is the same either way, which
// TestFastLineIsSlogsLine checks.
func (h *Handler) LogAttrs(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	h.logAt(ctx, time.Now(), level, msg, attrs)
}

// logAt is LogAttrs at time t.
func (h *Handler) logAt(ctx context.Context, t time.Time, level slog.Level, msg string, attrs []slog.Attr) {
	bp := linePool.Get().(*[]byte)
	b, ok := h.appendLine((*bp)[:0], t, level, msg, attrs)
	if ok {
		_, _ = h.w.Write(b)
	} else {
		r := slog.NewRecord(t, level, msg, 0)
		r.AddAttrs(attrs...)
		_ = h.Handle(ctx, r) // slog's handler: Handler embeds it
	}
	if cap(b) <= maxPooledLine {
		*bp = b
		linePool.Put(bp)
	}
}

// appendLine appends the line slog's handler would write, and reports
// false if a value is one it leaves to slog.
func (h *Handler) appendLine(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	if h.json {
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false
		}
		b = append(b, `{"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":`...)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, t)
		b = append(b, " level="...)
	}
	var ok bool
	if b, ok = h.appendString(b, level.String()); !ok {
		return b, false
	}
	if h.json {
		b = append(b, `,"msg":`...)
	} else {
		b = append(b, " msg="...)
	}
	if b, ok = h.appendString(b, msg); !ok {
		return b, false
	}
	for _, a := range attrs {
		if a.Key == "" || !plain(a.Key) {
			return b, false
		}
		if h.json {
			b = append(b, ',', '"')
			b = append(b, a.Key...)
			b = append(b, '"', ':')
		} else {
			b = append(b, ' ')
			b = h.appendPlain(b, a.Key)
			b = append(b, '=')
		}
		switch a.Value.Kind() {
		case slog.KindString:
			if b, ok = h.appendString(b, a.Value.String()); !ok {
				return b, false
			}
		case slog.KindInt64:
			b = strconv.AppendInt(b, a.Value.Int64(), 10)
		case slog.KindFloat64:
			f := a.Value.Float64()
			if h.json {
				// slog's JSON handler calls json.Marshal, which writes
				// the shortest 'f' form in this range and an exponent
				// outside it.
				if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) || math.IsNaN(f) {
					return b, false
				}
				b = strconv.AppendFloat(b, f, 'f', -1, 64)
			} else {
				b = strconv.AppendFloat(b, f, 'g', -1, 64)
			}
		default:
			return b, false
		}
	}
	if h.json {
		b = append(b, '}')
	}
	return append(b, '\n'), true
}

// appendString appends s as slog's handler writes a string value, if it
// is plain; it reports false otherwise.
func (h *Handler) appendString(b []byte, s string) ([]byte, bool) {
	if !plain(s) {
		return b, false
	}
	return h.appendPlain(b, s), true
}

// appendPlain appends a plain string: JSON writes it as it is between
// quotes; text quotes it (strconv.Quote, which for a plain string only
// adds the quotes) when it is empty or holds a space or '=', as slog's
// needsQuoting does.
func (h *Handler) appendPlain(b []byte, s string) []byte {
	quote := h.json || s == ""
	for i := 0; !quote && i < len(s); i++ {
		quote = s[i] == ' ' || s[i] == '='
	}
	if !quote {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain reports whether s is printable ASCII without a quote or a
// backslash: the strings that both slog handlers write without escaping
// anything. The rest go through slog.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendRFC3339Millis is slog's text time: RFC 3339 with exactly three
// digits of milliseconds (log/slog's function of the same name).
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// RFC3339Nano trims trailing zeros: adding a tenth of a millisecond
	// guarantees four digits, and the fourth is dropped.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
