package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
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
// time, the deadline never goes past login time + Lifetime, nor past the
// absolute deadline recorded at login, so neither a token renewal (which
// scs treats as a fresh start) nor a later, longer SESSION_LIFETIME can
// extend it beyond what the user index was told.
type JSONCodec struct {
	// Lifetime is the absolute session lifetime counted from login. Zero
	// turns that clamp off (the recorded absolute deadline still holds).
	Lifetime time.Duration

	// memo, when set (the Manager's codec), remembers decoded documents
	// (memo.go).
	memo *docMemo
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
	if c.memo == nil {
		return c.decode(b)
	}
	d, err := c.doc(b)
	if err != nil {
		return time.Time{}, nil, err
	}
	return d.deadline, d.cloneValues(), nil
}

// doc is Decode's result as the memo keeps it: decoded once per distinct
// document, shared, never changed.
func (c JSONCodec) doc(b []byte) (*doc, error) {
	if c.memo != nil {
		if d := c.memo.get(b); d != nil {
			return d, nil
		}
	}
	deadline, values, err := c.decode(b)
	if err != nil {
		return nil, err
	}
	d := newDoc(deadline, values)
	if c.memo != nil {
		c.memo.put(b, d)
	}
	return d, nil
}

func (c JSONCodec) decode(b []byte) (time.Time, map[string]any, error) {
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
	deadline := c.clamp(doc.Deadline, doc.Values)
	if deadline.UTC().Year() < 1 {
		return time.Time{}, nil, errors.New("decode session: login time out of range")
	}
	return deadline, doc.Values, nil
}

func (c JSONCodec) clamp(deadline time.Time, values map[string]any) time.Time {
	if loginAt, ok := timeValue(values, fieldLoginAt); ok && c.Lifetime > 0 {
		if limit := loginAt.Add(c.Lifetime); deadline.After(limit) {
			deadline = limit
		}
	}
	if limit, ok := timeValue(values, fieldExpiresAt); ok && deadline.After(limit) {
		deadline = limit
	}
	return deadline
}

// timeValue reads a time kept as an RFC 3339 string in the session values.
func timeValue(values map[string]any, key string) (time.Time, bool) {
	s, _ := values[key].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}
