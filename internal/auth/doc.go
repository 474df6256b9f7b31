// Package auth holds the login rules: who the users are, how passwords are
// hashed and checked, what a valid username is, and when a login attempt is
// refused. It keeps its state in Redis through package store and renders
// nothing.
package auth
