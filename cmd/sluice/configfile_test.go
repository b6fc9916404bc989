package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/openai"
)

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullConfig = `
[upstreams.openai]
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
connect_timeout = "5s"
first_token_timeout = "90s"
idle_timeout = "45s"
max_attempts = 4
retry_budget = "20s"
fallback = "openrouter"
headers = { "OpenAI-Organization" = "org-123" }

[upstreams.openrouter]
base_url = "https://openrouter.ai/api/v1"
api_key_file = "openrouter.key"

[upstreams.ollama]
base_url = "http://localhost:11434/v1"

[models.gpt-4o-mini]
upstream = "openai"
description = "OpenAI's small model"
fallback_models = { openrouter = "openai/gpt-4o-mini" }

[models.llama]
upstream = "ollama"
model = "llama3.2:3b"
`

func TestConfigFileDescribesUpstreamsAndModels(t *testing.T) {
	path := writeConfig(t, fullConfig)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "openrouter.key"), []byte("sk-or-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(nil, env("SLUICE_CONFIG", path, "OPENAI_API_KEY", "sk-1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := upstreamConfig{
		upstreams: []upstreamSpec{
			{opts: openai.UpstreamOptions{Name: "ollama", BaseURL: "http://localhost:11434/v1"}},
			{opts: openai.UpstreamOptions{Name: "openrouter", BaseURL: "https://openrouter.ai/api/v1", APIKey: "sk-or-1"}},
			{fallback: "openrouter", opts: openai.UpstreamOptions{Name: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "sk-1",
				Headers:        map[string]string{"OpenAI-Organization": "org-123"},
				ConnectTimeout: 5 * time.Second, FirstTokenTimeout: 90 * time.Second, IdleTimeout: 45 * time.Second,
				MaxAttempts: 4, RetryBudget: 20 * time.Second}},
		},
		models: []modelSpec{
			{name: "gpt-4o-mini", upstream: "openai", model: "gpt-4o-mini", description: "OpenAI's small model",
				fallbackModels: map[string]string{"openrouter": "openai/gpt-4o-mini"}},
			{name: "llama", upstream: "ollama", model: "llama3.2:3b"},
		},
	}
	if !reflect.DeepEqual(c.Upstreams, want) {
		t.Fatalf("got  %+v\nwant %+v", c.Upstreams, want)
	}
}

func TestConfigFileErrorsNameTheKey(t *testing.T) {
	const up = "[upstreams.u]\nbase_url = \"http://localhost:8000/v1\"\n"
	const model = "[models.m]\nupstream = \"u\"\n"
	tests := []struct {
		name, text string
		env        []string
		want       string
	}{
		{"syntax", "[upstreams.u\n", nil, "line 2"},
		{"unknown key", up + "base_ur = \"x\"\n" + model, nil, "upstreams.u.base_ur: unknown key"},
		{"inline key", up + "api_key = \"sk-x\"\n" + model, nil, "upstreams.u.api_key: keys do not belong in the config file"},
		{"no models", up, nil, "models: no model is defined"},
		{"no base_url", "[upstreams.u]\n" + model, nil, "upstreams.u.base_url: missing"},
		{"bad base_url", "[upstreams.u]\nbase_url = \"localhost:11434\"\n" + model, nil, `upstreams.u.base_url: "localhost:11434" is not an http or https URL`},
		{"duration without unit", up + "idle_timeout = 60\n" + model, nil, `upstreams.u.idle_timeout`},
		{"negative duration", up + "retry_budget = \"-1s\"\n" + model, nil, "upstreams.u.retry_budget: must be positive"},
		{"attempts", up + "max_attempts = 100\n" + model, nil, "upstreams.u.max_attempts: must be from 1 to 20"},
		{"unset key variable", up + "api_key_env = \"NOPE_KEY\"\n" + model, nil, "upstreams.u.api_key_env: the variable NOPE_KEY is not set"},
		{"missing key file", up + "api_key_file = \"nope.key\"\n" + model, nil, "upstreams.u.api_key_file:"},
		{"key twice", up + "api_key_env = \"K\"\napi_key_file = \"k\"\n" + model, []string{"K", "v"}, "upstreams.u: set api_key_env or api_key_file, not both"},
		{"bad header", up + "headers = { \"Bad Name\" = \"v\" }\n" + model, nil, `upstreams.u.headers."Bad Name"`},
		{"unknown fallback", up + "fallback = \"v\"\n" + model, nil, `upstreams.u.fallback: no upstream is called "v"`},
		{"fallback cycle", up + "fallback = \"v\"\n[upstreams.v]\nbase_url = \"http://x\"\nfallback = \"u\"\n" + model, nil, "the fallbacks go round in a circle"},
		{"model without upstream", up + "[models.m]\nmodel = \"x\"\n", nil, "models.m.upstream: missing"},
		{"unknown upstream", up + "[models.m]\nupstream = \"nope\"\n", nil, `models.m.upstream: no upstream is called "nope"`},
		{"demo", up + "[models.demo]\nupstream = \"u\"\n", nil, "models.demo: the name demo belongs to the built-in demo model"},
		{"fallback model of a stranger", up + model + "fallback_models = { u = \"x\" }\n", nil, `models.m.fallback_models.u: "u" is not a fallback`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			_, err := parseConfig([]string{"--config", path}, env(tt.env...), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--config (SLUICE_CONFIG) "+path) {
				t.Fatalf("err %v\nwant it to name the file and %q", err, tt.want)
			}
		})
	}
}

