package repo

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/strata-backup/strata/repo/shard"
)

// VerifyObject checks an object's bytes against what its name promises,
// without a key: a shard's checksum and its pack ID and index against the
// name; a content-addressed object (index files, snapshots, log segment manifests)
// against the BLAKE3 ID in its name; a key file by parsing it and against
// the BLAKE3 in its name; a label, the config and the store layout by
// parsing their clear structure (a version-2 config also against its sum);
// a copy (copies/<name>, FORMAT.md §25) exactly as the object it copies.
// Names under none of the repository's prefixes, and prune marks and audit
// batches, pass. It is the Verifier
// that versioned and replicated stores use to tell an intact copy from an
// overwritten one.
func VerifyObject(name string, data []byte) error {
	k := KindOf(name)
	switch k {
	case 0, KindPruneMarks, KindAudit, KindDrill, KindScrub:
		return nil
	case KindCopy:
		// A copy holds the very bytes of the object it copies (FORMAT.md §25).
		if _, err := ParseObject(name); err != nil {
			return err
		}
		return VerifyObject(name[len(CopiesPrefix):], data)
	}
	o, err := ParseObject(name)
	if err != nil {
		if k == KindLabel {
			return corrupt(name, -1, "not a label name")
		}
		return err
	}
	switch k {
	case KindData:
		h, err := shard.Verify(data)
		if err != nil {
			return corrupt(name, -1, "%v", err)
		}
		if ID(h.PackID) != o.ID || h.Index != o.Shard {
			return corrupt(name, -1, "holds shard %d of pack %s, not what its name says", h.Index, ID(h.PackID).Short())
		}
		return nil
	case KindIndex, KindSnapshot, KindSegment, KindCheckpoint, KindRekey:
		return verifyContentID(name, o.ID, data)
	case KindLabel:
		_, err := DecodeLabel(name, data)
		return err
	case KindLease:
		_, err := DecodeLease(name, data)
		return err
	case KindKey:
		if _, err := decodeKeyFile(name, data); err != nil {
			return err
		}
		return verifyKeyFileName(name, data)
	case KindConfig:
		_, err := peekConfig(data)
		return err
	case KindLayout:
		_, err := DecodeLayout(data)
		return err
	}
	return nil
}

func verifyContentID(name string, want ID, data []byte) error {
	if hashObject(data) != want {
		return corrupt(name, -1, "content does not match its name (truncated or altered)")
	}
	return nil
}

// Layout is the store layout object (LayoutName, FORMAT.md §17): clear
// JSON, replicated to every store, naming the stores that hold the
// repository and the retention every write gets. It holds no secrets.
type Layout struct {
	Version   int      `json:"version"`
	Stores    []string `json:"stores"`
	Retention string   `json:"retention,omitempty"`      // a Go duration; empty for none
	Mode      string   `json:"retention_mode,omitempty"` // "governance" or "compliance"
}

// layoutVersion is the only Layout version this code reads and writes.
const layoutVersion = 1

// DecodeLayout parses a store layout object. Anything but version 1 with at
// least one store is an error wrapping ErrCorrupt, and for a version other
// than 1 also ErrUnsupportedVersion.
func DecodeLayout(data []byte) (*Layout, error) {
	var l Layout
	if err := json.Unmarshal(data, &l); err != nil || l.Version != layoutVersion || len(l.Stores) == 0 {
		err := error(corrupt(LayoutName, -1, "not a store layout"))
		if l.Version != layoutVersion {
			err = fmt.Errorf("%w (version %d): %w", ErrUnsupportedVersion, l.Version, err)
		}
		return nil, err
	}
	return &l, nil
}

// RetentionPeriod returns the retention the layout sets; 0 for none or an
// unparsable one.
func (l *Layout) RetentionPeriod() time.Duration {
	d, _ := time.ParseDuration(l.Retention)
	return d
}

// Encode returns the layout's JSON with the version set.
func (l *Layout) Encode() ([]byte, error) {
	l.Version = layoutVersion
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode the store layout: %w", err)
	}
	return b, nil
}
