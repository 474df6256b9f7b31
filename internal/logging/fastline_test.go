package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The request log's fast path writes exactly the line slog's own handler
// writes, for both formats, whatever the values: plain ones it formats
// itself, and the tricky ones (quotes, newlines, non-ASCII, control
// characters, empty strings, odd floats) it hands to slog. An operator's
// log parser cannot tell which path wrote a line.
func TestFastLineIsSlogsLine(t *testing.T) {
	t.Parallel()
	strs := []string{
		"", "GET", "/auth/verify", "GET /auth/verify", "GET /{$}", "a=b", " ", "=",
		`say "hi"`, `back\slash`, "line\nbreak", "cr\rtab\t", "\x00\x01\x1f", "\x7f",
		"ünïcödé", "中文路径", "/path/\u2028sep", "\xff\xfe invalid", "<script>&amp;</script>",
		"127.0.0.1", "2001:db8::1", "0123456789abcdef", strings.Repeat("x", 3000),
	}
	floats := []float64{0, 0.001, 0.123, 1, 12.5, 999.999, 1234567.891, 1e-7, 1e21, 3e25, -0.5}
	times := []time.Time{
		time.Date(2026, 12, 6, 5, 8, 22, 0, time.UTC),
		time.Date(2026, 12, 6, 5, 8, 22, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.FixedZone("CST", 8*3600)),
		time.Date(2026, 6, 1, 0, 0, 0, 100000, time.FixedZone("", -(3*3600+1800))),
	}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2}
	var cases [][]slog.Attr
	for i, s := range strs {
		cases = append(cases, []slog.Attr{
			slog.String("method", "GET"), slog.String("path", s), slog.String("route", strs[(i+3)%len(strs)]),
			slog.Int("status", 200+i), slog.Float64("duration_ms", floats[i%len(floats)]),
			slog.String("client", "127.0.0.1"), slog.String("replica", s), slog.String("request_id", "abc"),
		})
	}
	for _, f := range floats {
		cases = append(cases, []slog.Attr{slog.Float64("duration_ms", f), slog.Int("n", -42)})
	}
	cases = append(cases,
		nil,
		[]slog.Attr{slog.String("", "empty key")},
		[]slog.Attr{slog.String("key with space", "v")},
		[]slog.Attr{slog.String("k=v", "v")},
		[]slog.Attr{slog.Bool("b", true)},
		[]slog.Attr{slog.Duration("d", time.Second)},
	)
	msgs := []string{"request", "", "two words", "quote\""}
	for _, format := range []string{FormatText, FormatJSON} {
		var fast, slow bytes.Buffer
		log, err := New(&fast, format, slog.LevelDebug)
		if err != nil {
			t.Fatal(err)
		}
		h := log.Handler().(*Handler)
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		ref := slog.Handler(slog.NewTextHandler(&slow, opts))
		if format == FormatJSON {
			ref = slog.NewJSONHandler(&slow, opts)
		}
		n := 0
		for i, attrs := range cases {
			tm := times[i%len(times)]
			level := levels[i%len(levels)]
			msg := msgs[i%len(msgs)]
			fast.Reset()
			slow.Reset()
			h.logAt(context.Background(), tm, level, msg, attrs)
			r := slog.NewRecord(tm, level, msg, 0)
			r.AddAttrs(attrs...)
			if err := ref.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if fast.String() != slow.String() {
				t.Errorf("%s, case %d:\n got %q\nwant %q", format, i, fast.String(), slow.String())
			}
			if _, ok := h.appendLine(nil, tm, level, msg, attrs); ok {
				n++
			}
		}
		// The comparison must cover the fast path itself, not only the
		// fallback.
		if n < 10 {
			t.Errorf("%s: only %d of %d cases took the fast path, want the plain ones to", format, n, len(cases))
		}
	}
}

// The request line a server writes takes the fast path and is one whole
// line through the Writer, flushed at Close.
func TestRequestLineThroughTheWriter(t *testing.T) {
	t.Parallel()
	out := &countingWriter{}
	w := NewWriter(out, time.Hour)
	log, err := New(w, FormatText, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Handler().(*Handler).LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("method", "GET"), slog.String("route", "GET /auth/verify"), slog.Int("status", 401))
	if text, _ := out.state(); text != "" {
		t.Fatalf("before Close: got %q, want nothing written yet", text)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	text, _ := out.state()
	if !strings.HasSuffix(text, ` level=INFO msg=request method=GET route="GET /auth/verify" status=401`+"\n") || strings.Count(text, "\n") != 1 {
		t.Errorf("got %q, want one request line", text)
	}
}

// BenchmarkRequestLine compares the fast path with slog's handler for the
// request log's line.
func BenchmarkRequestLine(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("method", "GET"), slog.String("path", "/auth/verify"), slog.String("route", "GET /auth/verify"),
		slog.Int("status", 200), slog.Float64("duration_ms", 0.123),
		slog.String("client", "127.0.0.1"), slog.String("replica", "replica-1"), slog.String("request_id", "0123456789abcdef"),
	}
	for _, format := range []string{FormatText, FormatJSON} {
		w := NewWriter(discard{}, time.Hour)
		log, err := New(w, format, slog.LevelInfo)
		if err != nil {
			b.Fatal(err)
		}
		h := log.Handler().(*Handler)
		b.Run(format+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
		b.Run(format+"/slog", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
		_ = w.Close()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