func TestConfigFileThatDoesNotExistIsAnError(t *testing.T) {
	_, err := parseConfig([]string{"--config", "/nonexistent/sluice.toml"}, env(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("err %v", err)
	}
}

func TestUpstreamFromTheEnvironment(t *testing.T) {
	c, err := parseConfig(nil, env("SLUICE_UPSTREAM_URL", "http://localhost:11434/v1",
		"SLUICE_UPSTREAM_MODELS", "llama3.2, qwen=qwen3:8b,", "OPENAI_API_KEY", "sk-2"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := upstreamConfig{
		upstreams: []upstreamSpec{{opts: openai.UpstreamOptions{Name: "localhost:11434", BaseURL: "http://localhost:11434/v1", APIKey: "sk-2"}}},
		models: []modelSpec{
			{name: "llama3.2", upstream: "localhost:11434", model: "llama3.2"},
			{name: "qwen", upstream: "localhost:11434", model: "qwen3:8b"},
		},
	}
	if !reflect.DeepEqual(c.Upstreams, want) {
		t.Fatalf("got  %+v\nwant %+v", c.Upstreams, want)
	}
}

func TestNoUpstreamMeansTheDemoAlone(t *testing.T) {
	// A key alone must not send anyone's prompts anywhere.
	c, err := parseConfig(nil, env("OPENAI_API_KEY", "sk-3"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Upstreams.models) != 0 || len(c.Upstreams.upstreams) != 0 {
		t.Fatalf("got upstreams %+v", c.Upstreams)
	}
}

func TestUpstreamEnvironmentErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"SLUICE_UPSTREAM_URL", "http://localhost:8000/v1"}, "--upstream-models (SLUICE_UPSTREAM_MODELS): required"},
		{[]string{"SLUICE_UPSTREAM_MODELS", "a"}, "--upstream-models (SLUICE_UPSTREAM_MODELS): needs --upstream-url"},
		{[]string{"SLUICE_UPSTREAM_URL", "localhost:8000", "SLUICE_UPSTREAM_MODELS", "a"}, "--upstream-url (SLUICE_UPSTREAM_URL)"},
		{[]string{"SLUICE_UPSTREAM_URL", "http://x/v1", "SLUICE_UPSTREAM_MODELS", "a,a"}, `"a" is listed twice`},
		{[]string{"SLUICE_UPSTREAM_URL", "http://x/v1", "SLUICE_UPSTREAM_MODELS", "demo"}, "belongs to the built-in demo model"},
		{[]string{"SLUICE_UPSTREAM_URL", "http://x/v1", "SLUICE_UPSTREAM_MODELS", "=x"}, "has no name"},
		{[]string{"SLUICE_UPSTREAM_URL", "http://x/v1", "SLUICE_UPSTREAM_MODELS", "a", "SLUICE_CONFIG", "x.toml"}, "exclude each other"},
	}
	for _, tt := range tests {
		_, err := parseConfig(nil, env(tt.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err %v, want it to say %q", tt.env, err, tt.want)
		}
	}
}

// The example in README must stay a valid config.
func TestReadmeConfigExampleIsValid(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## Real models")
	_, rest, ok2 := strings.Cut(rest, "```toml\n")
	example, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README has no TOML example under ## Real models")
	}
	path := writeConfig(t, example)
	dir := filepath.Join(filepath.Dir(path), "secrets")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openrouter.key"), []byte("sk-or"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig([]string{"--config", path}, env("OPENAI_API_KEY", "sk-1", "VLLM_API_KEY", "k"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Upstreams.upstreams) != 5 || len(c.Upstreams.models) != 4 {
		t.Fatalf("README example gives %+v", c.Upstreams)
	}
}
