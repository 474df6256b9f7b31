package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Names of the session values the service keeps. They are strings (times
// in RFC 3339), so `redis-cli GET` shows a readable document.
const (
	FieldUsername  = "username"
	FieldLoginAt   = "login_at"
	FieldLoginIP   = "login_ip"
	FieldUserAgent = "user_agent"
)

// maxSessionBytes bounds what Decode accepts, so a corrupted or hostile
// value cannot make a request allocate without limit.
const maxSessionBytes = 64 << 10

// JSONCodec is the scs Codec for this service: a session is stored as
//
//	{"deadline":"2026-11-25T19:00:00Z","values":{"username":"admin",...}}
//
// instead of scs's gob, so operators can read it with redis-cli.
//
// It also enforces the absolute lifetime: when the session holds a login
// time, the deadline never goes past login time + Lifetime, so a later
// token renewal (which scs treats as a fresh start) cannot extend it.
type JSONCodec struct {
	// Lifetime is the absolute session lifetime counted from login. Zero
	// turns the clamp off.
	Lifetime time.Duration
}

type sessionDoc struct {
	Deadline time.Time      `json:"deadline"`
	Values   map[string]any `json:"values"`
}

// Encode implements scs.Codec.
func (c JSONCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	if values == nil {
		values = map[string]any{}
	}
	b, err := json.Marshal(sessionDoc{Deadline: c.clamp(deadline, values).UTC(), Values: values})
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	return b, nil
}

// Decode implements scs.Codec. Anything that is not a session document is
// an error; the web layer treats such a session as absent.
func (c JSONCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) > maxSessionBytes {
		return time.Time{}, nil, errors.New("decode session: too large")
	}
	var doc sessionDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return time.Time{}, nil, fmt.Errorf("decode session: %w", err)
	}
	// Encode must be able to write back whatever Decode accepts, or the
	// session would load and then fail on every save.
	if y := doc.Deadline.UTC().Year(); doc.Deadline.IsZero() || y < 1 || y > 9999 {
		return time.Time{}, nil, errors.New("decode session: missing or out-of-range deadline")
	}
	if doc.Values == nil {
		doc.Values = map[string]any{}
	}
	return c.clamp(doc.Deadline, doc.Values), doc.Values, nil
}

func (c JSONCodec) clamp(deadline time.Time, values map[string]any) time.Time {
	if c.Lifetime <= 0 {
		return deadline
	}
	s, _ := values[FieldLoginAt].(string)
	loginAt, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return deadline
	}
	if limit := loginAt.Add(c.Lifetime); deadline.After(limit) {
		return limit
	}
	return deadline
}
