package admit_test

import (
	"testing"

	"github.com/sluice-dev/sluice/admit"
)

// TestIdentifyTakesTheClientFromXForwardedForOfTrustedProxiesOnly: the
// header names the client only when the peer is a trusted proxy, and then
// only as far as the hops are trusted proxies too: what lies left of the
// first untrusted hop may be forged by the client.
func TestIdentifyTakesTheClientFromXForwardedForOfTrustedProxiesOnly(t *testing.T) {
	proxies, err := admit.ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	g := admit.New(admit.Config{TrustedProxies: proxies}, nil, nil)
	for _, c := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"an untrusted peer's header is ignored", "198.51.100.9:5000", []string{"203.0.113.5"}, "198.51.100.9"},
		{"a peer just outside a trusted CIDR", "11.0.0.1:5000", []string{"203.0.113.5"}, "11.0.0.1"},
		{"a trusted single address", "192.0.2.7:80", []string{"203.0.113.5"}, "203.0.113.5"},
		{"a trusted proxy's client", "10.1.2.3:5000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"a forged hop left of the client", "10.1.2.3:5000", []string{"1.2.3.4, 203.0.113.5"}, "203.0.113.5"},
		{"trusted hops are skipped", "10.1.2.3:5000", []string{"1.2.3.4, 203.0.113.5, 10.9.9.9"}, "203.0.113.5"},
		{"several headers are one list", "10.1.2.3:5000", []string{"1.2.3.4", "203.0.113.5", "10.9.9.9"}, "203.0.113.5"},
		{"every hop trusted: the farthest", "10.1.2.3:5000", []string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7"},
		{"garbage ends the walk at the last hop known", "10.1.2.3:5000", []string{"1.2.3.4, unknown, 10.9.9.9"}, "10.9.9.9"},
		{"a hop with a port", "10.1.2.3:5000", []string{"203.0.113.5:4711"}, "203.0.113.5"},
		{"IPv6 in brackets", "[fd00::1]:5000", []string{"[2001:db8::5]"}, "2001:db8::5"},
		{"IPv4 mapped in IPv6", "[::ffff:10.1.2.3]:5000", []string{"203.0.113.5"}, "203.0.113.5"},
	} {
		caller, err := g.Identify("", c.remote, c.xff)
		if err != nil {
			t.Fatal(err)
		}
		if caller.Addr != c.want {
			t.Errorf("%s: remote %s, X-Forwarded-For %q: address %q, want %q", c.name, c.remote, c.xff, caller.Addr, c.want)
		}
	}
	// Without trusted proxies, the header is never read.
	caller, _ := admit.New(admit.Config{}, nil, nil).Identify("", "10.1.2.3:5000", []string{"203.0.113.5"})
	if caller.Addr != "10.1.2.3" {
		t.Errorf("no trusted proxies: address %q", caller.Addr)
	}
}

func TestParseTrustedProxiesRefusesWhatIsNotAnAddress(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "localhost", "10.0.0", ""} {
		if _, err := admit.ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q was taken", bad)
		}
	}
}
