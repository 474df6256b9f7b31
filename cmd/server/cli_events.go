package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"loginsvc/internal/activity"
)

const eventsUsage = "usage: server events tail [--user NAME] [--json] [--follow] [-n N] (needs REDIS_URL; server events tail --help explains it)"

// eventsVerbs are the events commands, for `server events --help`.
var eventsVerbs = []string{"events tail"}

// followBlock is how long one XREAD BLOCK of --follow waits: go-redis does
// not interrupt a blocked read when ctx ends, so an interrupt is noticed
// within this.
const followBlock = time.Second

// runEvents runs the events subcommands against the Redis at REDIS_URL.
// Every argument is checked before Redis is opened.
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{eventsUsage}
	}
	if len(args) == 1 && isHelp(args[0]) {
		return helpRequested{overview(eventsVerbs)}
	}
	if args[0] != "tail" {
		return usageError{eventsUsage}
	}
	const verb = "events tail"
	args = args[1:]
	if err := verbHelp(verb, args); err != nil {
		return err
	}
	fs := flag.NewFlagSet("server "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	user := fs.String("user", "", "only this user's events, from the user's own stream")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	follow := fs.Bool("follow", false, "then print new events as they come")
	n := fs.Int("n", 20, "how many recent events")
	rest, err := parseFlags(fs, args, false, usageLine(verb))
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return verbUsageError(verb, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	if *n < 0 {
		return verbUsageError(verb, fmt.Sprintf("invalid -n %d: want 0 or more", *n))
	}

	op, err := openOperator(getenv, "events")
	if err != nil {
		return err
	}
	defer op.close()
	out := bufio.NewWriterSize(stdout, 64<<10)
	err = tailEvents(ctx, op, *user, *n, *follow, newEventPrinter(out, *asJSON))
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// tailEvents prints the last n events (the service-wide stream's, or
// user's own), oldest first, then with follow the new service-wide ones
// (of user, if given) until ctx ends.
func tailEvents(ctx context.Context, op *operator, user string, n int, follow bool, p *eventPrinter) error {
	name := ""
	if user != "" {
		var err error
		if name, err = canonicalUser(user); err != nil {
			return err
		}
		if err := mustExist(ctx, op, name); err != nil {
			return err
		}
	}
	if (name == "" || follow) && !op.eventsOn {
		return fmt.Errorf("the service-wide event stream is off (EVENTS_STREAM=off): only --user NAME without --follow can be shown")
	}
	log := op.backend.Activity
	var events []activity.Event
	var err error
	switch {
	case n == 0:
	case name != "":
		// Since the epoch: the user's stream is capped by length, not age.
		events, err = log.Recent(ctx, name, time.Unix(0, 0), n)
		slices.Reverse(events)
	default:
		events, err = log.Tail(ctx, n)
	}
	if err != nil {
		return err
	}
	for _, e := range events {
		if err := p.print(e); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	if err := p.flush(); err != nil {
		return err
	}
	// Go on from the last event printed, so none written in between is
	// missed; the user's stream has its own ids, so from "now" there.
	after := "$"
	if name == "" && len(events) > 0 {
		after = events[len(events)-1].ID
	}
	return log.Follow(ctx, after, followBlock, func(e activity.Event) error {
		if name != "" && e.User != name {
			return nil
		}
		if err := p.print(e); err != nil {
			return err
		}
		return p.flush()
	})
}

// eventPrinter writes events one line each: text for people, or one JSON
// object per line for scripts and log shippers.
type eventPrinter struct {
	w    *bufio.Writer
	json *json.Encoder
}

func newEventPrinter(w *bufio.Writer, asJSON bool) *eventPrinter {
	p := &eventPrinter{w: w}
	if asJSON {
		p.json = json.NewEncoder(w)
		p.json.SetEscapeHTML(false)
	}
	return p
}

func (p *eventPrinter) flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// eventJSON is the --json form of an event: the stream's field names (see
// package activity), the time in RFC 3339 UTC, count and left as numbers,
// new_device as a boolean. A field the event does not have is left out.
type eventJSON struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	User      string    `json:"user"`
	Kind      string    `json:"kind"`
	Session   string    `json:"session,omitempty"`
	Device    string    `json:"device,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Replica   string    `json:"replica,omitempty"`
	Method    string    `json:"method,omitempty"`
	AMR       string    `json:"amr,omitempty"`
	By        string    `json:"by,omitempty"`
	Count     *int      `json:"count,omitempty"`
	Left      *int      `json:"left,omitempty"`
	NewDevice *bool     `json:"new_device,omitempty"`
	Via       string    `json:"via,omitempty"`
}

func optInt(s string) *int {
	if v, err := strconv.Atoi(s); err == nil {
		return &v
	}
	return nil
}

func optBool(s string) *bool {
	if v, err := strconv.ParseBool(s); err == nil {
		return &v
	}
	return nil
}

// eventDetails are the detail fields in the order text shows them.
var eventDetails = []string{"method", "amr", "by", "count", "left", "new_device", "via"}

// eventRow: the time to the millisecond, the kind, a name up to 16
// characters, a session id, an IPv4 address, the replica; then the
// device and the details take the rest of the line.
const eventRow = "%-24s  %-26s  %-16s  %-16s  %-15s  %-12s  %s\n"

func (p *eventPrinter) print(e activity.Event) error {
	if p.json != nil {
		f := e.Fields
		if err := p.json.Encode(eventJSON{
			ID: e.ID, Time: e.Time.UTC(), User: e.User, Kind: e.Kind,
			Session: e.Session, Device: e.Device, IP: e.IP, Replica: e.Replica,
			Method: f["method"], AMR: f["amr"], By: f["by"], Count: optInt(f["count"]), Left: optInt(f["left"]),
			NewDevice: optBool(f["new_device"]), Via: f["via"],
		}); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	rest := []string{dash(e.Device)}
	for _, k := range eventDetails {
		if v := e.Fields[k]; v != "" {
			rest = append(rest, k+"="+v)
		}
	}
	if _, err := fmt.Fprintf(p.w, eventRow, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), printable(e.Kind), printable(e.User),
		dash(e.Session), dash(e.IP), dash(e.Replica), printable(strings.Join(rest, "  "))); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// dash is s made printable, or "-" for an empty column.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}
