package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/strata-backup/strata/repo/shard"
)

// Repository is an open repository: a store plus the keys and config that
// the password unlocked. It is safe for concurrent use.
type Repository struct {
	store   Store
	cfg     Config
	keys    *keys
	ring    Keyring // every key generation the password unlocked; ring.Root() is the master key
	keyName string  // the key file the password opened
}

// Store returns the underlying store.
func (r *Repository) Store() Store { return r.store }

// Config returns a copy of the repository config.
func (r *Repository) Config() Config { return r.cfg }

// KeyName returns the name of the key file that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// BlobID computes the keyed ID of a blob of type t.
func (r *Repository) BlobID(t BlobType, data []byte) ID { return r.keys.blobID(t, data) }

// Init creates a repository on an empty store and returns it open.
func Init(ctx context.Context, s Store, password []byte, o InitOptions) (*Repository, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(password) == 0 {
		return nil, errors.New("init: empty password")
	}
	// From version 2 every metadata object is stored twice (FORMAT.md §25);
	// a repository whose config survives only as its copy exists too.
	s = WithCopies(s)
	if _, err := s.Stat(ctx, ConfigName); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("init: %w", err)
	}
	cfg, err := newConfig(o)
	if err != nil {
		return nil, err
	}
	master := make([]byte, MasterKeySize)
	if _, err := randRead(master); err != nil {
		return nil, err
	}
	k, err := deriveKeys(master, cfg.Cipher)
	if err != nil {
		return nil, err
	}
	r := &Repository{store: s, cfg: *cfg, keys: k, ring: rootKeyring(master)}
	// The key goes first: a config without a key would be a repository nobody can open.
	if r.keyName, err = r.AddKey(ctx, password, o.KDF, o.Host, o.User); err != nil {
		return nil, err
	}
	b, err := cfg.encode(k)
	if err != nil {
		return nil, err
	}
	if err := s.Put(ctx, ConfigName, b); err != nil {
		return nil, fmt.Errorf("init: write config: %w", err)
	}
	return r, nil
}

