// Package web is the HTTP side of the service: routes, middleware, handlers
// and page rendering. It loads and saves sessions with scs through the
// store, asks package auth to decide logins, and never shows a browser a Go
// error.
package web
