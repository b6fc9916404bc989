package main

import (
	"context"
	"io"
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
