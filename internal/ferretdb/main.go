// Command strata-ferretdb runs FerretDB v1 embedded, with its SQLite
// backend, on a loopback address: the MongoDB wire-protocol server the
// source/mongodb tests run against (internal/mongotest starts it).
//
// It is a module of its own so that FerretDB's dependencies never enter
// Strata's go.mod; scripts/ferretdb.sh builds it once into the cache.
// FerretDB built as a main module with go install panics on a missing
// version file; embedded through its ferretdb package it runs.
//
// Usage: strata-ferretdb -listen 127.0.0.1:PORT -dir DATA_DIR
//
// It prints "ready mongodb://127.0.0.1:PORT/" on stdout once it accepts
// connections and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "loopback `address` to listen on")
	dir := flag.String("dir", "", "SQLite data `directory` (created if missing)")
	verbose := flag.Bool("v", false, "log FerretDB's messages at debug level")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "strata-ferretdb: -dir is required")
		os.Exit(2)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "strata-ferretdb: -listen %q: want a loopback HOST:PORT (this is a test server)\n", *listen)
		os.Exit(2)
	}
	abs, err := filepath.Abs(*dir)
	if err == nil {
		err = os.MkdirAll(abs, 0o700)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-ferretdb: %v\n", err)
		os.Exit(1)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-ferretdb: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	// Say ready only once the port accepts connections.
	for {
		c, err := net.DialTimeout("tcp", *listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			fmt.Fprintf(os.Stderr, "strata-ferretdb: stopped before accepting connections on %s\n", *listen)
			os.Exit(1)
		case <-time.After(20 * time.Millisecond):
		}
	}
	fmt.Printf("ready mongodb://%s/\n", *listen)
	<-done
}
