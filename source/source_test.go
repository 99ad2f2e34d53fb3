package source_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/source"
)

var opened []string

func init() {
	open := func(u *url.URL, env *source.Env) (source.Source, error) {
		opened = append(opened, u.String())
		return nil, nil
	}
	source.Register("fakedb", open)
	source.RegisterExport("fakeexport", open)
}

// Open hands a database's Opener only URLs with a host, an export's
// Opener URLs without one too, and refuses an unknown scheme naming the
// known ones; every refusal is a *URLError.
func TestOpenByScheme(t *testing.T) {
	opened = nil
	for _, ok := range []string{"fakedb://h:1", "FAKEDB://h:1/x", "fakeexport:-", "fakeexport:///a/b", "fakeexport:rel"} {
		if _, err := source.Open(ok, &source.Env{}); err != nil {
			t.Errorf("Open(%q): %v", ok, err)
		}
	}
	if len(opened) != 5 {
		t.Fatalf("openers saw %v, want 5 URLs", opened)
	}
	for _, bad := range []string{"fakedb:///x", "fakedb:x", "nosuch://h:1", "no scheme", "://"} {
		_, err := source.Open(bad, &source.Env{})
		var ue *source.URLError
		if !errors.As(err, &ue) {
			t.Errorf("Open(%q) = %v, want a *URLError", bad, err)
		}
		if bad == "nosuch://h:1" && (err == nil || !strings.Contains(err.Error(), "fakedb://") || !strings.Contains(err.Error(), "fakeexport:FILE")) {
			t.Errorf("Open(%q) = %v, want the known schemes named", bad, err)
		}
	}
	if len(opened) != 5 {
		t.Fatalf("openers saw %v after refusals", opened)
	}
}

// A database's Backup refuses a time or position (FromDatabase) as a
// usage error wrapping ErrClaim; the zero options pass.
func TestFromDatabase(t *testing.T) {
	if err := (source.BackupOptions{}).FromDatabase(); err != nil {
		t.Fatal(err)
	}
	pos := uint64(3)
	for _, o := range []source.BackupOptions{{Time: time.Unix(1, 0)}, {Position: &pos}} {
		err := o.FromDatabase()
		var ue *source.UsageError
		if !errors.Is(err, source.ErrClaim) || !errors.As(err, &ue) {
			t.Errorf("FromDatabase(%+v) = %v", o, err)
		}
	}
}
