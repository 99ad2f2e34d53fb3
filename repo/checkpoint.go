package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Backup checkpoints (FORMAT.md §12.1): a running backup names the index
// files it has written so far, so that a backup interrupted before its
// snapshot manifest leaves packs the next backup of the stream can find
// and reuse instead of uploading them again.

const (
	checkpointVersion = 1
	maxCheckpointSize = 16 << 20
	// MaxCheckpointIndexes bounds the index files one checkpoint names.
	MaxCheckpointIndexes = 1 << 16
)

// Checkpoint is the sealed content of checkpoints/<stream>/@<id>.
type Checkpoint struct {
	Version int       `json:"version"`
	Stream  string    `json:"stream"`
	Created time.Time `json:"created"`          // by the writer's clock
	Parent  *ID       `json:"parent,omitempty"` // the snapshot the backup deduplicated against
	// Indexes lists index files whose packs are all stored: the ones the
	// backup wrote, and those of the checkpoints it resumed from.
	Indexes []ID `json:"indexes"`
}

// StreamCheckpointPrefix is the prefix under which exactly one stream's
// checkpoints are listed: checkpoints/<stream>/@ ('@' cannot start a stream
// name segment, so a sub-stream's checkpoints are not listed with it).
func StreamCheckpointPrefix(stream string) string { return CheckpointsPrefix + stream + "/@" }

// CheckpointName is the object name of stream's checkpoint id.
func CheckpointName(stream string, id ID) string { return StreamCheckpointPrefix(stream) + id.String() }

// ParseCheckpointName reverses CheckpointName.
func ParseCheckpointName(name string) (stream string, id ID, err error) {
	rest, ok := strings.CutPrefix(name, CheckpointsPrefix)
	at := strings.LastIndex(rest, "/@")
	if !ok || at <= 0 {
		return "", ID{}, fmt.Errorf("not a checkpoint name: %q", name)
	}
	stream = rest[:at]
	if ValidStream(stream) != nil {
		return "", ID{}, fmt.Errorf("not a checkpoint name: %q: bad stream", name)
	}
	if id, err = ParseID(rest[at+2:]); err != nil {
		return "", ID{}, fmt.Errorf("not a checkpoint name: %q", name)
	}
	return stream, id, nil
}

// SaveCheckpoint stores a checkpoint and returns its ID.
func (r *Repository) SaveCheckpoint(ctx context.Context, c *Checkpoint) (ID, error) {
	if err := ValidStream(c.Stream); err != nil {
		return ID{}, err
	}
	c.Version = checkpointVersion
	p, err := jsonMarshal(c)
	if err != nil {
		return ID{}, err
	}
	id, err := r.saveSealed(ctx, StreamCheckpointPrefix(c.Stream), adCheckpoint, p)
	if err != nil {
		return ID{}, fmt.Errorf("save checkpoint: %w", err)
	}
	return id, nil
}

// LoadCheckpoint reads one checkpoint of stream. Its content must name the
// same stream, or it is corrupt.
func (r *Repository) LoadCheckpoint(ctx context.Context, stream string, id ID) (*Checkpoint, error) {
	p, err := r.loadSealed(ctx, StreamCheckpointPrefix(stream), id, adCheckpoint, maxCheckpointSize)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	name := CheckpointName(stream, id)
	c, err := DecodeCheckpoint(name, p)
	if err != nil {
		return nil, err
	}
	if c.Stream != stream {
		return nil, corrupt(name, -1, "checkpoint of stream %q filed under %q", c.Stream, stream)
	}
	return c, nil
}

// DecodeCheckpoint parses checkpoint plaintext.
func DecodeCheckpoint(name string, p []byte) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(p, &c); err != nil {
		return nil, corrupt(name, -1, "checkpoint is not valid JSON: %v", err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("%s: %w: checkpoint version %d", name, ErrUnsupportedVersion, c.Version)
	}
	if err := ValidStream(c.Stream); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	if len(c.Indexes) > MaxCheckpointIndexes {
		return nil, corrupt(name, -1, "names %d index files, over the limit %d", len(c.Indexes), MaxCheckpointIndexes)
	}
	return &c, nil
}

// ListCheckpoints lists the IDs of stream's checkpoints.
func (r *Repository) ListCheckpoints(ctx context.Context, stream string) ([]ID, error) {
	return r.ListIDs(ctx, StreamCheckpointPrefix(stream))
}
