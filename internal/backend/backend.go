// Package backend opens Redis and builds every store and service on it,
// once, the same way for the server, the command-line tools and every test
// harness: the code under test is wired as production is.
package backend

import (
	"fmt"
	"log/slog"

	"loginsvc/internal/activity"
	"loginsvc/internal/auth"
	"loginsvc/internal/session"
	"loginsvc/internal/store"
)

// Config is everything the services need to be built.
type Config struct {
	// RedisURL is REDIS_URL (see store.ParseURL).
	RedisURL string
	// Timeouts bound every Redis call; zero fields take store's defaults.
	Timeouts store.Timeouts
	// Sessions configures the session manager.
	Sessions session.Config
	// Auth configures logins, users and second factors.
	Auth auth.Config
	// Activity configures the security events (its Describe is the
	// session manager's).
	Activity activity.Config
	// Log receives the services' log lines; nil discards them.
	Log *slog.Logger
}

// Backend is the service's Redis and everything built on it.
type Backend struct {
	// Redis is the connection and its stores.
	Redis *store.Redis
	// Sessions starts, loads and ends sessions.
	Sessions *session.Manager
	// Auth decides logins and manages users and their factors.
	Auth *auth.Service
	// Activity records security events. Its writer runs once Start is
	// called (the server); without it (the CLI) events are written as
	// they happen.
	Activity *activity.Log
}

// Open checks cfg.RedisURL and builds the stores and services on it. It
// does not connect: use Redis.WaitReady or Redis.Ping.
func Open(cfg Config) (*Backend, error) {
	rdb, err := store.Open(cfg.RedisURL, cfg.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	b, err := New(rdb, cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return b, nil
}

// New builds the services on rdb, already open (cfg.RedisURL and
// cfg.Timeouts are not read): for the tests that share one connection
// among several wirings. Closing the Backend closes rdb.
func New(rdb *store.Redis, cfg Config) (*Backend, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sessions *session.Manager
	acfg := cfg.Activity
	acfg.Describe = func(ua string) string { return sessions.DescribeUserAgent(ua) }
	events := activity.New(rdb.Events, acfg, log)
	scfg := cfg.Sessions
	scfg.Activity = events
	sessions = session.New(rdb.Sessions, scfg, log)
	acfgAuth := cfg.Auth
	acfgAuth.Activity = events
	authSvc, err := auth.NewService(rdb, sessions, acfgAuth)
	if err != nil {
		return nil, err
	}
	return &Backend{Redis: rdb, Sessions: sessions, Auth: authSvc, Activity: events}, nil
}

// Close writes the security events still queued and closes the Redis
// connections.
func (b *Backend) Close() error {
	b.Activity.Close()
	return b.Redis.Close()
}
