package repo

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/strata-backup/strata/repo/shard"
)

// VerifyObject checks an object's bytes against what its name promises,
// without a key: a shard's checksum and its pack ID and index against the
// name; a content-addressed object (index files, snapshots, log segment manifests)
// against the BLAKE3 ID in its name; a key file by parsing it and against
// the BLAKE3 in its name; the config by parsing its clear structure. Names it does not know pass. It is the Verifier
// that versioned and replicated stores use to tell an intact copy from an
// overwritten one.
func VerifyObject(name string, data []byte) error {
	switch {
	case strings.HasPrefix(name, DataPrefix):
		id, i, err := ParseShardName(name)
		if err != nil {
			return err
		}
		h, err := shard.Verify(data)
		if err != nil {
			return corrupt(name, -1, "%v", err)
		}
		if ID(h.PackID) != id || h.Index != i {
			return corrupt(name, -1, "holds shard %d of pack %s, not what its name says", h.Index, ID(h.PackID).Short())
		}
		return nil
	case strings.HasPrefix(name, IndexPrefix), strings.HasPrefix(name, SnapshotsPrefix):
		return verifyContentID(name, name[strings.LastIndexByte(name, '/')+1:], data)
	case strings.HasPrefix(name, LogsPrefix):
		k, err := ParseSegmentName(name)
		if err != nil {
			return err
		}
		return verifyContentID(name, k.ID.String(), data)
	case strings.HasPrefix(name, LabelsPrefix):
		if _, err := ParseID(name[len(LabelsPrefix):]); err != nil {
			return corrupt(name, -1, "not a label name")
		}
		_, err := DecodeLabel(name, data)
		return err
	case strings.HasPrefix(name, KeysPrefix):
		if _, err := decodeKeyFile(name, data); err != nil {
			return err
		}
		return verifyKeyFileName(name, data)
	case name == ConfigName:
		_, err := peekConfig(data)
		return err
	case name == LayoutName:
		var l struct {
			Version int      `json:"version"`
			Stores  []string `json:"stores"`
		}
		if err := json.Unmarshal(data, &l); err != nil || l.Version != 1 || len(l.Stores) == 0 {
			return corrupt(name, -1, "not a store layout")
		}
		return nil
	}
	return nil
}

// LayoutName is the clear object that lists a repository's stores and its
// retention (FORMAT.md, "Stores and retention").
const LayoutName = "stores"

func verifyContentID(name, hexID string, data []byte) error {
	want, err := ParseID(hexID)
	if err != nil {
		return fmt.Errorf("%s: not a content-addressed name: %w", name, err)
	}
	if hashObject(data) != want {
		return corrupt(name, -1, "content does not match its name (truncated or altered)")
	}
	return nil
}

// ShardIndex returns i for the name of shard i of a pack (data/xx/<id>.<i>),
// and false for every other object. Multi-store placement keys on it.
func ShardIndex(name string) (int, bool) {
	if !strings.HasPrefix(name, DataPrefix) {
		return 0, false
	}
	_, i, err := ParseShardName(name)
	return i, err == nil
}