// Open unlocks the repository on s with password. It refuses an unknown
// format version before trying any key, and returns ErrWrongPassword when no
// key file opens. The config and key files are read through the copies
// layer (FORMAT.md §25): a damaged or missing one is read from its copy.
func Open(ctx context.Context, s Store, password []byte) (*Repository, error) {
	plain := s
	s = WithCopies(s)
	b, err := s.Get(ctx, ConfigName)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotRepository
	} else if err != nil {
		return nil, fmt.Errorf("open: read config: %w", err)
	}
	env, err := peekConfig(b)
	if err != nil {
		return nil, err
	}
	var names []string
	err = s.List(ctx, KeysPrefix, func(oi ObjectInfo) error { names = append(names, oi.Name); return nil })
	if err != nil {
		return nil, fmt.Errorf("open: list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, corrupt("keys/", -1, "the repository has no key files")
	}
	var errs []error
	var stale error
	for _, name := range names {
		kb, err := s.Get(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kf, err := decodeKeyFile(name, kb)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ring, err := kf.unwrap(name, password)
		if errors.Is(err, errAuth) {
			// A key file altered after it was written may be why it does
			// not open: that is damage, not a wrong password.
			if verr := verifyKeyFileName(name, kb); verr != nil {
				errs = append(errs, verr)
			}
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg, k, err := openConfig(env, ring, name)
		if errors.Is(err, ErrStaleKey) {
			// The same password may open a newer key file: one a
			// rotation wrote before removing this one.
			stale = err
			continue
		} else if err != nil {
			return nil, err
		}
		if cfg.Version < 2 {
			// Version 1 has no copies: read and write it as version 1
			// builds do, until Upgrade.
			s = plain
		}
		return &Repository{store: s, cfg: *cfg, keys: k, ring: ring, keyName: name}, nil
	}
	if stale != nil {
		return nil, stale
	}
	if len(errs) > 0 {
		// Damaged key files may be why the password did not open anything:
		// report the damage, never only a wrong password.
		return nil, fmt.Errorf("open: no intact key file opens with this password, and %d key file(s) are damaged or unreadable; the password may be one of theirs: %w", len(errs), errors.Join(errs...))
	}
	return nil, ErrWrongPassword
}

// saveSealed seals plaintext and stores it as prefix+hex(BLAKE3(stored bytes)).
func (r *Repository) saveSealed(ctx context.Context, prefix, ad string, plaintext []byte) (ID, error) {
	b := seal(nil, r.keys.metadata, plaintext, ad)
	id := hashObject(b)
	if err := r.store.Put(ctx, prefix+id.String(), b); err != nil {
		return ID{}, err
	}
	return id, nil
}

// loadSealed reads, verifies against its name, and opens a sealed object.
func (r *Repository) loadSealed(ctx context.Context, prefix string, id ID, ad string, limit int) ([]byte, error) {
	name := prefix + id.String()
	b, err := r.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, corrupt(name, -1, "%d bytes, over the limit %d", len(b), limit)
	}
	if hashObject(b) != id {
		return nil, corrupt(name, -1, "content does not match its name (truncated or altered)")
	}
	p, err := r.keys.openMeta(b, ad)
	if err != nil {
		return nil, corrupt(name, -1, "fails authentication")
	}
	return p, nil
}

// maxIndexFileSize bounds an index file read: about a million entries.
const maxIndexFileSize = 256 << 20

// SaveIndex stores an index file and returns its ID.
func (r *Repository) SaveIndex(ctx context.Context, f *IndexFile) (ID, error) {
	p, err := f.Encode()
	if err != nil {
		return ID{}, err
	}
	id, err := r.saveSealed(ctx, IndexPrefix, adIndex, p)
	if err != nil {
		return ID{}, fmt.Errorf("save index: %w", err)
	}
	return id, nil
}

// LoadIndex reads one index file.
func (r *Repository) LoadIndex(ctx context.Context, id ID) (*IndexFile, error) {
	p, err := r.loadSealed(ctx, IndexPrefix, id, adIndex, maxIndexFileSize)
	if err != nil {
		return nil, fmt.Errorf("load index: %w", err)
	}
	return DecodeIndexFile(IndexName(id), p)
}

// SaveSnapshot stores a snapshot manifest and returns its ID.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	s.Version = snapshotVersion
	p, err := jsonMarshal(s)
	if err != nil {
		return ID{}, err
	}
	// The label goes first: an index server checks a snapshot upload against
	// it, and a label whose snapshot never arrived is ignored by readers.
	b := seal(nil, r.keys.metadata, p, adSnap)
	id := hashObject(b)
	if err := r.SaveLabel(ctx, id, s); err != nil {
		return ID{}, err
	}
	if err := r.store.Put(ctx, SnapshotName(id), b); err != nil {
		// A label alone reads as a lost snapshot to check: take it back,
		// unless the manifest landed after all (its reply was what failed).
		// Best effort: a store that refuses deletes keeps it.
		bg := context.WithoutCancel(ctx)
		if _, gerr := r.store.Get(bg, SnapshotName(id)); errors.Is(gerr, ErrNotFound) {
			_ = r.store.Delete(bg, LabelName(id))
		}
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	return id, nil
}

// LoadSnapshot reads one snapshot manifest.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	p, err := r.loadSealed(ctx, SnapshotsPrefix, id, adSnap, maxSnapshotSize)
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return DecodeSnapshot(SnapshotName(id), p)
}

