// Command potluck-front is Potluck's public entry point. This build runs it
// standalone: `potluck-front --config FILE` serves the routes of a YAML file
// with the lb data plane, as a drop-in replacement for an NGINX load balancer
// (see docs/front.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"potluck/front/standalone"
)

// flags are potluck-front's settings; each has a POTLUCK_* environment twin.
type flags struct {
	config          string
	check           bool
	watchInterval   time.Duration
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	pprof           bool
}

func parseFlags(args []string, getenv func(string) string, out io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("potluck-front", flag.ContinueOnError)
	fs.SetOutput(out)
	envStr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var errs []error
	envDur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration", name, v))
			return def
		}
		return d
	}
	envBool := func(name string) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not true or false", name, v))
		}
		return b
	}
	fs.StringVar(&f.config, "config", envStr("POTLUCK_CONFIG", ""), "YAML config file: listeners, routes, health, timeouts, admin address (env POTLUCK_CONFIG; see docs/front.md)")
	fs.BoolVar(&f.check, "check", envBool("POTLUCK_CHECK"), "validate the config file, print the result and exit (env POTLUCK_CHECK)")
	fs.DurationVar(&f.watchInterval, "watch-interval", envDur("POTLUCK_WATCH_INTERVAL", 2*time.Second), "how often to check the config file for changes; 0 = reload on SIGHUP only (env POTLUCK_WATCH_INTERVAL)")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", envDur("POTLUCK_SHUTDOWN_TIMEOUT", 30*time.Second), "on SIGTERM/SIGINT, how long to drain in-flight requests and WebSockets (env POTLUCK_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&f.logLevel, "log-level", envStr("POTLUCK_LOG_LEVEL", "info"), "debug, info, warn or error (env POTLUCK_LOG_LEVEL)")
	fs.StringVar(&f.logFormat, "log-format", envStr("POTLUCK_LOG_FORMAT", "text"), "text or json (env POTLUCK_LOG_FORMAT)")
	fs.BoolVar(&f.pprof, "pprof", envBool("POTLUCK_PPROF"), "serve /debug/pprof/ on the admin listener (env POTLUCK_PPROF)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: potluck-front --config FILE [flags]\n\n"+
			"Runs the Front data plane standalone from a YAML file (docs/front.md): Host routing,\n"+
			"NGINX-style round robin with max_fails/fail_timeout, hot reload on SIGHUP or file change,\n"+
			"/metrics and /status on the admin listener, graceful shutdown on SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if f.config == "" {
		errs = append(errs, errors.New("--config (or POTLUCK_CONFIG) is required"))
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format: %q is not text or json", f.logFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.logLevel))
	}
	return f, errors.Join(errs...)
}

func (f *flags) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(f.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if f.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "potluck-front: %v\n", err)
		return 2
	}
	if f.check {
		cfg, _, err := standalone.Load(f.config)
		if err != nil {
			fmt.Fprintf(stderr, "potluck-front: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK (%d listeners, %d routes)\n", f.config, len(cfg.Listen), len(cfg.Routes))
		return 0
	}
	log := f.logger(stderr)
	s, err := standalone.Start(standalone.RunOptions{
		ConfigPath:      f.config,
		Logger:          log,
		WatchInterval:   f.watchInterval,
		ShutdownTimeout: f.shutdownTimeout,
		Pprof:           f.pprof,
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
