package s3_test

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/repo/s3"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want s3.Options
	}{
		{"s3://s3.amazonaws.com/backups", s3.Options{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "backups"}},
		{"s3://s3.amazonaws.com/backups/", s3.Options{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "backups"}},
		{"s3+http://127.0.0.1:9000/b-1.x", s3.Options{Endpoint: "127.0.0.1:9000", Bucket: "b-1.x"}},
		{"s3://minio.local:9000/bucket/host1", s3.Options{Endpoint: "minio.local:9000", Secure: true, Bucket: "bucket", Prefix: "host1"}},
		{"s3://minio.local/bucket/a/b/c/", s3.Options{Endpoint: "minio.local", Secure: true, Bucket: "bucket", Prefix: "a/b/c"}},
		{"s3+http://[::1]:9000/bucket", s3.Options{Endpoint: "[::1]:9000", Bucket: "bucket"}},
		{"s3://localhost/123", s3.Options{Endpoint: "localhost", Secure: true, Bucket: "123"}},
	}
	for _, tt := range good {
		got, err := s3.ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if got.Endpoint != tt.want.Endpoint || got.Secure != tt.want.Secure || got.Bucket != tt.want.Bucket || got.Prefix != tt.want.Prefix {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}
	bad := []struct {
		url, why string // why: a word the error must contain
	}{
		{"", "scheme"},
		{"http://host/bucket", "scheme"},
		{"s3:bucket", "HOST"},
		{"s3:///bucket", "host"},
		{"s3://host", "bucket"},
		{"s3://host/", "bucket"},
		{"s3://host//prefix", "bucket"},
		{"s3://AKIA:secret@host/bucket", "credentials"},
		{"s3://user@host/bucket", "credentials"},
		{"s3+http://host/bucket?region=x", "query"},
		{"s3://host/bucket?", "query"},
		{"s3://host/bucket#frag", "fragment"},
		{"s3://host/Bucket", "lowercase"},
		{"s3://host/ab", "3 to 63"},
		{"s3://host/" + strings.Repeat("a", 64), "3 to 63"},
		{"s3://host/-bucket", "start and end"},
		{"s3://host/bucket-", "start and end"},
		{"s3://host/a..b", ".."},
		{"s3://host/under_score", "lowercase"},
		{"s3://host/192.168.1.1", "IP"},
		{"s3://host/bucket/a//b", "segment"},
		{"s3://host/bucket/a/../b", "segment"},
		{"s3://host/bucket/./b", "segment"},
		{"s3://host:0/bucket", "port"},
		{"s3://host:99999/bucket", "port"},
	}
	for _, tt := range bad {
		_, err := s3.ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error about %s", tt.url, tt.why)
			continue
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseURL(%q) error %q does not mention %q", tt.url, err, tt.why)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) error %q repeats the password", tt.url, err)
		}
	}
}

func TestOptionsString(t *testing.T) {
	o := s3.Options{Endpoint: "127.0.0.1:9000", Bucket: "b0b", Prefix: "p/q", AccessKey: "key", SecretKey: "hush"}
	if got, want := o.String(), "s3+http://127.0.0.1:9000/b0b/p/q"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	o.Secure, o.Prefix = true, ""
	if got, want := o.String(), "s3://127.0.0.1:9000/b0b"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	base := s3.Options{Endpoint: "127.0.0.1:1", Bucket: "bucket", AccessKey: "a", SecretKey: "b"}
	tests := []struct {
		name   string
		modify func(o *s3.Options)
	}{
		{"no endpoint", func(o *s3.Options) { o.Endpoint = "" }},
		{"endpoint with scheme", func(o *s3.Options) { o.Endpoint = "http://127.0.0.1:1" }},
		{"endpoint with path", func(o *s3.Options) { o.Endpoint = "127.0.0.1:1/x" }},
		{"no bucket", func(o *s3.Options) { o.Bucket = "" }},
		{"prefix slash", func(o *s3.Options) { o.Prefix = "/p" }},
		{"half credentials", func(o *s3.Options) { o.SecretKey = "" }},
		{"negative retention", func(o *s3.Options) { o.Retention = -time.Hour }},
		{"unknown mode", func(o *s3.Options) { o.Mode = "forever" }},
	}
	for _, tt := range tests {
		o := base
		tt.modify(&o)
		if _, err := s3.Open(t.Context(), o); err == nil || strings.Contains(err.Error(), "reach") {
			t.Errorf("%s: Open error = %v, want a validation error before any request", tt.name, err)
		}
	}
}