// ListIDs lists the IDs of the objects under prefix (IndexPrefix,
// SnapshotsPrefix). Names that are not IDs are reported as corrupt.
func (r *Repository) ListIDs(ctx context.Context, prefix string) ([]ID, error) {
	var ids []ID
	err := r.store.List(ctx, prefix, func(oi ObjectInfo) error {
		id, err := ParseID(strings.TrimPrefix(oi.Name, prefix))
		if err != nil {
			return corrupt(oi.Name, -1, "unexpected object name")
		}
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// MinShardPayload is the smallest data shard payload a writer splits a
// pack into, when the pack is too small to give each of the config's k
// data shards this much (FORMAT.md §9): a small pack is split into fewer
// data shards, with the config's m parity shards as always.
const MinShardPayload = 64 << 10

// DataShardsFor returns the number of data shards for a pack of n bytes
// under a config of k: the fewest that give each at least
// MinShardPayload bytes, at least 1 and at most k. A small pack then costs
// 1+m objects instead of k+m, and survives the loss of any m of them as
// before: only its parity's share of the bytes grows.
func DataShardsFor(n, k int) int {
	return max(1, min(k, (n+MinShardPayload-1)/MinShardPayload))
}

// WritePack erasure-codes a sealed pack and stores its shards. Only when
// it returns nil may an index file reference the pack. Writers that build
// the pack from frames use StoreFrames, which saves a copy.
func (r *Repository) WritePack(ctx context.Context, pack []byte) (PackInfo, error) {
	k := DataShardsFor(len(pack), r.cfg.DataShards)
	id, objs, err := shard.Encode(pack, k, r.cfg.ParityShards)
	if err != nil {
		return PackInfo{}, err
	}
	p := &EncodedPack{Info: PackInfo{ID: ID(id), Length: uint64(len(pack)), K: k, M: r.cfg.ParityShards}, objs: objs}
	if err := r.PutPack(ctx, p); err != nil {
		return PackInfo{}, err
	}
	return p.Info, nil
}

// StoreFrames builds the pack of frames straight into its shard objects
// (EncodePack) and stores them (PutPack). Only when it returns nil may an
// index file reference the pack. The PackFrames say where each frame is.
func (r *Repository) StoreFrames(ctx context.Context, frames []Frame) (PackInfo, []PackFrame, error) {
	p, err := r.EncodePack(frames)
	if err != nil {
		return PackInfo{}, nil, err
	}
	if err := r.PutPack(ctx, p); err != nil {
		return PackInfo{}, nil, err
	}
	return p.Info, p.Frames, nil
}

// PutPack stores the shard objects of an encoded pack as one batch
// (PutBatch: in parallel, or with fewer syncs where the store can). Only
// when it returns nil may an index file reference the pack.
func (r *Repository) PutPack(ctx context.Context, p *EncodedPack) error {
	names := make([]string, len(p.objs))
	for i := range names {
		names[i] = ShardName(p.Info.ID, i)
	}
	// One batch: the local directory syncs the pack's directory once
	// rather than once per shard.
	if err := PutBatch(ctx, r.store, names, p.objs); err != nil {
		return fmt.Errorf("write pack %s: %w", p.Info.ID.Short(), err)
	}
	return nil
}

// ReadFrame returns the sealed bytes of one frame. It reads only the data
// shard ranges that hold the frame; the caller opens the frame, and on any
// failure falls back to ReadPack, which verifies and reconstructs.
func (r *Repository) ReadFrame(ctx context.Context, pi PackInfo, offset, length uint32) ([]byte, error) {
	spans, err := shard.Locate(shard.NewHeader(pi.K, pi.M, pi.Length, pi.ID), int64(offset), int64(length))
	if err != nil {
		return nil, corrupt("pack "+pi.ID.String(), int64(offset), "frame outside the pack: %v", err)
	}
	if len(spans) == 1 {
		return r.store.GetRange(ctx, ShardName(pi.ID, spans[0].Shard), spans[0].Offset, spans[0].Length)
	}
	out := make([]byte, 0, length)
	for _, sp := range spans {
		b, err := r.store.GetRange(ctx, ShardName(pi.ID, sp.Shard), sp.Offset, sp.Length)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// ReadPack fetches every shard of a pack, verifies each checksum,
// reconstructs from any k good shards and verifies the pack against its ID.
// The report names shards that were missing or bad even when the pack was
// recovered.
func (r *Repository) ReadPack(ctx context.Context, pi PackInfo) ([]byte, shard.Report, error) {
	objs, err := r.fetchShards(ctx, pi)
	if err != nil {
		return nil, shard.Report{}, err
	}
	pack, rep, err := shard.Decode(pi.ID, objs)
	if err != nil {
		return nil, rep, &CorruptError{Object: "pack " + pi.ID.String(), Offset: -1, Reason: err.Error(), Hint: hintCheck, Err: err}
	}
	return pack, rep, nil
}

// RepairPack re-creates the missing or bad shards of a pack from the good
// ones and stores them. It returns the indexes it rewrote.
func (r *Repository) RepairPack(ctx context.Context, pi PackInfo) ([]int, error) {
	objs, err := r.fetchShards(ctx, pi)
	if err != nil {
		return nil, err
	}
	rebuilt, _, err := shard.Rebuild(pi.ID, objs)
	if err != nil {
		return nil, &CorruptError{Object: "pack " + pi.ID.String(), Offset: -1, Reason: err.Error(), Err: err}
	}
	var done []int
	for i, obj := range rebuilt {
		if obj == nil {
			continue
		}
		if err := r.store.Put(ctx, ShardName(pi.ID, i), obj); err != nil {
			return done, fmt.Errorf("repair pack %s shard %d: %w", pi.ID.Short(), i, err)
		}
		done = append(done, i)
	}
	return done, nil
}

// fetchShards reads all k+m shard objects in parallel; a missing one is nil.
// Errors other than "not found" abort, since they say nothing about the data.
func (r *Repository) fetchShards(ctx context.Context, pi PackInfo) ([][]byte, error) {
	objs := make([][]byte, pi.K+pi.M)
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i := range objs {
		wg.Go(func() {
			b, err := r.store.Get(ctx, ShardName(pi.ID, i))
			if err != nil && !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
			objs[i] = b
		})
	}
	wg.Wait()
	return objs, errors.Join(errs...)
}
