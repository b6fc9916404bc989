// Command sluice streams LLM chat answers to browsers and programs over
// Server-Sent Events. `sluice` (or `sluice serve`) runs the server with the
// built-in demo model; `sluice help` lists the subcommands. This file wires
// the packages together and owns every long-lived goroutine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/bench"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/web"
	"github.com/sluice-dev/sluice/ws"
)

const usage = `Sluice streams LLM chat answers over Server-Sent Events.

Usage:
  sluice [serve] [flags]   run the server (sluice serve -h lists the flags)
  sluice bench [flags]     measure a server on this machine (sluice bench -h)
  sluice help              show this help

Every flag can also be set by an environment variable: --demo-tps is SLUICE_DEMO_TPS.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "sluice:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

// run is main without the process: it returns when ctx is done and the
// server has shut down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "serve"
	if len(args) > 0 && !isFlag(args[0]) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig(args, getenv, stderr)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		return serve(ctx, cfg, cfg.logger(stderr), nil)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "bench-worker": // started by bench, JSON lines on stdin and stdout
		return bench.RunWorker(ctx, os.Stdin, stdout)
	case "bench-baseline": // the naive server bench compares against
		return runBenchBaseline(ctx, args, stderr)
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' && s != "-h" && s != "--help" }

// serve runs the server until ctx is done, then shuts it down gracefully:
// it stops accepting, lets generations run for the grace period, ends the
// rest with an error event, and returns once every stream has ended.
// ready, if set, is told the address the server listens on.
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	store := memory.New(memory.Options{Retention: cfg.Retention, RetainedBytes: int64(cfg.RetentionBytes), MaxLen: cfg.MaxLogLen,
		MaxTopics: cfg.MaxTopics, TopicMaxBytes: int64(cfg.TopicMaxBytes), TopicsMaxBytes: int64(cfg.TopicsMaxBytes)})
	defer store.Close()
	runner := gen.NewRunner(gen.Options{Store: store, MaxConcurrent: cfg.MaxGenerations, MaxPerOwner: cfg.Guard.GenerationsPerKey, Logger: log})

	var models api.Models
	dm := demo.New(demo.Options{TimeToFirstToken: cfg.DemoTTFT, TokensPerSecond: cfg.DemoTPS})
	models.Add(dm.Info(), dm)
	closeUpstreams, err := cfg.Upstreams.addTo(&models, log)
	if err != nil {
		return err
	}
	defer closeUpstreams()

	apiCfg := api.Config{
		Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
		MaxBodyBytes: cfg.MaxBodyBytes, TopicMaxLen: cfg.TopicMaxLen,
	}
	cfg.Guard.apply(&apiCfg)
	srv := api.New(apiCfg, store, runner, &models, log)
	// WebSocket beside SSE, over the same logs; it drains when ctx ends.
	wsh := ws.NewHandler(ws.Options{Store: store, Runner: runner, Models: &models, TopicMaxLen: cfg.TopicMaxLen,
		Heartbeat: cfg.Heartbeat, WriteTimeout: cfg.WriteTimeout, MaxMessageBytes: cfg.MaxBodyBytes + 64<<10, Stop: ctx, Logger: log})
	srv.HandleStream("GET /ws", wsh) // keys, rate and stream limits as for SSE
	defer wsh.Wait()                 // Shutdown does not wait for hijacked connections

	for _, p := range web.Patterns { // the browser UI: /, /live, /assets/
		srv.Handle(p, web.Handler())
	}

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		defer stopPprof()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("sluice listening", "url", "http://"+ln.Addr().String(), "models", len(models.List()))
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace, "generations", runner.Running())
	srv.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	shut := make(chan error, 1)
	// Shutdown closes the listener at once and waits for every handler; the
	// streams end as their generations end, which Runner.Shutdown bounds.
	go func() { shut <- hs.Shutdown(context.Background()) }()
	if err := runner.Shutdown(graceCtx); err != nil {
		log.Warn("grace period over: stopped the generations still running")
	}
	// Every generation has ended, so its readers are writing their last
	// events; give them a moment, then close what is left.
	endCtx, cancelEnd := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelEnd()
	if err := srv.Shutdown(endCtx); err != nil {
		log.Warn("closed streams that outlived the shutdown")
	}
	// What is left are idle connections and short requests; a connection
	// that has just been opened would keep Shutdown waiting for seconds.
	select {
	case err = <-shut:
	case <-time.After(time.Second):
		err = hs.Close()
		<-shut
	}
	if errors.Is(<-served, http.ErrServerClosed) && err == nil {
		log.Info("stopped")
	}
	return err
}
