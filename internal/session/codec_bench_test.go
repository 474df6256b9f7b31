package session

import (
	"testing"
	"time"
)

// typicalValues is what a session holds after a browser login: the
// fields Start puts, a desktop Firefox user agent.
func typicalValues() map[string]any {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return map[string]any{
		"__rememberMe":  false,
		fieldUsername:   "alice",
		fieldLoginAt:    now,
		fieldLastSeenAt: now,
		fieldExpiresAt:  time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339Nano),
		fieldLoginIP:    "203.0.113.7",
		fieldUserAgent:  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	}
}

// BenchmarkCodec measures encoding and decoding one typical session, the
// work every page view (decode) and every save (encode) does besides
// Redis, and reports the encoded size.
//
//	go test -run '^$' -bench Codec ./internal/session
func BenchmarkCodec(b *testing.B) {
	c := JSONCodec{Lifetime: 24 * time.Hour}
	deadline := time.Now().Add(24 * time.Hour)
	values := typicalValues()
	doc, err := c.Encode(deadline, values)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Encode(deadline, values); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(doc)), "bytes/session")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.Decode(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
