// Package store holds everything that touches Redis: the connection with
// deadlines on every call, the scs session store and its JSON codec, the
// user records, and the names of every key the service writes.
//
// Nothing here knows about HTTP.
package store
