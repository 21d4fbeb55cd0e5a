// Command app is Potluck's sample web application: what `make demo`
// deploys and what the benchmarks measure. GET / names the instance that
// served it; POST / stores a form or JSON body and answers with what it
// stored; /healthz answers when the app is ready.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	listen := fs.String("listen", envOr("APP_LISTEN", ":8080"), "address to serve on (env APP_LISTEN)")
	name := fs.String("instance", envOr("POTLUCK_INSTANCE", hostname()), "instance name shown in replies (env POTLUCK_INSTANCE)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newApp(*name, 1000),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving", "addr", *listen, "instance", *name)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
