package main

import (
	"log/slog"

	"loginsvc/internal/store"
)

// startSessionCache turns the session cache on if SESSION_CACHE=on and the
// Redis can keep it honest, and says on one line which is in effect and,
// when off, why. The cache stops with rdb.Close.
func startSessionCache(log *slog.Logger, rdb *store.Redis, cfg config, embedded bool) {
	switch {
	case !cfg.SessionCache:
		log.Info("session cache off", "reason", "SESSION_CACHE=off")
	case embedded:
		log.Info("session cache off", "reason", "the embedded Redis has no CLIENT TRACKING")
	default:
		if err := rdb.StartSessionCache(log); err != nil {
			log.Info("session cache off", "reason", err.Error())
			return
		}
		log.Info("session cache on", "max_age", store.CacheMaxAge.String(), "max_entries", store.CacheMaxEntries,
			"invalidations", "CLIENT TRACKING BCAST on a channel of its own; lost channel: cache flushed, reads go to Redis")
	}
}
