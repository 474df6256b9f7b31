// Package docs holds the pages the README links to, and no code. Its test
// (commands_test.go) keeps them true: every ```sh and ```console block of
// the README and of these pages either runs there, against the built
// server, a real redis-server and the embedded Redis, or names the test
// that runs it; and every relative link between the pages, anchors
// included, leads somewhere.
package docs
