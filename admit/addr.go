package admit

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a list of the proxies whose X-Forwarded-For is
// believed: CIDRs (10.0.0.0/8, fd00::/8) or single addresses, as given to
// --trusted-proxies.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR such as 10.0.0.0/8 nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// clientAddr returns the address of the client that sent a request: the
// socket's peer, unless that peer is a trusted proxy. Then it is the
// nearest address in X-Forwarded-For that is not a trusted proxy: each
// proxy appends the address it got the request from, so the entries on the
// right were written by proxies we trust, and anything left of the first
// untrusted one may have been made up by the client itself. An entry that
// is not an address ends the walk at the last hop known. From a peer that
// is not trusted, X-Forwarded-For is ignored: anyone can send it.
func clientAddr(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(trusted) == 0 || !isTrusted(peer, trusted) {
		return host
	}
	last := peer
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		entries := strings.Split(forwardedFor[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := parseHop(entries[j])
			if !ok {
				return last.String()
			}
			if !isTrusted(a, trusted) {
				return a.String()
			}
			last = a
		}
	}
	return last.String() // every hop is a trusted proxy: the farthest one
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port (some proxies add one), IPv6 possibly in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
