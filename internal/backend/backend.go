// Package backend opens Redis and builds every store and service on it,
// once, the same way for the server, the command-line tools and every test
// harness: the code under test is wired as production is.
package backend

import (
	"fmt"
	"log/slog"

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
}

// Open checks cfg.RedisURL and builds the stores and services on it. It
// does not connect: use Redis.WaitReady or Redis.Ping.
func Open(cfg Config) (*Backend, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rdb, err := store.Open(cfg.RedisURL, cfg.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	sessions := session.New(rdb.Sessions, cfg.Sessions, log)
	authSvc, err := auth.NewService(rdb, sessions, cfg.Auth)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &Backend{Redis: rdb, Sessions: sessions, Auth: authSvc}, nil
}

// Close closes the Redis connections.
func (b *Backend) Close() error { return b.Redis.Close() }
