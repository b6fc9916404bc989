package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
)

// guardConfig is who may use the server and how much: API keys, public
// topics, CORS origins and limits. Zero limits are no limits.
type guardConfig struct {
	KeysFile          string
	Keys              string // comma-separated keys, for the simple case
	PublicTopics      string
	CORSOrigins       string
	RateLimit         int
	GenerationsPerKey int
	MaxMessages       int
	MaxPromptBytes    int
	StreamsPerAddr    int
	MaxStreams        int
	TrustedProxies    string

	keys    *admit.Keys    // from KeysFile and Keys
	proxies []netip.Prefix // from TrustedProxies
}

func (g *guardConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&g.KeysFile, "api-keys-file", "", "file of API keys, one 'name: key' or 'name: sha256:<hex>' a line; with keys, the API needs 'Authorization: Bearer <key>'")
	fs.StringVar(&g.Keys, "api-keys", "", "API keys, comma-separated (prefer --api-keys-file)")
	fs.StringVar(&g.PublicTopics, "public-topics", "", "topics anyone may read without a key, comma-separated ('*': all)")
	fs.StringVar(&g.CORSOrigins, "cors-origins", "", "origins that may call the API from a browser, comma-separated ('*': any); none: same-origin only")
	fs.IntVar(&g.RateLimit, "rate-limit", 0, "API requests per minute per API key (or client address without keys), each /ws operation counting as one; 0: no limit")
	fs.IntVar(&g.GenerationsPerKey, "max-generations-per-key", 0, "generations one API key may run at once; 0: no limit")
	fs.IntVar(&g.MaxMessages, "max-messages", 1000, "messages in one chat request")
	fs.IntVar(&g.MaxPromptBytes, "max-prompt-bytes", 1<<20, "bytes of message content in one chat request")
	fs.IntVar(&g.StreamsPerAddr, "max-streams-per-addr", 0, "streams open at once from one client address; 0: no limit")
	fs.IntVar(&g.MaxStreams, "max-streams", 18000, "streams open at once on this node (keep it under the open-files limit); 0: no limit")
	fs.StringVar(&g.TrustedProxies, "trusted-proxies", "", "proxies (load balancers) whose X-Forwarded-For names the client, for the per-address limits: CIDRs or addresses, comma-separated, e.g. 10.0.0.0/8; from any other peer the header is ignored")
}

// load reads the keys and checks the limits; errors name the flag.
func (g *guardConfig) load() error {
	var errs []error
	for _, n := range []struct {
		name string
		v    int
	}{{"rate-limit", g.RateLimit}, {"max-generations-per-key", g.GenerationsPerKey}, {"max-messages", g.MaxMessages},
		{"max-prompt-bytes", g.MaxPromptBytes}, {"max-streams-per-addr", g.StreamsPerAddr}, {"max-streams", g.MaxStreams}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("--%s (%s): must not be negative", n.name, envName(n.name)))
		}
	}
	proxies, err := admit.ParseTrustedProxies(splitList(g.TrustedProxies))
	if err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies (%s): %w", envName("trusted-proxies"), err))
	}
	g.proxies = proxies
	var text strings.Builder
	if g.KeysFile != "" {
		b, err := os.ReadFile(g.KeysFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--api-keys-file (%s): %w", envName("api-keys-file"), err))
		}
		text.Write(b)
		text.WriteByte('\n')
	}
	for i, k := range splitList(g.Keys) {
		fmt.Fprintf(&text, "env-key-%d: %s\n", i+1, k)
	}
	if text.Len() > 0 && len(errs) == 0 {
		keys, err := admit.ParseKeys(text.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("--api-keys-file / --api-keys: %w", err))
		}
		g.keys = keys
	}
	return errors.Join(errs...)
}

// apply sets the admission policy and the api.Config fields that
// guardConfig decides.
func (g *guardConfig) apply(a *admit.Config, c *api.Config) {
	a.Keys = g.keys
	a.PublicTopics = splitList(g.PublicTopics)
	a.TrustedProxies = g.proxies
	c.CORSOrigins = splitList(g.CORSOrigins)
	a.Limits = admit.Limits{
		RequestsPerMinute: g.RateLimit, GenerationsPerKey: g.GenerationsPerKey, MaxMessages: g.MaxMessages, MaxPromptBytes: g.MaxPromptBytes,
		StreamsPerAddr: g.StreamsPerAddr, MaxStreams: g.MaxStreams,
	}
}
