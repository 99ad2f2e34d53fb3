package ndjson_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/strata-backup/strata/source"
	_ "github.com/strata-backup/strata/source/ndjson"
)

// The registry hands ndjson: URLs, which name a file and no host, to the
// export source; a bad one is a *URLError before anything is read.
func TestOpenExportURLs(t *testing.T) {
	env := &source.Env{Stdin: strings.NewReader(""), Stderr: new(bytes.Buffer)}
	for _, ok := range []string{
		"ndjson:-", "ndjson:export.ndjson", "ndjson:/abs/export.ndjson", "ndjson:///abs/export.ndjson",
		"ndjson://localhost/abs/export.ndjson", "ndjson:-?key-field=id", "ndjson:x?format=raw", "ndjson:x?allow-duplicate-keys=true",
	} {
		if _, err := source.Open(ok, env); err != nil {
			t.Errorf("Open(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{
		"ndjson:", "ndjson://host/export.ndjson", "ndjson:x?format=csv", "ndjson:x?key-field=", "ndjson:x?key-field=a%22b",
		"ndjson:x?allow-duplicate-keys=maybe", "ndjson:x?collections=a", "ndjson:x?format=raw&format=ndjson", "ndjson://user@/x",
	} {
		var ue *source.URLError
		if _, err := source.Open(bad, env); !errors.As(err, &ue) {
			t.Errorf("Open(%q) = %v, want a *URLError", bad, err)
		}
	}
}
