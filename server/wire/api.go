package wire

import (
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Media types.
const (
	MediaJSON   = "application/json"
	MediaNDJSON = "application/x-ndjson"
	MediaObject = "application/octet-stream"
)

// Limits the server enforces and clients respect.
const (
	MaxJSONBody    = 1 << 20   // a JSON request body
	MaxObjectBody  = 256 << 20 // one object upload: a shard of the largest pack a default backup writes, with room
	MaxHeaderBytes = 16 << 10
	MaxLookupIDs   = 10000 // IDs in one blob lookup
	// MaxClockSkew is how far in the future (by the server's clock) a
	// client may date a snapshot or an event before the upload is refused.
	MaxClockSkew = 5 * time.Minute
)

// Error codes in ErrorBody.Code.
const (
	CodeBadRequest     = "bad_request"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeNotFound       = "not_found"
	CodeExists         = "exists"
	CodeTooLarge       = "too_large"
	CodeLengthRequired = "length_required"
	CodeCorrupt        = "corrupt" // an upload that is not what its name promises
	CodeNotRestorable  = "not_restorable"
	CodeConflict       = "conflict" // the request contradicts the repository's state
	CodeInternal       = "internal"
	CodeUnavailable    = "unavailable" // the store failed, or the server is busy; retry later
	CodeTimeout        = "timeout"     // the request body stalled or took too long
)

// Error is every error response's body.
type Error struct {
	Error ErrorBody `json:"error"`
}

type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Identical is set on CodeExists when the upload equals the stored
	// object byte for byte: a replayed upload, which a client may count as done.
	Identical bool `json:"identical,omitempty"`
}

// ListLine is one line of an object listing (NDJSON). The last line has End
// set and counts the objects, so a cut listing is never taken as complete.
type ListLine struct {
	Name  string `json:"name,omitempty"`
	Size  int64  `json:"size,omitempty"`
	End   bool   `json:"end,omitempty"`
	Count int    `json:"count,omitempty"`
}

// Stream summarizes one stream of the catalog.
type Stream struct {
	Name      string     `json:"name"`
	Snapshots int        `json:"snapshots"`
	Segments  int        `json:"segments"`
	Newest    *time.Time `json:"newest,omitempty"` // newest event or snapshot
}

// Snapshot is one snapshot as the server knows it: its ID and label.
type Snapshot struct {
	ID    string      `json:"id"`
	Label *repo.Label `json:"label"`
}

// Plan is a restore plan (FORMAT.md §16): the base snapshot, the first
// position to apply, and the segment manifests to read, in order, as a plan
// log (AppendPlanLog, DecodePlanLog; base64 in JSON).
type Plan struct {
	Stream string   `json:"stream"`
	Target string   `json:"target"`
	Base   Snapshot `json:"base"`
	From   uint64   `json:"from"`
	// Next continues a plan asked for in pages (PROTOCOL.md §5, "Pages"):
	// the "after" of the page that follows, empty on the last page and on
	// a whole plan.
	Next string `json:"next,omitempty"`
	// Log is the last field: the server appends it base64 after the rest
	// of the answer (server.appendPlan).
	Log []byte `json:"log"`
}

// Coverage is what `strata coverage --json` prints, local or remote.
type Coverage struct {
	Stream  string   `json:"stream"`
	Windows []Window `json:"windows"`
	Gaps    []Gap    `json:"gaps"`
	// Uncertain lists the time-uncertain spans (FORMAT.md §15): positions
	// whose events are exact but whose times are known only to lie
	// between After and Before. Restores by time inside them are refused.
	Uncertain []Gap    `json:"time_uncertain"`
	Conflicts []string `json:"conflicts,omitempty"`
	Newest    *Time    `json:"newest,omitempty"`
	LagSecs   *float64 `json:"lag_seconds,omitempty"`
}

type Time struct {
	RFC3339 string  `json:"rfc3339"`
	Unix    float64 `json:"unix"`
	UnixNS  int64   `json:"unix_ns"`
}

type Window struct {
	From     Time    `json:"from"`
	To       Time    `json:"to"`
	FromPos  uint64  `json:"from_position"`
	ToPos    uint64  `json:"to_position"`
	Duration float64 `json:"seconds"`
}

type Gap struct {
	FromPos uint64 `json:"from_position"`
	ToPos   uint64 `json:"to_position"`
	After   Time   `json:"after"`
	Before  Time   `json:"before"`
}

// TimeOf is the JSON form of an instant.
func TimeOf(t time.Time) Time {
	return Time{RFC3339: index.FormatTime(t), Unix: float64(t.UnixNano()) / 1e9, UnixNS: t.UnixNano()}
}

// (Time).Time returns the instant.
func (t Time) Time() time.Time { return time.Unix(0, t.UnixNS).UTC() }

