// Package deploy holds the deployment topology (compose, nginx) and the tests
// that prove it on native processes.
//
// The files it describes live next to it and at the repository root:
// ../Dockerfile, ../docker-compose.yml and nginx.conf. No Docker engine is
// needed by its tests: docker-compose.yml is parsed and checked with
// compose-go, and nginx.conf is run by a native nginx after its upstream server
// list (the lines between the "# BEGIN upstream servers" and
// "# END upstream servers" markers) is replaced by loopback addresses.
package deploy
