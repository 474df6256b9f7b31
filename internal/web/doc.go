// Package web is the HTTP side of the service: routes, middleware, handlers
// and page rendering. It loads and saves sessions through package session,
// asks package auth to decide logins and password changes, and never shows
// a browser a Go error. Pages are in English and Simplified Chinese: every
// text comes from one catalog per language (templates/locales), chosen by
// the lang cookie or Accept-Language.
package web
