package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"loginsvc/internal/activity"
)

// clientIP is the address the request came from. X-Forwarded-For is read
// only when the direct peer is a trusted proxy, and then from the right:
// the first address that is not itself a trusted proxy is the client. A
// client cannot choose its logged or throttled address by sending the
// header itself.
func (a *App) clientIP(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !a.trusted(peer) {
		a.noteUntrustedForwarding(r, peer)
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop a trusted proxy would never write: stop here and
			// blame the nearest address we can vouch for.
			return peer
		}
		ip = ip.Unmap()
		if !a.trusted(ip) {
			return ip
		}
		peer = ip
	}
	return peer
}

// untrustedWarnEvery is how often at most a replica warns that a peer
// outside TRUSTED_PROXIES sent X-Forwarded-* headers: once is enough to
// be noticed, every request would drown the log.
const untrustedWarnEvery = time.Minute

// noteUntrustedForwarding warns, at most once per untrustedWarnEvery, when
// r from peer, which is not a trusted proxy, carries X-Forwarded-For,
// -Proto, -Host or -Uri. They are ignored, as they must be; but behind a
// proxy missing from TRUSTED_PROXIES that fails silently: every client has
// the proxy's address (one address's failures lock out every login) and
// forward auth cannot tell the app's URL. clientIP calls it, which the
// request log runs for every request.
func (a *App) noteUntrustedForwarding(r *http.Request, peer netip.Addr) {
	header := ""
	for _, h := range [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Uri"} {
		if _, ok := r.Header[h]; ok {
			header = h
			break
		}
	}
	if header == "" {
		return
	}
	now := time.Now().UnixNano()
	last := a.untrustedWarnedAt.Load()
	if last != 0 && now-last < int64(untrustedWarnEvery) || !a.untrustedWarnedAt.CompareAndSwap(last, now) {
		return // warned recently, or another request is warning now
	}
	a.log.Warn("X-Forwarded-* headers from a peer outside TRUSTED_PROXIES are ignored: if this service is behind a reverse proxy, set TRUSTED_PROXIES to its address, or every client counts as the proxy's address in the login throttle and forward auth cannot return to the app (warned at most once a minute)",
		"peer", peer.String(), "header", header)
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with
// a port as some proxies write it ("203.0.113.7:51234", "[2001:db8::1]:443").
func parseHop(s string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

func (a *App) trusted(ip netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseAddr reads host:port or a bare address; anything unreadable becomes
// the zero Addr (logged as "invalid IP").
func parseAddr(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// actorContext is r's context carrying who acts (the client's address
// and user agent), for the security events the request may cause.
func (a *App) actorContext(r *http.Request) context.Context {
	via := "web"
	if machinePath(r.URL.Path) {
		via = "api"
	}
	return activity.WithActor(r.Context(), activity.Actor{IP: a.clientIP(r), UserAgent: r.UserAgent(), Via: via})
}
