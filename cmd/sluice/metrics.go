package main

import (
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// version and commit name the build in sluice_build_info; a release build
// sets them (go build -ldflags "-X main.version=v1.2.3 -X main.commit=…"),
// else they are read from what the Go toolchain stamped into the binary.
var version, commit string

// buildVersion returns the build's version and commit, "" where unknown.
func buildVersion() (string, string) {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	return v, c
}

// serveAside serves h on a loopback or internal listener of its own, apart
// from the API (the profiler, the metrics). stop closes it.
func serveAside(what, addr, path string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	log.Info(what+" listening", "url", "http://"+ln.Addr().String()+path)
	return func() {
		_ = hs.Close()
		<-done
	}, nil
}
