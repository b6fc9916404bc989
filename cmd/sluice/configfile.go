package main

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	// TOML rather than YAML: every string is quoted, so no value changes
	// type behind the operator's back (in YAML, an unquoted no is false and
	// 1.10 is 1.1), indentation means nothing, and a config of named tables
	// ([upstreams.openai], [models.llama]) reads flat. Of the TOML libraries,
	// BurntSushi/toml is the long-kept reference one, depends on nothing, and
	// reports the keys it did not decode, so that a typo is an error that
	// names the key rather than a setting silently ignored.
	"github.com/BurntSushi/toml"

	"github.com/sluice-dev/sluice/openai"
)

// fileConfig is the TOML file that --config names: named upstreams, and the
// models clients may ask for, each served by one of them. README's "Real
// models" section shows an example.
type fileConfig struct {
	Upstreams map[string]fileUpstream `toml:"upstreams"`
	Models    map[string]fileModel    `toml:"models"`
}

// fileUpstream is one [upstreams.NAME] table.
type fileUpstream struct {
	BaseURL           string            `toml:"base_url"`
	APIKeyEnv         string            `toml:"api_key_env"`  // the variable that holds the key
	APIKeyFile        string            `toml:"api_key_file"` // or the file; relative to the config file
	Headers           map[string]string `toml:"headers"`
	ConnectTimeout    duration          `toml:"connect_timeout"`
	FirstTokenTimeout duration          `toml:"first_token_timeout"`
	IdleTimeout       duration          `toml:"idle_timeout"`
	MaxAttempts       int               `toml:"max_attempts"`
	RetryBudget       duration          `toml:"retry_budget"`
	Fallback          string            `toml:"fallback"`
}

// fileModel is one [models.NAME] table; NAME is what clients ask for.
type fileModel struct {
	Upstream       string            `toml:"upstream"`
	Model          string            `toml:"model"` // the name upstream; NAME when empty
	Description    string            `toml:"description"`
	FallbackModels map[string]string `toml:"fallback_models"` // upstream name → the model's name there
}

// duration is a TOML string such as "30s". An integer is refused: the
// library would take it as nanoseconds, which no one means.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it with a unit, like \"30s\" or \"2m\"", b)
	}
	d.Duration = v
	return nil
}

// loadConfigFile reads and validates the config file at path. Every error
// names the file and the key at fault.
func loadConfigFile(path string, getenv func(string) string) (upstreamConfig, error) {
	var fc fileConfig
	md, err := toml.DecodeFile(path, &fc)
	if err != nil {
		return upstreamConfig{}, fmt.Errorf("--config (SLUICE_CONFIG) %s: %w", path, err)
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		if len(k) == 3 && k[0] == "upstreams" && k[2] == "api_key" {
			bad(k.String(), "keys do not belong in the config file: name the variable that holds it (api_key_env) or a file (api_key_file)")
			continue
		}
		bad(k.String(), "unknown key")
	}
	uc := fc.resolve(filepath.Dir(path), getenv, bad)
	switch len(errs) {
	case 0:
		return uc, nil
	case 1:
		return upstreamConfig{}, fmt.Errorf("--config (SLUICE_CONFIG) %s: %w", path, errs[0])
	}
	// One fault a line, so that a file with several shows them all at once.
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Error())
	}
	return upstreamConfig{}, fmt.Errorf("--config (SLUICE_CONFIG) %s: %d problems:%s", path, len(errs), b.String())
}

// resolve checks the file's tables and turns them into an upstreamConfig,
// reporting each fault through bad.
func (fc fileConfig) resolve(dir string, getenv func(string) string, bad func(key, format string, args ...any)) upstreamConfig {
	var uc upstreamConfig
	if len(fc.Models) == 0 {
		bad("models", "no model is defined: add a [models.NAME] table")
	}
	names := slices.Sorted(maps.Keys(fc.Upstreams))
	specs := make(map[string]upstreamSpec, len(names))
	for _, name := range names {
		u := fc.Upstreams[name]
		key := "upstreams." + tomlKey(name)
		o := openai.UpstreamOptions{
			Name: name, BaseURL: u.BaseURL, Headers: u.Headers, MaxAttempts: u.MaxAttempts,
			ConnectTimeout: u.ConnectTimeout.Duration, FirstTokenTimeout: u.FirstTokenTimeout.Duration,
			IdleTimeout: u.IdleTimeout.Duration, RetryBudget: u.RetryBudget.Duration,
		}
		if msg := checkBaseURL(u.BaseURL); msg != "" {
			bad(key+".base_url", "%s", msg)
		}
		o.APIKey = apiKey(key, u, dir, getenv, bad)
		for h, v := range u.Headers {
			if msg := checkHeader(h, v); msg != "" {
				bad(key+".headers."+tomlKey(h), "%s", msg)
			}
		}
		for field, d := range map[string]time.Duration{"connect_timeout": o.ConnectTimeout,
			"first_token_timeout": o.FirstTokenTimeout, "idle_timeout": o.IdleTimeout, "retry_budget": o.RetryBudget} {
			if d < 0 {
				bad(key+"."+field, "must be positive, got %v", d)
			}
		}
		if u.MaxAttempts < 0 || u.MaxAttempts > 20 {
			bad(key+".max_attempts", "must be from 1 to 20, got %d", u.MaxAttempts)
		}
		if _, ok := fc.Upstreams[u.Fallback]; u.Fallback != "" && !ok {
			bad(key+".fallback", "no upstream is called %q", u.Fallback)
		}
		specs[name] = upstreamSpec{opts: o, fallback: u.Fallback}
	}
	order, cycle := fallbackOrder(names, specs)
	if cycle != "" {
		bad("upstreams."+tomlKey(cycle)+".fallback", "the fallbacks go round in a circle")
	}
	for _, name := range order {
		uc.upstreams = append(uc.upstreams, specs[name])
	}
	for _, name := range slices.Sorted(maps.Keys(fc.Models)) {
		uc.models = append(uc.models, fc.Models[name].resolve(name, fc.Upstreams, bad))
	}
	return uc
}

