// Package activity records security events (sign-ins, sign-outs, account
// changes) to Redis Streams: one capped stream per user, shown on the
// security page, and one service-wide stream that operators' tools follow
// with XREAD or consumer groups. Recording never fails or slows the
// request that causes it: events go through a bounded queue to one writer;
// a lost write is counted and logged, never retried on the request path.
package activity

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"loginsvc/internal/store"
)

// Kinds of event.
const (
	// SignIn: a browser session started (method, amr, new_device).
	SignIn = "sign_in"
	// APITokenCreated: an API session started by POST /api/login.
	APITokenCreated = "api_token_created"
	// SecondStepFailed: a wrong code or passkey after a right password.
	SecondStepFailed = "second_step_failed"
	// LockoutStarted: the account's failed logins reached the limit.
	LockoutStarted = "lockout_started"
	// LockoutLifted: an operator unlocked the account (server user
	// unlock). A lockout that ends with its window, or with a new
	// password, is not recorded.
	LockoutLifted = "lockout_lifted"
	// SignOut: the user logged out.
	SignOut = "sign_out"
	// SessionRevoked: sessions ended by someone else than their own
	// logout (by: user, operator, cap, password_change, factor_change,
	// user_deleted; count).
	SessionRevoked = "session_revoked"
	// PasswordChanged: by the user or an operator.
	PasswordChanged = "password_changed"
	// FactorAdded, FactorRemoved: method totp or passkey.
	FactorAdded   = "factor_added"
	FactorRemoved = "factor_removed"
	// FactorsReset: an operator removed every second factor.
	FactorsReset = "factors_reset"
	// RecoveryCodeUsed: a recovery code stood in for a code (left).
	RecoveryCodeUsed = "recovery_code_used"
	// RecoveryCodesRegenerated: new recovery codes; the old ones stopped.
	RecoveryCodesRegenerated = "recovery_codes_regenerated"
	// Reauthenticated: a full authentication before a sensitive action.
	Reauthenticated = "reauthenticated"
	// UserCreated, UserDeleted: by an operator (server user add, user
	// delete) or, for UserCreated, by the bootstrap (a server creating
	// BOOTSTRAP_USER or the demo user at start).
	UserCreated = "user_created"
	UserDeleted = "user_deleted"
)

// Kinds lists every kind, for metrics and documentation.
var Kinds = []string{
	SignIn, APITokenCreated, SecondStepFailed, LockoutStarted, LockoutLifted, SignOut, SessionRevoked,
	PasswordChanged, FactorAdded, FactorRemoved, FactorsReset, RecoveryCodeUsed, RecoveryCodesRegenerated,
	Reauthenticated, UserCreated, UserDeleted,
}

// Notable reports whether the user would want to hear of an event of
// kind on their other devices at once (a one-time notice on the next
// page view): a sign-in from a new device, a password or factor change.
func Notable(e Event) bool {
	switch e.Kind {
	case SignIn:
		return e.Fields["new_device"] == "true"
	case PasswordChanged, FactorAdded, FactorRemoved, FactorsReset, RecoveryCodeUsed:
		return true
	}
	return false
}

// Who caused a revocation or a change (the "by" field). An operator is
// whoever ran the command-line tools: the OS account that ran them is not
// recorded, since in a container it is the image's user, not a person,
// and "by" stays one of these words, which the security page translates.
const (
	ByUser           = "user"
	ByOperator       = "operator"
	ByCap            = "cap"
	ByPasswordChange = "password_change"
	ByFactorChange   = "factor_change"
	ByUserDeleted    = "user_deleted"
	// ByBootstrap is the server itself creating BOOTSTRAP_USER (or the
	// embedded mode's demo user) at start: nobody ran a command.
	ByBootstrap = "bootstrap"
)

// Event is one security event. It never holds a token, code, secret or
// password: only names, ids, methods and counts.
type Event struct {
	// ID is the stream entry id ("1733450000000-0"), set when read.
	ID string
	// Time is when it happened.
	Time time.Time
	// User is the account, Kind what happened (see the constants).
	User, Kind string
	// Session is the public id of the session concerned, if any.
	Session string
	// Device is a summary of the client ("Firefox 133 on Linux"), IP its
	// address, Replica the INSTANCE_ID that recorded it.
	Device, IP, Replica string
	// Fields are the kind's own details: method, amr, by, count, left,
	// new_device.
	Fields map[string]string
}

