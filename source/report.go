package source

import (
	"errors"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/retry"
)

// BackupOptions are what the caller says about one backup. The zero value
// takes everything from the source.
type BackupOptions struct {
	// Time and Position are the instant and the change-log position the
	// operator says an export is consistent at (backup --time,
	// --position); zero and nil when not given. Only a source that reads
	// an export the operator made takes them: a database's snapshot
	// carries its own, and its Backup MUST refuse them (FromDatabase).
	Time     time.Time
	Position *uint64
}

// ErrClaim is wrapped (in a *UsageError) when a backup is given a time or
// position for a database, whose snapshots carry their own.
var ErrClaim = errors.New("a database's snapshot takes its time and position from the database")

// FromDatabase returns a *UsageError wrapping ErrClaim when o says what
// only an export's backup may be told; a database Source's Backup calls
// it first.
func (o BackupOptions) FromDatabase() error {
	if !o.Time.IsZero() || o.Position != nil {
		return &UsageError{Err: ErrClaim}
	}
	return nil
}

// BackupReport is what a Backup stored: one shape for every source, which
// the CLI prints (the snapshot's ID on stdout, or its JSON; a summary on
// stderr). A Backup that wrote the snapshot's manifest MUST return the
// report with Snapshot set even when it also returns an error (a failed
// retention extension after the commit point): the snapshot exists.
type BackupReport struct {
	ID       repo.ID
	Snapshot *repo.Snapshot // the manifest written; nil when none was
	// Chunks and NewChunks count the data chunks read and the ones stored
	// new (not deduplicated), when the source counts them (an export's
	// backup does, through engine.Progress); both 0 otherwise.
	Chunks, NewChunks int64
	// Detail is the source's own words on the consistent point it read
	// ("etcd revision 12, 40 keys"); "" for none.
	Detail string
	// Notes are further lines the operator should read (a snapshot
	// without a log position, say).
	Notes []string
}

// CaptureReport is what a Capture stored before it returned: one shape for
// every source (log's summary and log --json). Capture MUST return it
// with the counts so far even when it returns an error, since what it
// sealed before the error is stored.
type CaptureReport struct {
	engine.LogStats
	// Unit names an event in the source's terms, plural ("events",
	// "commands", "revisions", "oplog entries"); "" means "events".
	Unit       string
	Bases      int   // base snapshots the capture took itself
	Reconnects int   // times it connected to the database again
	Dropped    int64 // messages of the database's stream that are not changes (Redis PING/REPLCONF), not stored
	// Newest is the newest position read, in the database's own terms
	// ("revision 812", "oplog entry 1700000000:3"); "" when it has none.
	Newest string
}

// RestoreReport is what a Restore wrote into a database: one shape for
// every source (restore's summary, and restore --target --json).
type RestoreReport struct {
	// Target is the database written, as the operator named it (a URL
	// without its password); "" lets the caller fill in the URL it opened.
	Target   string
	Snapshot repo.ID // the plan's base snapshot
	// Base is the source's words on what the base held ("4.0 MiB of
	// RDB", "revision 12, 40 keys").
	Base string
	// Events counts the log events applied after the base; Unit names
	// them in the source's terms, plural ("commands"; "" means "events").
	Events int64
	Unit   string
	// Reached is the state written, in the database's terms ("position
	// 812", "source revision 812", "oplog 1700000000:3").
	Reached string
	// Verified says what reading the target back proved; "" when it was
	// not read back.
	Verified string
	// Notes are further lines the operator should read (keys restored
	// without their lease, a MULTI/EXEC unit left out).
	Notes []string
}

// UsageError is an option a source cannot take (or an option that does
// not fit what it read): the operator's mistake, not a failure of the
// database. The CLI exits with its usage code.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ReconnectBackoff paces a capture's reconnections to its database and
// its retried base snapshots: from 1 s, doubling, up to 30 s. Every
// database source uses it, so they all wait alike.
func ReconnectBackoff() retry.Backoff {
	return retry.Backoff{Policy: retry.Policy{Base: time.Second, Max: 30 * time.Second}}
}
