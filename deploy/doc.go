// Package deploy holds the deployment topology (compose, HAProxy) and the
// tests that prove it.
//
// The files it describes live next to it and at the repository root:
// ../Dockerfile, ../docker-compose.yml and haproxy.cfg. TestComposeStack
// runs the real stack with `docker compose up --build` on the machine's
// Docker Engine (stand-in images, see ../scripts/stand-in-images.sh). The
// native tests run what Docker cannot show quickly on plain processes: N
// built server binaries, a real redis-server and Debian's haproxy with
// haproxy.cfg, its server-template lines replaced by loopback addresses.
// docker-compose.yml is also parsed and checked with compose-go.
//
// Forward auth runs for real behind the three proxies docs/forward-auth.md
// documents, each with its snippet from this directory (the very text that
// page shows): Debian's nginx (nginx-forward-auth.conf and
// nginx-forward-auth-cookies.conf), Debian's Caddy (Caddyfile.forward-auth)
// and Traefik v3 (traefik-forward-auth.yml), which ../scripts/traefik-cli.sh
// builds from the Go module proxy (TRAEFIK_BIN).
//
// The Helm chart for Kubernetes lives in helm/loginsvc. No cluster runs
// here: the Helm tests lint and render it with the helm binary that
// ../scripts/helm-cli.sh builds (HELM_BIN), decode every object strictly
// into its API type, and check it against what the server's own source
// says (its environment variables, routes and forward-auth headers).
package deploy
