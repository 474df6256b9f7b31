// Package testkit is the one set of helpers the tests of every package
// share: child processes under supervision (Process), the service's binary
// built once per test process (ServerBinary), a log sink safe for concurrent
// writers, an HTTP client that shows redirects instead of following them,
// the Redis key of a cookie's session, free loopback addresses and polling
// with a deadline. Only tests import it.
package testkit