// Actor is who acts in a request: the client's address and user agent,
// or the command-line tools. The web layer puts it in the request's
// context; every event recorded under that context carries it.
type Actor struct {
	IP        netip.Addr
	UserAgent string
	// Via is "web", "api" or "cli".
	Via string
}

type actorKey struct{}
type byKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorOf is the actor ctx carries.
func ActorOf(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}

// Because returns ctx saying who or what caused what follows (ByUser...):
// the session package records its revocations with it, and auth the
// creation of a user (ByOperator unless said otherwise).
func Because(ctx context.Context, by string) context.Context {
	return context.WithValue(ctx, byKey{}, by)
}

// ReasonOf is the reason Because put in ctx, or def.
func ReasonOf(ctx context.Context, def string) string {
	if by, ok := ctx.Value(byKey{}).(string); ok && by != "" {
		return by
	}
	return def
}

// Config configures a Log.
type Config struct {
	// Replica is INSTANCE_ID, recorded in every event.
	Replica string
	// PerUser caps each user's stream (MAXLEN ~). Default 200.
	PerUser int
	// ServiceWide caps the service-wide stream (EVENTS_MAXLEN); 0, the
	// zero value, turns it off (EVENTS_STREAM=off), so every caller sets
	// it: the server and the CLI to EVENTS_MAXLEN (DefaultServiceWide
	// unless set).
	ServiceWide int
	// Describe summarises a user agent ("Firefox 133 on Linux"); it runs
	// on the writer, never on the request.
	Describe func(userAgent string) string
	// Observe, if set, hears each event recorded (metrics) and each one
	// dropped.
	Observe Observer
}

// DefaultServiceWide is EVENTS_MAXLEN's default.
const DefaultServiceWide = 100_000

// Observer hears of events for metrics.
type Observer interface {
	EventRecorded(kind string)
	EventDropped(kind string)
}

// queueSize bounds the events waiting for the writer: a Redis outage
// costs at most this many events' memory, never a blocked request.
const queueSize = 4096

// Log records events. Its writer runs from Start until Close.
type Log struct {
	cfg    Config
	events *store.Events
	log    *slog.Logger
	queue  chan Event
	done   chan struct{}
	once   sync.Once
	// dropped counts events lost (a full queue, a failed write), for
	// the rate-limited warning.
	dropped   atomic.Int64
	lastWarn  atomic.Int64
	closing   atomic.Bool
	running   atomic.Bool
	startOnce sync.Once
}

// New returns a Log on the event streams of rdb.
func New(events *store.Events, cfg Config, log *slog.Logger) *Log {
	if cfg.PerUser <= 0 {
		cfg.PerUser = 200
	}
	if cfg.ServiceWide < 0 {
		cfg.ServiceWide = 0
	}
	if cfg.Describe == nil {
		cfg.Describe = func(string) string { return "" }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{cfg: cfg, events: events, log: log, queue: make(chan Event, queueSize), done: make(chan struct{})}
}

// Start runs the writer until Close. Without it (the command-line
// tools, whose process ends right after) Record writes before it
// returns.
func (l *Log) Start() {
	l.startOnce.Do(func() {
		l.running.Store(true)
		go l.write()
	})
}

// Record records e (kind, user and fields; the time, actor and replica
// are filled in). It never blocks: with the queue full, the event is
// dropped, counted and logged.
func (l *Log) Record(ctx context.Context, e Event) {
	if l == nil || e.User == "" {
		return
	}
	a := ActorOf(ctx)
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.IP == "" && a.IP.IsValid() {
		e.IP = a.IP.String()
	}
	if e.Device == "" {
		e.Device = a.UserAgent // summarised by the writer
	}
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if a.Via != "" {
		e.Fields["via"] = a.Via
	}
	e.Replica = l.cfg.Replica
	if !l.running.Load() {
		l.store(context.WithoutCancel(ctx), e)
		return
	}
	if l.closing.Load() {
		l.drop(e, nil)
		return
	}
	select {
	case l.queue <- e:
	default:
		l.drop(e, nil)
	}
}

func (l *Log) drop(e Event, err error) {
	n := l.dropped.Add(1)
	if l.cfg.Observe != nil {
		l.cfg.Observe.EventDropped(e.Kind)
	}
	now := time.Now().Unix()
	if last := l.lastWarn.Load(); now-last >= 60 && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("security events lost (Redis unreachable or too slow; not retried)", "kind", e.Kind, "user", e.User, "lost_so_far", n, "err", err)
	}
}