// resolve checks one [models.NAME] table.
func (m fileModel) resolve(name string, ups map[string]fileUpstream, bad func(key, format string, args ...any)) modelSpec {
	key := "models." + tomlKey(name)
	if strings.TrimSpace(name) == "" {
		bad(key, "a model needs a name clients can ask for")
	}
	if name == "demo" {
		bad(key, "the name demo belongs to the built-in demo model; choose another")
	}
	if _, ok := ups[m.Upstream]; !ok {
		if m.Upstream == "" {
			bad(key+".upstream", "missing: name the [upstreams.NAME] table that serves it")
		} else {
			bad(key+".upstream", "no upstream is called %q", m.Upstream)
		}
	}
	chain := map[string]bool{}
	for u := m.Upstream; u != "" && !chain[u]; u = ups[u].Fallback {
		chain[u] = true
	}
	for u := range m.FallbackModels {
		if !chain[u] || u == m.Upstream {
			bad(key+".fallback_models."+tomlKey(u), "%q is not a fallback of the upstream %q", u, m.Upstream)
		}
	}
	upstreamModel := m.Model
	if upstreamModel == "" {
		upstreamModel = name
	}
	return modelSpec{name: name, upstream: m.Upstream, model: upstreamModel, description: m.Description, fallbackModels: m.FallbackModels}
}

// apiKey reads an upstream's key from its variable or file. No key at all
// is fine: local servers want none.
func apiKey(key string, u fileUpstream, dir string, getenv func(string) string, bad func(key, format string, args ...any)) string {
	switch {
	case u.APIKeyEnv != "" && u.APIKeyFile != "":
		bad(key, "set api_key_env or api_key_file, not both")
	case u.APIKeyEnv != "":
		v := strings.TrimSpace(getenv(u.APIKeyEnv))
		if v == "" {
			bad(key+".api_key_env", "the variable %s is not set", u.APIKeyEnv)
		}
		return v
	case u.APIKeyFile != "":
		path := u.APIKeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path)
		v := strings.TrimSpace(string(b))
		if err != nil {
			bad(key+".api_key_file", "%v", err)
		} else if v == "" {
			bad(key+".api_key_file", "%s is empty", path)
		}
		return v
	}
	return ""
}

// fallbackOrder lists the upstreams so that each comes after its fallback,
// for they are built in that order. It names an upstream on a cycle, if any.
func fallbackOrder(names []string, specs map[string]upstreamSpec) (order []string, cycle string) {
	state := map[string]int{} // 1: being visited, 2: done
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			cycle = n
			return false
		case 2:
			return true
		}
		state[n] = 1
		if fb := specs[n].fallback; fb != "" {
			if _, ok := specs[fb]; ok && !visit(fb) {
				return false
			}
		}
		state[n] = 2
		order = append(order, n)
		return true
	}
	for _, n := range names {
		if !visit(n) {
			return nil, cycle
		}
	}
	return order, ""
}

// checkBaseURL returns what is wrong with an upstream's base URL, or "".
func checkBaseURL(s string) string {
	if s == "" {
		return "missing: the API root, such as https://api.openai.com/v1"
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("%q is not an http or https URL", s)
	}
	return ""
}

// checkHeader returns what is wrong with an extra header, or "".
func checkHeader(name, value string) string {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) {
		return fmt.Sprintf("%q is not a valid HTTP header name", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "the value has a line break or NUL"
	}
	return ""
}

// tomlKey quotes a key as TOML would need it in a dotted path.
func tomlKey(k string) string {
	if k != "" && !strings.ContainsFunc(k, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return k
	}
	return fmt.Sprintf("%q", k)
}
