package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/openai"
)

// upstreamConfig is the validated configuration of the models that
// OpenAI-compatible upstreams serve: from the config file (--config) or, in
// the simple case, from the environment (--upstream-url). The zero value
// has none, and Sluice offers the demo model alone.
type upstreamConfig struct {
	upstreams []upstreamSpec // each after its fallback, the order they are built in
	models    []modelSpec
}

type upstreamSpec struct {
	opts     openai.UpstreamOptions // but Fallback, which build links by name
	fallback string
}

type modelSpec struct {
	name           string // what clients ask for
	upstream       string
	model          string // the name upstream
	description    string
	fallbackModels map[string]string
}

// loadUpstreams returns the upstream configuration that c's flags ask for.
// Keys come from the environment, read once, here.
func loadUpstreams(c Config, getenv func(string) string) (upstreamConfig, error) {
	switch {
	case c.ConfigFile != "" && c.UpstreamURL != "":
		return upstreamConfig{}, errors.New("--config (SLUICE_CONFIG) and --upstream-url (SLUICE_UPSTREAM_URL) exclude each other: describe the upstream in the config file")
	case c.ConfigFile != "":
		return loadConfigFile(c.ConfigFile, getenv)
	case c.UpstreamURL != "":
		return envUpstream(c.UpstreamURL, c.UpstreamModels, strings.TrimSpace(getenv("OPENAI_API_KEY")))
	case c.UpstreamModels != "":
		return upstreamConfig{}, errors.New("--upstream-models (SLUICE_UPSTREAM_MODELS): needs --upstream-url (SLUICE_UPSTREAM_URL)")
	}
	return upstreamConfig{}, nil
}

// envUpstream is the simple case: one upstream at rawURL, named after its
// host, with OPENAI_API_KEY as its key when set, offering the models of
// list: comma-separated, each "name" or "name=name-upstream".
//
// The models are listed rather than discovered from the upstream's
// GET /models, so that Sluice starts, and offers the same models, whether or
// not the upstream is up, and so that OpenAI's dozens of non-chat models
// are not offered.
func envUpstream(rawURL, list, key string) (upstreamConfig, error) {
	if msg := checkBaseURL(rawURL); msg != "" {
		return upstreamConfig{}, fmt.Errorf("--upstream-url (SLUICE_UPSTREAM_URL): %s", msg)
	}
	u, _ := url.Parse(rawURL) // checked above
	const flag = "--upstream-models (SLUICE_UPSTREAM_MODELS)"
	var models []modelSpec
	seen := map[string]bool{}
	for item := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		name, upstreamName, _ := strings.Cut(item, "=")
		name, upstreamName = strings.TrimSpace(name), strings.TrimSpace(upstreamName)
		if upstreamName == "" {
			upstreamName = name
		}
		switch {
		case name == "":
			return upstreamConfig{}, fmt.Errorf("%s: %q has no name before its '='", flag, item)
		case name == "demo":
			return upstreamConfig{}, fmt.Errorf("%s: the name demo belongs to the built-in demo model: offer it under another name, like upstream-demo=demo", flag)
		case seen[name]:
			return upstreamConfig{}, fmt.Errorf("%s: %q is listed twice", flag, name)
		}
		seen[name] = true
		models = append(models, modelSpec{name: name, upstream: u.Host, model: upstreamName})
	}
	if len(models) == 0 {
		return upstreamConfig{}, fmt.Errorf("%s: required with --upstream-url: name the models to offer, comma-separated, e.g. llama3.2,qwen3:8b", flag)
	}
	return upstreamConfig{
		upstreams: []upstreamSpec{{opts: openai.UpstreamOptions{Name: u.Host, BaseURL: rawURL, APIKey: key}}},
		models:    models,
	}, nil
}

// names returns the names of the models configured.
func (uc upstreamConfig) names() []string {
	out := make([]string, len(uc.models))
	for i, m := range uc.models {
		out[i] = m.name
	}
	return out
}

// addTo builds the upstreams and adds their models to table, next to the
// demo model; obs (nil: none) is told what they do with their upstreams.
// The function it returns closes the upstreams' idle connections.
func (uc upstreamConfig) addTo(table *admit.Models, log *slog.Logger, obs openai.Observer) (closeAll func(), err error) {
	built := make(map[string]*openai.Upstream, len(uc.upstreams))
	var all []*openai.Upstream
	closeAll = func() {
		for _, u := range all {
			u.Close()
		}
	}
	for _, s := range uc.upstreams {
		o := s.opts
		o.Fallback = built[s.fallback]
		u, err := openai.NewUpstream(o)
		if err != nil { // validated before: a bug
			closeAll()
			return nil, err
		}
		built[o.Name] = u
		all = append(all, u)
	}
	for _, m := range uc.models {
		table.Add(sluice.ModelInfo{ID: m.name, OwnedBy: m.upstream, Description: m.description},
			openai.New(openai.Options{Upstream: built[m.upstream], Model: m.model, FallbackModels: m.fallbackModels,
				Logger: log.With("model", m.name), Observer: obs}))
		log.Info("model", "name", m.name, "upstream", m.upstream, "upstream_model", m.model)
	}
	return closeAll, nil
}
