package store

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-process Redis-compatible server (miniredis) for running
// the service with nothing but Go. It is reached over TCP like a real Redis,
// so the service uses the same code path, and `redis-cli -p PORT` works.
// Data lives in memory only and is not shared with other processes.
type Embedded struct {
	m *miniredis.Miniredis
}

// StartEmbedded starts the embedded server on a free loopback port. Key
// TTLs follow the wall clock, as in a real Redis (miniredis only moves
// them on demand otherwise).
func StartEmbedded() (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return &Embedded{m: m}, nil
}

// Addr is host:port of the embedded server.
func (e *Embedded) Addr() string { return e.m.Addr() }

// Port is the embedded server's TCP port, for redis-cli -p.
func (e *Embedded) Port() string { return e.m.Port() }

// URL is the redis:// URL of the embedded server.
func (e *Embedded) URL() string { return "redis://" + e.m.Addr() + "/0" }

// Close stops the server; its data is gone.
func (e *Embedded) Close() { e.m.Close() }
