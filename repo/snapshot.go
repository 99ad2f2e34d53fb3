package repo

import (
	"encoding/json"
	"fmt"
	"time"
)

const (
	snapshotVersion = 1
	maxSnapshotSize = 16 << 20
)

// Snapshot is the manifest of one backup of one stream (FORMAT.md,
// "Snapshots"). It is written last, after every blob it references is in a
// pack listed by an index file.
type Snapshot struct {
	Version int       `json:"version"`
	Stream  string    `json:"stream"`
	Time    time.Time `json:"time"`    // the instant the export is consistent at
	Created time.Time `json:"created"` // when the backup finished, by the writer's clock
	Format  string    `json:"format"`  // "raw" or "ndjson"
	Size    int64     `json:"size"`    // bytes of the export
	Blobs   int64     `json:"blobs"`   // data blobs in order, counting repeats
	Tree    Tree      `json:"tree"`
	Parent  *ID       `json:"parent,omitempty"` // snapshot deduplicated against
	// Indexes lists index files that together locate every blob of the tree:
	// the parent's list plus the files this backup wrote. Readers load only
	// these, so their memory follows the stream, not the repository.
	Indexes []ID   `json:"indexes"`
	Host    string `json:"host,omitempty"`
	// Position is the change-log position the export is consistent at, when known.
	Position *uint64 `json:"position,omitempty"`
	// KeyField and Sorted describe an ndjson export: the field that keys its
	// documents, and whether every line is a document with a key and the
	// keys strictly ascend (a point-in-time restore then streams).
	KeyField string `json:"key_field,omitempty"`
	Sorted   bool   `json:"sorted,omitempty"`
	// Stored counts what this backup added: new blobs and their compressed, sealed bytes.
	NewBlobs    int64 `json:"new_blobs"`
	StoredBytes int64 `json:"stored_bytes"`
	// Records and Digest are the proof of the export's logical content
	// (FORMAT.md §11.1): its record count and keyed, order-independent
	// digest, set by the sources that define canonical records. A snapshot
	// without them is unproven. Read them with Proof, set them with SetProof.
	Records *uint64 `json:"records,omitempty"`
	Digest  string  `json:"digest,omitempty"`
	// KeyMap, version 2 (FORMAT.md §26), names the root of the snapshot's
	// key map: a sorted ndjson export's chunks by first key, with their
	// locations. Optional; readers without it (or older binaries, which
	// ignore it) search the blob tree.
	KeyMap *KeyMapRef `json:"key_map,omitempty"`
}

// Tree is the root of a snapshot's blob list: Root holds IDs of list blobs of
// height Height-1, or, at height 0, the data blob IDs themselves.
type Tree struct {
	Height int  `json:"height"`
	Root   []ID `json:"root"`
}

// MaxTreeHeight bounds recursion when reading a tree.
const MaxTreeHeight = 16

// DecodeSnapshot parses snapshot plaintext.
func DecodeSnapshot(name string, p []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(p, &s); err != nil {
		return nil, corrupt(name, -1, "snapshot is not valid JSON: %v", err)
	}
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("%s: %w: snapshot version %d", name, ErrUnsupportedVersion, s.Version)
	}
	if err := ValidStream(s.Stream); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	if s.Tree.Height < 0 || s.Tree.Height > MaxTreeHeight || s.Size < 0 || s.Blobs < 0 {
		return nil, corrupt(name, -1, "snapshot fields out of range")
	}
	if s.Format != "raw" && s.Format != "ndjson" {
		return nil, corrupt(name, -1, "unknown export format %q", s.Format)
	}
	if err := s.validProof(); err != nil {
		return nil, corrupt(name, -1, "snapshot proof: %v", err)
	}
	return &s, nil
}

// ValidStream checks a stream name: 1–200 bytes of [A-Za-z0-9._-] in
// segments separated by single slashes, no segment "." or "..".
func ValidStream(s string) error {
	if len(s) == 0 || len(s) > 200 {
		return fmt.Errorf("stream name %q: must be 1 to 200 bytes", s)
	}
	seg := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			part := s[seg:i]
			if part == "" || part == "." || part == ".." {
				return fmt.Errorf("stream name %q: empty, '.' or '..' segment", s)
			}
			seg = i + 1
			continue
		}
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("stream name %q: byte %q not allowed (use letters, digits, '.', '_', '-' and '/')", s, c)
		}
	}
	return nil
}
