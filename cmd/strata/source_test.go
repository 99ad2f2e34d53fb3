package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An export named as a source URL (ndjson:PATH?…) is backed up and
// captured exactly as FILE and --stdin are: the same snapshot ID for the
// same bytes, --json with the snapshot's shape, events into the log. A
// database refuses an export's claims, and an export is no restore target.
func TestBackupSourceNDJSON(t *testing.T) {
	c := newCLI(t)
	c.ok(nil, "init")
	dir := t.TempDir()
	file := filepath.Join(dir, "export with space.ndjson")
	data := genNDJSON(200, 1)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	byFile := strings.TrimSpace(c.ok(nil, "backup", "--stream", "a", file, "--time", "2026-01-01T00:00:00Z", "--position", "0"))
	out := c.ok(nil, "backup", "--stream", "b", "--source", "ndjson://"+strings.ReplaceAll(file, " ", "%20")+"?format=ndjson&key-field=_id",
		"--time", "2026-01-01T00:00:00Z", "--position", "0", "--json")
	var snap snapshotJSON
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("backup --source ndjson: --json: %v\n%s", err, out)
	}
	if snap.Stream != "b" || snap.Format != "ndjson" || snap.Position == nil || *snap.Position != 0 || snap.Size != int64(len(data)) {
		t.Fatalf("backup --source ndjson: %+v, want the export as FILE backs it up (snapshot %s)", snap, byFile[:16])
	}
	if got := c.ok(nil, "restore", "--stream", "b"); got != string(data) {
		t.Fatalf("restore of the ndjson: source's snapshot differs from the export")
	}

	events := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(events, []byte(`{"seq":1,"ts":"2026-01-01T00:00:01Z","op":"delete","key":"user-0000000001"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lj captureJSON
	if err := json.Unmarshal([]byte(c.ok(nil, "log", "--stream", "b", "--source", "ndjson:"+events, "--json")), &lj); err != nil || lj.Stored != 1 || lj.Segments != 1 {
		t.Fatalf("log --source ndjson:FILE --json: %+v %v", lj, err)
	}

	for _, args := range [][]string{
		{"backup", "--stream", "c", "--source", "ndjson:" + file, "--format", "raw"},           // the URL takes it
		{"backup", "--stream", "c", "--source", "ndjson://host/x"},                             // an export has no host
		{"backup", "--stream", "c", "--source", "redis://127.0.0.1:1", "--time", "1700000000"}, // a database's own time
		{"log", "--stream", "c", "--source", "ndjson:" + events, "--key-field", "id"},
		{"restore", "--stream", "b", "--target", "ndjson:" + filepath.Join(dir, "out")},
	} {
		if code, _, errs := c.run(nil, args...); code != exitUsage {
			t.Errorf("strata %s: exit %d, want %d (usage)\n%s", strings.Join(args, " "), code, exitUsage, errs)
		}
	}
}
