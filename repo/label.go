package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// MaxLabelSize bounds a label read or upload.
const MaxLabelSize = 8 << 10

// Label is the plaintext part of a snapshot: what an index server, which
// never holds the key, needs to list snapshots and plan restores. It is
// stored as labels/<snapshot ID> before the snapshot itself, so a server
// can check a snapshot upload's stream before accepting it. It repeats
// fields of the sealed manifest; readers with the key check that they
// agree (check reports a label that does not).
type Label struct {
	Version     int       `json:"version"`
	Stream      string    `json:"stream"`
	Time        time.Time `json:"time"`
	Position    *uint64   `json:"position,omitempty"`
	Format      string    `json:"format"`
	Size        int64     `json:"size"`
	NewBlobs    int64     `json:"new_blobs"`
	StoredBytes int64     `json:"stored_bytes"`
	// Received and By are stamped by an index server from its own clock and
	// the token that uploaded the snapshot; writers never set them. Retention
	// decisions made by the server use Received, not Time.
	Received *time.Time `json:"received,omitempty"`
	By       string     `json:"by,omitempty"`
}

const labelVersion = 1

// LabelOf makes the label of a snapshot manifest.
func LabelOf(s *Snapshot) *Label {
	return &Label{Version: labelVersion, Stream: s.Stream, Time: s.Time.UTC(), Position: s.Position,
		Format: s.Format, Size: s.Size, NewBlobs: s.NewBlobs, StoredBytes: s.StoredBytes}
}

// Encode returns the label's stored bytes.
func (l *Label) Encode() ([]byte, error) {
	l.Version = labelVersion
	return jsonMarshal(l)
}

// DecodeLabel parses and checks a label. Unknown fields are refused: a
// label is small and exact, and a server must not store what it cannot check.
func DecodeLabel(name string, b []byte) (*Label, error) {
	if len(b) > MaxLabelSize {
		return nil, corrupt(name, -1, "label of %d bytes, over the limit %d", len(b), MaxLabelSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Label
	if err := dec.Decode(&l); err != nil {
		return nil, corrupt(name, -1, "label is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, corrupt(name, -1, "label has trailing data")
	}
	if l.Version != labelVersion {
		return nil, fmt.Errorf("%s: %w: label version %d", name, ErrUnsupportedVersion, l.Version)
	}
	if err := ValidStream(l.Stream); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	if l.Format != "raw" && l.Format != "ndjson" {
		return nil, corrupt(name, -1, "unknown export format %q", l.Format)
	}
	if l.Size < 0 || l.NewBlobs < 0 || l.StoredBytes < 0 || l.Time.IsZero() {
		return nil, corrupt(name, -1, "label fields out of range")
	}
	if len(l.By) > 64 {
		return nil, corrupt(name, -1, "label uploader name too long")
	}
	return &l, nil
}

// Agrees reports how a label differs from its snapshot's manifest, or nil.
func (l *Label) Agrees(s *Snapshot) error {
	want := LabelOf(s)
	switch {
	case l.Stream != want.Stream:
		return fmt.Errorf("label says stream %q, the snapshot %q", l.Stream, want.Stream)
	case !l.Time.Equal(want.Time):
		return fmt.Errorf("label says time %s, the snapshot %s", l.Time, want.Time)
	case (l.Position == nil) != (want.Position == nil) || l.Position != nil && *l.Position != *want.Position:
		return fmt.Errorf("label and snapshot disagree on the position")
	case l.Format != want.Format || l.Size != want.Size || l.NewBlobs != want.NewBlobs || l.StoredBytes != want.StoredBytes:
		return fmt.Errorf("label and snapshot disagree on format or sizes")
	}
	return nil
}

// SnapshotOfLabel is the part of a manifest a label gives, for catalogs
// built without the key (an index server's). Tree and Indexes are empty.
func SnapshotOfLabel(l *Label) *Snapshot {
	s := &Snapshot{Version: snapshotVersion, Stream: l.Stream, Time: l.Time, Position: l.Position, Format: l.Format,
		Size: l.Size, NewBlobs: l.NewBlobs, StoredBytes: l.StoredBytes}
	if l.Received != nil {
		s.Created = *l.Received
	}
	return s
}

// SaveLabel stores a snapshot's label.
func (r *Repository) SaveLabel(ctx context.Context, id ID, s *Snapshot) error {
	b, err := LabelOf(s).Encode()
	if err != nil {
		return err
	}
	if err := r.store.Put(ctx, LabelName(id), b); err != nil {
		return fmt.Errorf("save label: %w", err)
	}
	return nil
}
