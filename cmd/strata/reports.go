package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/source"
)

// This file prints the reports sources return (source/report.go): every
// source's backup, capture and restore has one text form and one --json
// shape, written here and nowhere else.

// sourceUsage turns a source's *URLError or *UsageError into the CLI's
// usage error (exit 2), and leaves any other error as it is.
func sourceUsage(err error) error {
	var ue *source.URLError
	var oe *source.UsageError
	if errors.As(err, &ue) || errors.As(err, &oe) {
		return usageError{err.Error()}
	}
	return err
}

// printBackup prints a backup's report: the snapshot's ID on stdout (or,
// with asJSON, its snapshots --json element), and a summary on stderr:
// "snapshot ID of S: [DETAIL, ]SIZE export[ in N chunks, M new], STORED
// stored before parity", then the source's notes.
func printBackup(env *environment, stream string, rep source.BackupReport, start time.Time, asJSON bool) error {
	if asJSON {
		if err := writeJSON(env, snapshotJSONOf(index.SnapshotRef{ID: rep.ID, Snapshot: rep.Snapshot})); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.stdout, rep.ID)
	}
	printBackupSummary(env, stream, rep, start)
	return nil
}

// printBackupSummary is printBackup's stderr part: what a rollback point
// prints too, whose ID has no place on stdout.
func printBackupSummary(env *environment, stream string, rep source.BackupReport, start time.Time) {
	snap := rep.Snapshot
	detail := ""
	if rep.Detail != "" {
		detail = rep.Detail + ", "
	}
	chunks := ""
	if rep.Chunks > 0 {
		chunks = fmt.Sprintf(" in %d chunks, %d new", rep.Chunks, rep.NewChunks)
	}
	env.summaryf("snapshot %s of %s: %s%s export%s, %s stored before parity",
		rep.ID.Short(), stream, detail, source.HumanBytes(snap.Size), chunks, source.HumanBytes(snap.StoredBytes))
	for _, n := range rep.Notes {
		fmt.Fprintf(env.stderr, "note: %s\n", n)
	}
	took := time.Since(start)
	env.verbosef("backup took %s (%s/s)", took.Round(time.Millisecond), source.HumanBytes(int64(float64(snap.Size)/max(took.Seconds(), 1e-3))))
	if rep.Chunks > 0 {
		env.verbosef("%d list blobs of the tree were new too", snap.NewBlobs-rep.NewChunks)
	}
}

// captureJSON is log --json's object: what the capture stored. Its first
// eight fields are every source's; the rest are set by the databases
// that have them.
type captureJSON struct {
	Stream       string `json:"stream"`
	Appended     int64  `json:"appended"`
	Stored       int64  `json:"stored"`
	Skipped      int64  `json:"skipped"`
	Segments     int64  `json:"segments"`
	Gaps         int64  `json:"gaps"`
	EncodedBytes int64  `json:"encoded_bytes"`
	StoredBytes  int64  `json:"stored_bytes"`
	Bases        int    `json:"bases,omitempty"`
	Reconnects   int    `json:"reconnects,omitempty"`
	Dropped      int64  `json:"dropped,omitempty"`
	Newest       string `json:"newest,omitempty"`
}

// printCapture prints a capture's report: with asJSON one captureJSON on
// stdout; a summary on stderr either way. err is the capture's own error,
// joined with a failure to print.
func printCapture(env *environment, stream string, rep source.CaptureReport, asJSON bool, err error) error {
	if asJSON {
		st := rep.LogStats
		if jerr := writeJSON(env, captureJSON{Stream: stream, Appended: st.Appended, Stored: st.Stored, Skipped: st.Skipped, Segments: st.Segments,
			Gaps: st.Gaps, EncodedBytes: st.EncodedBytes, StoredBytes: st.StoredBytes,
			Bases: rep.Bases, Reconnects: rep.Reconnects, Dropped: rep.Dropped, Newest: rep.Newest}); jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	unit := rep.Unit
	if unit == "" {
		unit = "events"
	}
	more := ""
	if rep.Bases > 0 || rep.Reconnects > 0 {
		more += fmt.Sprintf(", %d base snapshots, %d reconnects", rep.Bases, rep.Reconnects)
	}
	if rep.Dropped > 0 {
		more += fmt.Sprintf(", %d messages that are not changes dropped", rep.Dropped)
	}
	if rep.Newest != "" {
		more += "; newest " + rep.Newest
	}
	env.summaryf("log %s: %d %s stored in %d segments (%s sealed), %d already stored and skipped, %d gaps%s%s",
		stream, rep.Stored, unit, rep.Segments, source.HumanBytes(rep.StoredBytes), rep.Skipped, rep.Gaps, more, rep.NotStored())
	return err
}

// restoreJSON is restore --target --json's object: what a restore into a
// database wrote.
type restoreJSON struct {
	Stream   string   `json:"stream"`
	At       string   `json:"at"` // the target: an instant, or "position N"
	Target   string   `json:"target"`
	Snapshot string   `json:"snapshot"`
	Base     string   `json:"base"`
	Events   int64    `json:"events"`
	Unit     string   `json:"unit"`
	Reached  string   `json:"reached"`
	Verified string   `json:"verified,omitempty"`
	Notes    []string `json:"notes"`
	Seconds  float64  `json:"seconds"`
}

// printRestore prints a restore's report: with asJSON one restoreJSON on
// stdout; "restored S at T into TARGET: snapshot ID (BASE) + N UNIT
// through REACHED, in D", its notes and what the read-back verified on
// stderr.
func printRestore(env *environment, stream string, t index.Target, rep source.RestoreReport, start time.Time, asJSON bool) error {
	took := time.Since(start)
	unit := rep.Unit
	if unit == "" {
		unit = "events"
	}
	if asJSON {
		j := restoreJSON{Stream: stream, At: t.String(), Target: rep.Target, Snapshot: rep.Snapshot.String(), Base: rep.Base,
			Events: rep.Events, Unit: unit, Reached: rep.Reached, Verified: rep.Verified, Notes: rep.Notes, Seconds: took.Seconds()}
		if j.Notes == nil {
			j.Notes = []string{}
		}
		if err := writeJSON(env, j); err != nil {
			return err
		}
	}
	env.summaryf("restored %s at %s into %s: snapshot %s (%s) + %d %s through %s, in %s",
		stream, t, rep.Target, rep.Snapshot.Short(), rep.Base, rep.Events, unit, rep.Reached, took.Round(time.Millisecond))
	for _, n := range rep.Notes {
		fmt.Fprintf(env.stderr, "note: %s\n", n)
	}
	if rep.Verified != "" {
		env.summaryf("verified: %s", rep.Verified)
	}
	return nil
}
