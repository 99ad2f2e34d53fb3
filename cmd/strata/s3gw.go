package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"github.com/strata-backup/strata/index"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-backup/strata/internal/atomicfile"
	"github.com/strata-backup/strata/s3gw"
)

func cmdS3Serve(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --listen ADDR --users FILE [--tls-cert F --tls-key F] [--region R] [--at TIME] [--base-every N] [--base-interval D]")
	location := repoFlag(fs, env)
	listen := fs.String("listen", "127.0.0.1:9000", "`address` to listen on")
	usersFile := fs.String("users", "", "users `file` (strata s3 user add) (required)")
	cert := fs.String("tls-cert", "", "TLS certificate `file` (PEM)")
	key := fs.String("tls-key", "", "TLS private key `file` (PEM)")
	region := fs.String("region", "us-east-1", "`region` clients sign for")
	at := fs.String("at", "", "serve every bucket read-only as it was at `TIME` (RFC 3339 or unix seconds)")
	var flagged s3gw.Options
	s3BaseFlags(fs, &flagged)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *usersFile == "" {
			return usagef("--users is required")
		}
		o := flagged
		if *at != "" {
			t, err := index.ParseTime(*at)
			if err != nil {
				return usagef("--at: %v", err)
			}
			o.At = t
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		users, err := s3gw.LoadUsers(*usersFile, r)
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewJSONHandler(env.stderr, nil))
		slog.SetDefault(logger) // the gateway logs internal errors through the default logger
		g, err := s3gw.Open(ctx, r, o)
		if err != nil {
			return err
		}
		defer g.Close()
		s3ReportUnavailable(env, g)
		srv, err := s3gw.NewServer(g, users, s3gw.ServerOptions{Listen: *listen, Region: *region, TLSCert: *cert, TLSKey: *key, Logger: logger})
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve() }()
		mode := "read-write"
		if g.ReadOnly() {
			mode = "read-only as of " + o.At.Format(time.RFC3339Nano)
		}
		logger.Info("s3 gateway listening", "addr", *listen, "buckets", len(g.Buckets()), "mode", mode, "tls", *cert != "")
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			logger.Info("s3 gateway shutting down")
			serr := srv.Shutdown()
			<-done
			return errors.Join(serr, g.Close())
		}
	}
}

// cmdS3User runs s3 user add, list or remove.
func cmdS3User(sub string) builder {
	return func(env *environment, c *cobra.Command) runFunc {
		usage := "--users FILE --name NAME [--json]"
		what := `print {"name"}: the user removed`
		switch sub {
		case "add":
			usage = "--repo URL --users FILE --name NAME [--buckets GLOB] [--read-only] [--json]"
			what = `print {"name","access_key","secret_key","buckets","read_only","created"}`
		case "list":
			usage = "--users FILE [--json]"
			what = `print a JSON array of {"name","access_key","buckets","read_only","created"}`
		}
		fs := flagsOf(c, usage)
		var location *string
		if sub == "add" {
			location = repoFlag(fs, env)
		}
		path := fs.String("users", "", "users `file` (required)")
		name := fs.String("name", "", "user `name`")
		buckets := fs.String("buckets", "*", "`glob` of the bucket names the user may use ('*' any run of characters)")
		readOnly := fs.Bool("read-only", false, "the user may only read")
		asJSON := jsonFlag(fs, what)
		return func(ctx context.Context, args []string) error {
			if len(args) != 0 {
				return usagef("unexpected arguments %q", args)
			}
			if *path == "" {
				return usagef("--users is required")
			}
			if sub != "list" && *name == "" {
				return usagef("--name is required")
			}
			switch sub {
			case "add":
				// The secret is sealed with a key derived from the repository's master key.
				r, err := openRepo(ctx, env, *location)
				if err != nil {
					return err
				}
				t, err := s3gw.LoadUsers(*path, r)
				if err != nil {
					return err
				}
				access, secret, err := t.Add(r, *name, *buckets, *readOnly)
				if err != nil {
					return err
				}
				if err := t.Save(*path); err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env, s3UserJSON{Name: *name, AccessKey: access, SecretKey: secret, Buckets: *buckets, ReadOnly: *readOnly, Created: time.Now().UTC()})
				}
				fmt.Fprintln(env.stdout, access)
				fmt.Fprintln(env.stdout, secret)
				return nil
			case "list":
				t, err := s3gw.LoadUsers(*path, nil)
				if err != nil {
					return err
				}
				if *asJSON {
					list := []s3UserJSON{}
					for _, u := range t.List() {
						list = append(list, s3UserJSON{Name: u.Name, AccessKey: u.AccessKey, Buckets: u.Buckets, ReadOnly: u.ReadOnly, Created: u.Created})
					}
					return writeJSON(env, list)
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tACCESS KEY\tBUCKETS\tACCESS\tCREATED")
				for _, u := range t.List() {
					mode := "read-write"
					if u.ReadOnly {
						mode = "read-only"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.AccessKey, u.Buckets, mode, u.Created.Format(time.RFC3339))
				}
				return tw.Flush()
			default:
				t, err := s3gw.LoadUsers(*path, nil)
				if err != nil {
					return err
				}
				if err := t.Remove(*name); err != nil {
					return err
				}
				if err := t.Save(*path); err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(env, s3UserJSON{Name: *name})
				}
				return nil
			}
		}
	}
}

