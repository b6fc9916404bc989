package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchRefusesBadFlagsBeforeLoadingAnything(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://10.1.2.3:8080"}, "--url"},
		{[]string{"--url", "http://example.com:80"}, "loopback"},
		{[]string{"--transports", "sse,smoke"}, "--transports"},
		{[]string{"--scenarios", "everything"}, "--scenarios"},
		{[]string{"--idle", "10,-5"}, "--idle"},
		{[]string{"--conns-per-worker", "30000"}, "--conns-per-worker"},
		{[]string{"--duration", "0s"}, "--duration"},
	} {
		err := run(context.Background(), append([]string{"bench"}, tc.args...), io.Discard, io.Discard, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestBenchFromRendersASavedResult(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.json")
	saved := `{"demo_tps":50,"capacity":[{"server":"sluice","transport":"sse","bound_ms":50,"tps":50,"points":[` +
		`{"gens":10,"tokens_per_second":500,"itl":{"n":100,"p99_ms":30}},{"gens":20,"tokens_per_second":600,"itl":{"n":100,"p99_ms":30}}]}]}`
	if err := os.WriteFile(in, []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	md, png := filepath.Join(dir, "r.md"), filepath.Join(dir, "r.png")
	var out strings.Builder
	if err := run(context.Background(), []string{"bench", "--from", in, "--markdown", md, "--chart", png}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	// 20 generations delivered 600 of the 1,000 tokens due: not within the pace.
	if !strings.Contains(string(b), "at most **10** generations") || !strings.Contains(out.String(), "at most 10 generations") {
		t.Fatalf("markdown:\n%s\ntable:\n%s", b, out.String())
	}
	if _, err := os.Stat(png); err != nil {
		t.Fatal(err)
	}
}
