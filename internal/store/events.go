package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Security events live in Redis Streams: user:{<name>}:events, capped per
// user (MAXLEN ~) in the user's slot, and events, one service-wide stream
// (one key, so one Cluster slot: a single node takes every event; turn it
// off with EVENTS_STREAM=off where that is too much).

// Event is one stream entry: its id, and its fields as name/value pairs
// (package activity defines what they mean).
type Event struct {
	// ID is the entry id, set when read.
	ID string
	// User and Kind are also fields; Time is the "time" field, parsed.
	User, Kind string
	Time       time.Time
	// Fields are name, value, name, value... in stream order.
	Fields []string
}

// Events keeps the event streams. Get one from Open.
type Events struct {
	client   redis.UniversalClient
	timeouts Timeouts
}

// Add appends e to its user's stream (capped near perUser entries) and,
// when serviceWide > 0, to the service-wide stream (capped near it). The
// two XADDs are separate commands: on Cluster they are in different slots.
func (s *Events) Add(ctx context.Context, e Event, perUser, serviceWide int) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	values := make([]any, len(e.Fields))
	for i, f := range e.Fields {
		values[i] = f
	}
	if e.User != "" {
		if err := s.client.XAdd(ctx, &redis.XAddArgs{Stream: userEventsKey(e.User), MaxLen: int64(perUser), Approx: true, Values: values}).Err(); err != nil {
			return unavailable("add event", err)
		}
	}
	if serviceWide > 0 {
		if err := s.client.XAdd(ctx, &redis.XAddArgs{Stream: EventsKey, MaxLen: int64(serviceWide), Approx: true, Values: values}).Err(); err != nil {
			return unavailable("add event", err)
		}
	}
	return nil
}

func toEvents(msgs []redis.XMessage) []Event {
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		e := Event{ID: m.ID}
		// go-redis gives the fields as a map: put them back in a stable
		// order (the ones the writer knows first).
		for _, k := range eventFieldOrder {
			if v, ok := m.Values[k].(string); ok {
				e.Fields = append(e.Fields, k, v)
			}
		}
		e.User, _ = m.Values["user"].(string)
		e.Kind, _ = m.Values["kind"].(string)
		if t, ok := m.Values["time"].(string); ok {
			e.Time, _ = time.Parse(time.RFC3339Nano, t)
		}
		out = append(out, e)
	}
	return out
}

// eventFieldOrder are the fields read back, in the order they are shown.
var eventFieldOrder = []string{"time", "user", "kind", "session", "device", "ip", "replica", "method", "amr", "by", "count", "left", "new_device", "via"}

// OfUser returns user's events since since, newest first, at most limit.
func (s *Events) OfUser(ctx context.Context, user string, since time.Time, limit int) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	msgs, err := s.client.XRevRangeN(ctx, userEventsKey(user), "+", strconv.FormatInt(since.UnixMilli(), 10), int64(limit)).Result()
	if err != nil {
		return nil, unavailable("read events", err)
	}
	return toEvents(msgs), nil
}

// Last returns the last n service-wide events, oldest first.
func (s *Events) Last(ctx context.Context, n int) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	msgs, err := s.client.XRevRangeN(ctx, EventsKey, "+", "-", int64(n)).Result()
	if err != nil {
		return nil, unavailable("read events", err)
	}
	out := toEvents(msgs)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Read returns up to count service-wide events after the entry id after
// ("$" for only new ones), waiting up to block for the first (0: not at
// all); none when the wait ends empty.
func (s *Events) Read(ctx context.Context, after string, count int, block time.Duration) ([]Event, error) {
	args := &redis.XReadArgs{Streams: []string{EventsKey, after}, Count: int64(count), Block: -1}
	if block > 0 {
		args.Block = block
	}
	res, err := s.client.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("follow events", err)
	}
	var out []Event
	for _, st := range res {
		out = append(out, toEvents(st.Messages)...)
	}
	return out, nil
}

// DeleteUser removes user's event stream and waiting notice (the user's
// deletion), one DEL per key.
func (s *Events) DeleteUser(ctx context.Context, user string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	for _, key := range []string{userEventsKey(user), userNoticeKey(user)} {
		if err := s.client.Del(ctx, key).Err(); err != nil {
			return unavailable("delete events", err)
		}
	}
	return nil
}

// Len returns how many entries a user's stream ("" for the service-wide
// one) holds.
func (s *Events) Len(ctx context.Context, user string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	key := EventsKey
	if user != "" {
		key = userEventsKey(user)
	}
	n, err := s.client.XLen(ctx, key).Result()
	if err != nil {
		return 0, unavailable(fmt.Sprintf("count events of %q", user), err)
	}
	return n, nil
}

// SetNotice leaves notice for user's next login, for ttl.
func (s *Events) SetNotice(ctx context.Context, user, notice string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	if err := s.client.Set(ctx, userNoticeKey(user), notice, ttl).Err(); err != nil {
		return unavailable("set notice", err)
	}
	return nil
}

// TakeNotice returns the notice waiting for user's login and removes it
// (GETDEL); "" for none.
func (s *Events) TakeNotice(ctx context.Context, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeouts.Op)
	defer cancel()
	n, err := s.client.GetDel(ctx, userNoticeKey(user)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", unavailable("take notice", err)
	}
	return n, nil
}