func cmdS3Restore(env *environment, c *cobra.Command) runFunc {
	fs := flagsOf(c, "--repo URL --bucket B [--prefix P] --at TIME --to DIR [--json]")
	location := repoFlag(fs, env)
	bucket := fs.String("bucket", "", "`bucket` to restore (required)")
	prefix := fs.String("prefix", "", "restore only keys starting with `P`")
	at := fs.String("at", "", "the instant (RFC 3339 or unix seconds) whose view is written (required)")
	to := fs.String("to", "", "`directory` to write the objects under, one file per key (required)")
	asJSON := jsonFlag(fs, `print {"bucket","prefix","at","to","objects","bytes"}`)
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("unexpected arguments %q", args)
		}
		if *bucket == "" || *at == "" || *to == "" {
			return usagef("--bucket, --at and --to are required")
		}
		t, err := index.ParseTime(*at)
		if err != nil {
			return usagef("--at: %v", err)
		}
		r, err := openRepo(ctx, env, *location)
		if err != nil {
			return err
		}
		g, err := s3gw.Open(ctx, r, s3gw.Options{At: t})
		if err != nil {
			return err
		}
		if err := g.Unavailable()[*bucket]; err != nil {
			return fmt.Errorf("bucket %s at %s: %w", *bucket, t.Format(time.RFC3339Nano), err)
		}
		var n, bytes int64
		after := ""
		for {
			page, err := g.List(*bucket, s3gw.ListOptions{Prefix: *prefix, After: after})
			if err != nil {
				return fmt.Errorf("bucket %s at %s: %w", *bucket, t.Format(time.RFC3339Nano), err)
			}
			for _, o := range page.Objects {
				// A key is written below DIR only: "../x", "/x" and the like are refused.
				rel := filepath.FromSlash(o.Key)
				if strings.HasSuffix(o.Key, "/") && o.Record.Size == 0 {
					continue // a "directory" marker
				}
				if !filepath.IsLocal(rel) {
					return fmt.Errorf("key %q would be written outside %s; restore it with a prefix that excludes it", o.Key, *to)
				}
				dst := filepath.Join(*to, rel)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
					rc := g.Read(ctx, o.Record, 0, -1)
					defer rc.Close()
					_, err := io.Copy(w, rc)
					return err
				})
				if err != nil {
					return fmt.Errorf("restore %s: %w", o.Key, err)
				}
				n++
				bytes += o.Record.Size
			}
			if !page.Truncated {
				break
			}
			after = page.Next
		}
		if *asJSON {
			return writeJSON(env, struct {
				Bucket  string    `json:"bucket"`
				Prefix  string    `json:"prefix"`
				At      time.Time `json:"at"`
				To      string    `json:"to"`
				Objects int64     `json:"objects"`
				Bytes   int64     `json:"bytes"`
			}{*bucket, *prefix, t, *to, n, bytes})
		}
		fmt.Fprintf(env.stderr, "restored %d objects (%d bytes) of bucket %s as of %s to %s\n", n, bytes, *bucket, t.Format(time.RFC3339Nano), *to)
		return nil
	}
}

// s3UserJSON is a gateway user in s3 user --json: the secret only from
// add, which alone knows it.
type s3UserJSON struct {
	Name      string    `json:"name"`
	AccessKey string    `json:"access_key,omitempty"`
	SecretKey string    `json:"secret_key,omitempty"`
	Buckets   string    `json:"buckets,omitempty"`
	ReadOnly  bool      `json:"read_only"`
	Created   time.Time `json:"created,omitzero"`
}
