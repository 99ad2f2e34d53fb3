package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/strata-backup/strata/repo"
)

// DrillRecord is the result of one restore drill (`strata drill`), stored as
// clear JSON at repo.DrillName(Time.UnixNano()). It holds no content: a
// keyless index server reads it for its status page and metrics, so digests
// of restored content never appear here, only whether they matched.
type DrillRecord struct {
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"` // when the drill ran (UTC)
	// At is the instant restored; Position the log position reached.
	At       time.Time `json:"at"`
	Position *uint64   `json:"position,omitempty"`
	// OK is true only when every check the drill could make passed.
	OK bool `json:"ok"`
	// RTO is the measured recovery time: the restore's wall time, from
	// opening the repository to the last record written to the sink.
	RTOSeconds float64 `json:"rto_seconds"`
	Records    uint64  `json:"records"`          // records the restore produced
	Target     string  `json:"target,omitempty"` // the scratch target's URL without credentials, or "" for the digesting sink
	Checks     []Check `json:"checks"`           // each verification made, in order
	Error      string  `json:"error,omitempty"`  // why OK is false
}

// Check is one verification a drill made.
type Check struct {
	Name string `json:"name"` // for example "snapshot-proof", "replay-proof"
	OK   bool   `json:"ok"`
	// Unproven marks a check the drill could not make (a snapshot without
	// a proof, no later snapshot to replay to): OK is false, and the
	// record's OK does not count it. It is never reported as proven.
	Unproven bool   `json:"unproven,omitempty"`
	Note     string `json:"note,omitempty"`
}

// ScrubRecord is the progress and findings of one scrub pass, stored as
// clear JSON at repo.ScrubName(Time.UnixNano()). The newest record says
// where the next pass starts, so the whole repository is read once per
// cycle however the passes are spaced.
type ScrubRecord struct {
	Time  time.Time `json:"time"`  // when the pass ended (UTC)
	Keyed bool      `json:"keyed"` // false for the server's keyless scrub (shard checksums only)
	// CycleStart is when the current cycle began; Cycle its length.
	CycleStart   time.Time `json:"cycle_start"`
	CycleSeconds float64   `json:"cycle_seconds"`
	// Next is the first pack (hex ID) the next pass reads; "" once the cycle
	// has read every pack.
	Next       string `json:"next"`
	PacksRead  int    `json:"packs_read"`
	BytesRead  int64  `json:"bytes_read"`
	BadShards  int    `json:"bad_shards"` // shards found damaged or missing
	Repaired   int    `json:"repaired"`   // of those, rebuilt from parity
	Unrepaired int    `json:"unrepaired"` // damage parity could not cover
	Error      string `json:"error,omitempty"`
}

// MaxRecordSize bounds a drill or scrub record read or uploaded.
const MaxRecordSize = 64 << 10

// DecodeDrillRecord parses and checks a drill record: at most
// MaxRecordSize bytes of one JSON object with no unknown fields, a valid
// stream name, a time, and checks with names. An index server stores only
// records it decoded.
func DecodeDrillRecord(b []byte) (*DrillRecord, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("drill record of %d bytes, over the limit %d", len(b), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rec DrillRecord
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("drill record is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("drill record has trailing data")
	}
	if err := repo.ValidStream(rec.Stream); err != nil {
		return nil, fmt.Errorf("drill record: %w", err)
	}
	if rec.Time.IsZero() || rec.RTOSeconds < 0 || math.IsNaN(rec.RTOSeconds) {
		return nil, errors.New("drill record: time or rto_seconds out of range")
	}
	for _, c := range rec.Checks {
		if c.Name == "" || len(c.Name) > 64 {
			return nil, errors.New("drill record: a check without a name, or with one over 64 bytes")
		}
	}
	return &rec, nil
}