// CoverageOf converts a catalog's coverage; lag is measured at now.
func CoverageOf(cov index.Coverage, now time.Time) Coverage {
	j := Coverage{Stream: cov.Stream, Windows: []Window{}, Gaps: []Gap{}, Uncertain: []Gap{}, Conflicts: cov.Conflicts}
	for _, w := range cov.Windows {
		j.Windows = append(j.Windows, Window{From: TimeOf(w.From), To: TimeOf(w.To), FromPos: w.FromPos, ToPos: w.ToPos, Duration: w.To.Sub(w.From).Seconds()})
	}
	for _, g := range cov.Gaps {
		j.Gaps = append(j.Gaps, Gap{FromPos: g.FromPos, ToPos: g.ToPos, After: TimeOf(g.After), Before: TimeOf(g.Before)})
	}
	for _, u := range cov.Uncertain {
		j.Uncertain = append(j.Uncertain, Gap{FromPos: u.FromPos, ToPos: u.ToPos, After: TimeOf(u.After), Before: TimeOf(u.Before)})
	}
	if !cov.Newest.IsZero() {
		n, lag := TimeOf(cov.Newest), now.Sub(cov.Newest).Seconds()
		j.Newest, j.LagSecs = &n, &lag
	}
	return j
}

// ForgetRequest asks the server to apply a retention policy to one stream,
// by the times it received the snapshots (PROTOCOL.md, "Trusted time").
type ForgetRequest struct {
	Stream         string `json:"stream"`
	KeepLast       int    `json:"keep_last,omitempty"`
	KeepHourly     int    `json:"keep_hourly,omitempty"`
	KeepDaily      int    `json:"keep_daily,omitempty"`
	KeepWeekly     int    `json:"keep_weekly,omitempty"`
	KeepMonthly    int    `json:"keep_monthly,omitempty"`
	KeepWithinPITR string `json:"keep_within_pitr,omitempty"` // a Go duration, "36h"
	DryRun         bool   `json:"dry_run,omitempty"`
}

// ForgetResponse is what the server decided and did.
type ForgetResponse struct {
	Keep           []Decision `json:"keep"`
	Remove         []Decision `json:"remove"`
	RemoveSegments []string   `json:"remove_segments"`
	Deferred       []string   `json:"deferred"`
	// Now is the server's clock, which placed the PITR window.
	Now time.Time `json:"now"`
}

// Decision is one snapshot's fate; Time is the time retention used (the
// server's receive time when it has one).
type Decision struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Reasons []string  `json:"reasons,omitempty"`
}

// RestoreReport tells the server a client-side restore ended, for the audit
// trail and the restore metrics.
type RestoreReport struct {
	Stream   string  `json:"stream"`
	Snapshot string  `json:"snapshot"`
	Target   string  `json:"target"`
	Seconds  float64 `json:"seconds"`
	Bytes    int64   `json:"bytes"`
	Error    string  `json:"error,omitempty"`
}

// CheckReport tells the server a client-side check ended.
type CheckReport struct {
	ReadData bool     `json:"read_data"`
	Problems []string `json:"problems"`
	Repaired int      `json:"repaired"`
	Seconds  float64  `json:"seconds"`
}

// LookupRequest asks which blobs the repository already holds.
type LookupRequest struct {
	IDs []repo.ID `json:"ids"`
}

// LookupResponse maps each found blob ID to an index file that locates it.
type LookupResponse struct {
	Found map[string]string `json:"found"`
}

// AuditRecord is one line of the audit trail.
type AuditRecord struct {
	Time    time.Time `json:"time"`
	Token   string    `json:"token,omitempty"` // the token's name, never the token
	Remote  string    `json:"remote,omitempty"`
	Action  string    `json:"action"`
	Object  string    `json:"object,omitempty"`
	Stream  string    `json:"stream,omitempty"`
	Status  int       `json:"status"`
	Result  string    `json:"result"` // ok, refused, failed
	Detail  string    `json:"detail,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	Seconds float64   `json:"seconds,omitempty"`
}

// Identity is the token a request authenticated with: GET /v1/whoami.
type Identity struct {
	Name   string `json:"name"`
	Scopes string `json:"scopes"` // as in the tokens file: read,backup:shop/*
	// Now is the server's clock when it answered: the trusted time that
	// snapshot and event dates are checked against (MaxClockSkew), so a
	// client can check them before it uploads anything.
	Now *time.Time `json:"now,omitempty"`
}

// TooFarAhead reports whether an instant a client claims is later than
// the server's clock now allows (MaxClockSkew): the rule for labels,
// segments and, before they are sent, events.
func TooFarAhead(t, now time.Time) bool { return t.After(now.Add(MaxClockSkew)) }