// write is the writer: one event at a time, each one XADD to the user's
// stream and one to the service-wide stream, with the store's deadlines.
func (l *Log) write() {
	defer close(l.done)
	for e := range l.queue {
		l.store(context.Background(), e)
	}
}

func (l *Log) store(ctx context.Context, e Event) {
	e.Device = l.cfg.Describe(e.Device)
	// A deleted user's stream is gone: what its deletion caused goes to
	// the service-wide stream only, or it would bring the stream back
	// for whoever is created under the name next.
	stream := e.User
	if e.Kind == UserDeleted || e.Fields["by"] == ByUserDeleted {
		stream = ""
	}
	err := l.events.Add(ctx, store.Event{
		User: stream, Kind: e.Kind, Time: e.Time, Fields: encode(e),
	}, l.cfg.PerUser, l.cfg.ServiceWide)
	if err != nil {
		l.drop(e, err)
		return
	}
	if l.cfg.Observe != nil {
		l.cfg.Observe.EventRecorded(e.Kind)
	}
}

// Close stops taking events, writes those queued (for at most a few
// seconds: Redis may be gone) and stops the writer.
func (l *Log) Close() {
	if l == nil || !l.running.Load() {
		return
	}
	l.once.Do(func() {
		l.closing.Store(true)
		close(l.queue)
	})
	select {
	case <-l.done:
	case <-time.After(3 * time.Second):
	}
}

// Dropped is how many events were lost since start.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// encode is an event's stream fields, in a stable order.
func encode(e Event) []string {
	f := []string{"time", e.Time.UTC().Format(time.RFC3339Nano), "user", e.User, "kind", e.Kind}
	for _, kv := range [][2]string{{"session", e.Session}, {"device", e.Device}, {"ip", e.IP}, {"replica", e.Replica}} {
		if kv[1] != "" {
			f = append(f, kv[0], kv[1])
		}
	}
	for _, k := range fieldOrder {
		if v, ok := e.Fields[k]; ok && v != "" {
			f = append(f, k, v)
		}
	}
	return f
}

// fieldOrder are the detail fields an event may carry; anything else is
// not stored (so nothing unexpected, a secret least of all, slips in).
var fieldOrder = []string{"method", "amr", "by", "count", "left", "new_device", "via"}

// decode is encode's inverse.
func decode(se store.Event) Event {
	e := Event{ID: se.ID, User: se.User, Kind: se.Kind, Time: se.Time, Fields: map[string]string{}}
	for i := 0; i+1 < len(se.Fields); i += 2 {
		k, v := se.Fields[i], se.Fields[i+1]
		switch k {
		case "time", "user", "kind":
		case "session":
			e.Session = v
		case "device":
			e.Device = v
		case "ip":
			e.IP = v
		case "replica":
			e.Replica = v
		default:
			e.Fields[k] = v
		}
	}
	return e
}

// Recent returns user's events since since, newest first, at most limit.
func (l *Log) Recent(ctx context.Context, user string, since time.Time, limit int) ([]Event, error) {
	raw, err := l.events.OfUser(ctx, user, since, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(raw))
	for i, se := range raw {
		out[i] = decode(se)
	}
	return out, nil
}

// Follow calls fn for each service-wide event after the entry id after
// ("$": only new ones; "0": from the oldest kept), blocking up to block
// for each batch, until ctx ends or fn returns an error.
func (l *Log) Follow(ctx context.Context, after string, block time.Duration, fn func(Event) error) error {
	for {
		batch, err := l.events.Read(ctx, after, 100, block)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, se := range batch {
			if err := fn(decode(se)); err != nil {
				return err
			}
			after = se.ID
		}
		if block <= 0 && len(batch) == 0 {
			return nil
		}
	}
}

// Tail returns the last n service-wide events, oldest first.
func (l *Log) Tail(ctx context.Context, n int) ([]Event, error) {
	raw, err := l.events.Last(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(raw))
	for i, se := range raw {
		out[i] = decode(se)
	}
	return out, nil
}
