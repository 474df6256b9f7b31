package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The collector's defaults. A check allocates a few kilobytes and the live
// heap is small (15-20 MB: the session cache, the decode memo, the
// templates), so under load Go's default GOGC=100 starts a collection
// every few dozen milliseconds, each marking on one of the cores that
// serve requests: about a sixth of the CPU of a forward-auth check on a
// 2-core machine. At 400 a collection comes a quarter as often, for about
// 45 MB more heap at peak. Where the process runs under a memory limit
// (a container's cgroup memory.max), GOMEMLIMIT is set below it, so that
// the collector works harder near the limit instead of the process being
// killed at it. GOGC and GOMEMLIMIT in the environment are the runtime's
// own settings and win over both.
const (
	// defaultGCPercent is GOGC when the environment does not set it.
	defaultGCPercent = 400
	// memoryLimitShare is the share of a cgroup memory limit given to
	// GOMEMLIMIT when the environment does not set it: the rest is for
	// what the runtime does not count (stacks of the OS, the binary).
	memoryLimitShare = 0.8
	// cgroupMemoryMax is where cgroup v2 says the process's memory limit.
	cgroupMemoryMax = "/sys/fs/cgroup/memory.max"
)

// gcSettings is what the server sets the collector to at start; zero
// fields are left as the runtime has them.
type gcSettings struct {
	// percent is the GOGC to set; 0 leaves the environment's.
	percent int
	// memoryLimit is the GOMEMLIMIT to set, in bytes; 0 leaves it.
	memoryLimit int64
	// gogc and gomemlimit describe the effective values for the start-up
	// log: the environment's, or what this sets and why.
	gogc, gomemlimit string
}

// gcDefaults decides the collector's settings from the environment and
// the cgroup memory limit (the contents of memory.max; "" or "max" when
// none).
func gcDefaults(getenv func(string) string, cgroupMax string) gcSettings {
	var g gcSettings
	if v := getenv("GOGC"); v != "" {
		g.gogc = v + " (GOGC)"
	} else {
		g.percent = defaultGCPercent
		g.gogc = strconv.Itoa(defaultGCPercent) + " (default)"
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64)
	switch {
	case getenv("GOMEMLIMIT") != "":
		g.gomemlimit = getenv("GOMEMLIMIT") + " (GOMEMLIMIT)"
	case err == nil && limit > 0:
		g.memoryLimit = int64(float64(limit) * memoryLimitShare)
		g.gomemlimit = strconv.FormatInt(g.memoryLimit>>20, 10) + "MiB (80% of the cgroup's memory.max)"
	default:
		g.gomemlimit = "none"
	}
	return g
}

// readCgroupMemoryMax is the cgroup v2 memory limit file's contents, ""
// when there is none.
func readCgroupMemoryMax() string {
	b, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return ""
	}
	return string(b)
}

// apply sets the collector.
func (g gcSettings) apply() {
	if g.percent != 0 {
		debug.SetGCPercent(g.percent)
	}
	if g.memoryLimit > 0 {
		debug.SetMemoryLimit(g.memoryLimit)
	}
}
