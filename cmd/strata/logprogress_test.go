package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

// captureInto opens a log writer with ctx (as a capture does) and appends
// events 1..n, reading their bytes from in as it goes.
func captureInto(t *testing.T, ctx context.Context, in io.Reader, n int) {
	t.Helper()
	r, err := repo.Init(context.Background(), mem.New(), []byte("pw"), repo.InitOptions{KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.OpenLog(ctx, r, engine.LogOptions{Stream: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if in != nil {
			if _, err := io.ReadFull(in, make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Append(&repo.Event{Seq: uint64(i), Time: int64(i), Op: repo.OpPut, Key: []byte("k"), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// 'strata log' catch-up on a terminal shows events, their rate and the
// position, with a percentage when stdin is a file of known size; a
// --source capture's bar counts events; off a terminal or with --quiet
// nothing is drawn, and --verbose adds the rate at the end.
func TestProgressLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789"), 40), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errb bytes.Buffer
	env := &environment{stderr: &errb, stderrTTY: true, verbose: true}
	in := countInput(f)
	ctx, stop := startLogProgress(context.Background(), env, "s", in)
	captureInto(t, ctx, in, 20) // half the file
	time.Sleep(4 * progressEvery)
	stop()
	out := errb.String()
	for _, want := range []string{"log s (20 events, ", "events/s, position 20)", "50%", "B"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdin bar: no %q in %q", want, out)
		}
	}
	if !strings.Contains(out, "log s: took 20 events") {
		t.Errorf("--verbose: no rate line in %q", out)
	}

	errb.Reset()
	env = &environment{stderr: &errb, stderrTTY: true}
	ctx, stop = startLogProgress(context.Background(), env, "db", nil)
	captureInto(t, ctx, nil, 7)
	time.Sleep(4 * progressEvery)
	stop()
	if out := errb.String(); !strings.Contains(out, "log db (7 events, ") || !strings.Contains(out, "position 7)") || strings.Contains(out, "took") {
		t.Errorf("--source bar: %q", out)
	}
	// An unknown total's bar draws nothing after stop.
	n := errb.Len()
	time.Sleep(3 * progressEvery)
	if errb.Len() != n {
		t.Errorf("the bar drew after stop: %q", errb.String()[n:])
	}

	for _, env := range []*environment{{stderr: &errb}, {stderr: &errb, stderrTTY: true, quiet: true}} {
		errb.Reset()
		in := countInput(strings.NewReader(strings.Repeat("x", 100)))
		ctx, stop := startLogProgress(context.Background(), env, "s", in)
		captureInto(t, ctx, in, 5)
		time.Sleep(3 * progressEvery)
		stop()
		if errb.Len() != 0 {
			t.Errorf("log bar drawn off a terminal or with --quiet: %q", errb.String())
		}
	}
}
