// Package store holds everything that touches Redis: the connection with
// deadlines on every call, the scs session store and its JSON codec, the
// user records, the names of every key the service writes, and the local
// session cache that Redis keeps honest (cache.go, cache_channel.go).
//
// Nothing here knows about HTTP.
package store
