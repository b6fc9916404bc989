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

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/bench"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/prom"
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
	var certs *certFiles
	if cfg.TLSCert != "" {
		var err error
		if certs, err = loadCertFiles(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
	}
	// Every part reports to one set of metrics, which the packages know
	// only as their own small observer interfaces (see prom).
	ver, rev := buildVersion()
	metrics := prom.New(prom.Options{Version: ver, Commit: rev, Models: append([]string{"demo"}, cfg.Upstreams.names()...)})

	back, err := openStore(ctx, cfg, metrics)
	if err != nil {
		return err
	}
	defer back.close() // last: every reader and generation has ended by then
	store := back.store
	runner := gen.NewRunner(gen.Options{Store: store, Peers: back.peers, MaxConcurrent: cfg.MaxGenerations, Logger: log, Observer: metrics})

	var models admit.Models
	dm := demo.New(demo.Options{TimeToFirstToken: cfg.DemoTTFT, TokensPerSecond: cfg.DemoTPS})
	models.Add(dm.Info(), dm)
	closeUpstreams, err := cfg.Upstreams.addTo(&models, log, metrics)
	if err != nil {
		return err
	}
	defer closeUpstreams()

	accessLevel, noAccessLog, _ := cfg.accessLogLevel() // validated
	apiCfg := api.Config{
		Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout,
		MaxBodyBytes: cfg.MaxBodyBytes, AccessLogLevel: accessLevel, NoAccessLog: noAccessLog,
		Observers: api.Observers{Hub: metrics.Streams(prom.TransportSSE), Fallback: metrics.Streams(prom.TransportSSEFallback),
			Requests: metrics},
		// Other nodes serve the readers of this one's generations from
		// Redis: at shutdown they are handed over at once.
		DrainReaders: cfg.RedisURL != "",
	}
	admitCfg := admit.Config{TopicMaxLen: cfg.TopicMaxLen, Counter: back.counter, Observer: metrics}
	cfg.Guard.apply(&admitCfg, &apiCfg)

	// Conversations: opened (and migrated) now, so that a database that
	// cannot be reached is an error at start. The store is closed after
	// the recorders have written their last batch (deferred calls run in
	// reverse), and before the log store they read.
	convStore, err := openConversations(ctx, cfg.Conv, log)
	if err != nil {
		return err
	}
	var conv *convo.Service
	if convStore != nil {
		defer convStore.Close()
		conv = convo.New(convo.Options{Store: convStore, Logs: store, Logger: log, Stale: cfg.Conv.Stale, Observer: metrics.Conversations()})
		defer shutdownConversations(conv, log)
		admitCfg.Conversations = conv // every transport's chats
		apiCfg.Conversations = conv   // the /v1/conversations routes
	}
	// One gate admits the requests of both transports: keys, limits, models
	// and topic rules are the same over SSE and /ws, and counted once.
	gate := admit.New(admitCfg, store, &models)
	srv := api.New(apiCfg, store, runner, gate, log)
	// A store that can be asked whether it answers (Redis) is asked by
	// /readyz, so that a node that lost it takes no new work.
	if p, ok := store.(interface{ Ping(context.Context) error }); ok {
		srv.CheckReady(p.Ping)
	}
	// WebSocket beside SSE, over the same logs; it drains when ctx ends.
	wsh := ws.NewHandler(ws.Options{Gate: gate, Runner: runner,
		Heartbeat: cfg.Heartbeat, WriteTimeout: cfg.WriteTimeout, MaxMessageBytes: cfg.MaxBodyBytes + 64<<10, Stop: ctx, Logger: log,
		Observer: metrics.Streams(prom.TransportWS)})
	srv.Handle("GET /ws", wsh) // it admits its connections and messages with the gate
	srv.CountWebSockets(func() int64 { return wsh.Stats().Connections })
	metrics.WatchWebSockets(func() int64 { return wsh.Stats().Connections })

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
	// Metrics on a listener of their own need no key: that listener is the
	// operator's to keep private. On the API's, they are an API route.
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler())
		stopMetrics, err := serveAside("metrics", cfg.MetricsAddr, "/metrics", mux, log)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer stopMetrics()
	} else {
		srv.HandleAPI("GET /metrics", metrics.Handler())
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	// ReadTimeout bounds reading a request, headers and body: net/http lifts
	// it once the body has been read (and on hijacking), so it never cuts a
	// response (TestResponsesOutliveTheReadTimeout holds each kind open past
	// it).
	hs := &http.Server{
		Handler:           srv,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	served := make(chan error, 1)
	if certs != nil {
		// HTTPS with HTTP/2 (which ServeTLS sets up) and HTTP/1.1. HTTP/2
		// streams cannot be taken over by the hub: they are served in their
		// handlers (api's fallback), with the same heartbeats and cuts.
		scheme = "https"
		hs.TLSConfig = certs.tlsConfig()
		go func() { served <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- hs.Serve(ln) }()
	}
	log.Info("sluice listening", "url", scheme+"://"+ln.Addr().String(), "models", len(models.List()))
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		wsh.Wait() // nothing more comes in; let what was served end
		return err
	case <-ctx.Done():
	}
	return shutdown(cfg, log, runner, srv, wsh, hs, served)
}

