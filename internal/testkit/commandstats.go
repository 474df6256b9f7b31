package testkit

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Calls are how many times a Redis server has run each command since it
// started, by lower-case name ("xadd", "client|setinfo"), as INFO
// commandstats gives them: what benchmarks read to report the Redis
// commands an operation costs.
type Calls map[string]int64

// CommandCalls reads the calls of the server behind c. Reading them is an
// INFO, which the next reading counts: Since leaves it out.
func CommandCalls(tb testing.TB, c redis.Cmdable) Calls {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	calls := Calls{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		if err != nil {
			tb.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		calls[name] = n
	}
	return calls
}

// Since is how many calls of each command the server ran between before
// and c, leaving out the INFO commands that read them.
func (c Calls) Since(before Calls) Calls {
	d := Calls{}
	for name, n := range c {
		if n -= before[name]; n != 0 && name != "info" {
			d[name] = n
		}
	}
	return d
}

// Total is the sum of the calls, leaving out the commands named in except.
func (c Calls) Total(except ...string) int64 {
	var t int64
	for name, n := range c {
		if !slices.Contains(except, name) {
			t += n
		}
	}
	return t
}
