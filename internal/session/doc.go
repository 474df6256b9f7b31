// Package session owns what a session is: the record a login leaves
// (user, login time and address, user agent, last seen, public id), its
// absolute lifetime and idle timeout, the cookie that names it, and the
// verbs that start, end, list and revoke sessions. It runs scs on a store
// of its own that keeps every session in its user's index in Redis through
// package store.
//
// Nothing else reads or writes session values: web, auth and the
// command-line tools call the verbs here.
package session