// The fixed bound that shutdown may take past the grace period: for
// readers to be written their last events, then for the connections still
// open to be closed.
const (
	endBound   = 2 * time.Second
	closeBound = time.Second
)

// shutdown ends a server whose context is done, in at most the grace
// period plus endBound plus closeBound, whatever its clients do: new work
// is refused at once (503 with Retry-After; the listener closes), topic
// readers are told to reconnect, generations run until the grace period is
// over and are then ended with an error event, their readers get their last
// events, and every connection still open is then closed.
func shutdown(cfg Config, log *slog.Logger, runner *gen.Runner, srv *api.Server, wsh *ws.Handler, hs *http.Server, served <-chan error) error {
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	log.Info("shutting down", "grace", cfg.ShutdownGrace, "generations", runner.Running())
	runner.Close()
	srv.Drain()
	shut := make(chan error, 1)
	// Shutdown closes the listener at once and waits for every handler; the
	// streams end as their generations end, which Runner.Shutdown bounds.
	go func() { shut <- hs.Shutdown(context.Background()) }()
	if err := runner.Shutdown(graceCtx); err != nil {
		log.Warn("grace period over: stopped the generations still running")
	}
	// Every generation has ended, so its readers are writing their last
	// events; give them a moment, then close what is left.
	endCtx, cancelEnd := context.WithTimeout(context.Background(), endBound)
	defer cancelEnd()
	wsDone := make(chan error, 1)
	go func() { wsDone <- wsh.Shutdown(endCtx) }()
	if err := srv.Shutdown(endCtx); err != nil {
		log.Warn("closed streams that outlived the shutdown")
	}
	if err := <-wsDone; err != nil {
		log.Warn("closed WebSocket connections that outlived the shutdown")
	}
	// What is left are idle connections, short requests and streams served
	// in handlers (HTTP/2) whose client reads nothing; a connection that has
	// just been opened would keep Shutdown waiting for seconds.
	var err error
	select {
	case err = <-shut:
	case <-time.After(closeBound):
		err = hs.Close()
		<-shut
	}
	if errors.Is(<-served, http.ErrServerClosed) && err == nil {
		log.Info("stopped")
	}
	return err
}

// convShutdownBound bounds how long shutdown waits for the recorders of
// answers to store their end, a database that fails included: past it,
// what they have is stored as interrupted.
const convShutdownBound = 5 * time.Second

// shutdownConversations waits for the recorders to write their last batch,
// once the generations have ended.
func shutdownConversations(conv *convo.Service, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), convShutdownBound)
	defer cancel()
	if err := conv.Shutdown(ctx); err != nil {
		log.Warn("stopped recording answers that had not ended", "err", err)
	}
}
