package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Re-encryption (FORMAT.md §4.1, "Re-encryption and retirement"): the
// primitives `strata key rotate --reencrypt` is built from. The engine
// orders them and records its progress; this file knows the keys.

// adRekey binds a re-encryption journal record (FORMAT.md §4.1).
const adRekey = "strata:rekey"

// WriteGeneration is the key generation new objects are sealed under: the
// config's key_generation (FORMAT.md §4.1).
func (r *Repository) WriteGeneration() uint32 { return r.keys.gen }

// Generations lists the generations of the keyring that opened r,
// ascending.
func (r *Repository) Generations() []uint32 {
	out := make([]uint32, len(r.ring))
	for i, g := range r.ring {
		out[i] = g.Gen
	}
	return out
}

// adOf returns the associated data of the sealed metadata object name, by
// its prefix; ok is false for objects that are not sealed metadata.
func adOf(name string) (ad string, ok bool) {
	switch {
	case strings.HasPrefix(name, IndexPrefix):
		return adIndex, true
	case strings.HasPrefix(name, SnapshotsPrefix):
		return adSnap, true
	case strings.HasPrefix(name, LogsPrefix):
		return adSegment, true
	case strings.HasPrefix(name, CheckpointsPrefix):
		return adCheckpoint, true
	case strings.HasPrefix(name, RekeyPrefix):
		return adRekey, true
	}
	return "", false
}

// metaGeneration returns the generation whose metadata key opens sealed
// (with associated data ad). A value no generation opens wraps ErrCorrupt.
func (r *Repository) metaGeneration(name string, sealed []byte, ad string) (uint32, error) {
	for i := range r.keys.gens {
		if _, err := open(nil, r.keys.gens[i].metadata, sealed, ad); err == nil {
			return r.keys.gens[i].gen, nil
		}
	}
	return 0, corrupt(name, -1, "fails authentication under every key generation")
}

// ObjectGeneration reads the sealed metadata object name (an index file,
// snapshot, segment manifest or checkpoint), checks it against its name
// and returns the generation it is sealed under.
func (r *Repository) ObjectGeneration(ctx context.Context, name string) (uint32, error) {
	ad, ok := adOf(name)
	if !ok {
		return 0, fmt.Errorf("object generation: %s is not sealed metadata", name)
	}
	b, err := r.store.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	hexID := name[strings.LastIndexByte(name, '.')+1:]
	if i := strings.LastIndexAny(hexID, "/@"); i >= 0 {
		hexID = hexID[i+1:]
	}
	if id, err := ParseID(hexID); err != nil || hashObject(b) != id {
		return 0, corrupt(name, -1, "content does not match its name (truncated or altered)")
	}
	return r.metaGeneration(name, b, ad)
}

// PackGeneration returns the generation a pack's trailer is sealed under,
// reading only its tail (two range reads). A writer seals a pack's frames
// and trailer under one generation, and ReencryptPack rewrites all of
// them, so the trailer speaks for the pack.
func (r *Repository) PackGeneration(ctx context.Context, pi PackInfo) (uint32, error) {
	name := "pack " + pi.ID.String()
	const tailSize = uint64(packTailSize)
	if pi.Length < tailSize {
		return 0, corrupt(name, -1, "pack of %d bytes is shorter than its tail", pi.Length)
	}
	tail, err := r.ReadFrame(ctx, pi, uint32(pi.Length-tailSize), uint32(tailSize))
	if err != nil {
		return 0, err
	}
	if string(tail[4:]) != packMagic {
		return 0, corrupt(name, -1, "no pack magic at the end")
	}
	tlen := uint64(binary.LittleEndian.Uint32(tail))
	if tlen > pi.Length-tailSize {
		return 0, corrupt(name, -1, "trailer length %d exceeds the pack", tlen)
	}
	sealed, err := r.ReadFrame(ctx, pi, uint32(pi.Length-tailSize-tlen), uint32(tlen))
	if err != nil {
		return 0, err
	}
	return r.metaGeneration(name, sealed, adTrailer)
}

// ReencryptPack reads a whole pack (verifying and reconstructing it as
// ReadPack does), seals each frame's plaintext again and the trailer under
// the write generation, and stores the new pack's shards. The layout is
// unchanged: every frame keeps its offset and sealed length (the same
// cipher adds the same nonce and tag), so index entries and segment
// frames stay valid with only the pack swapped. Frames are opened, not
// decompressed: blob bytes are never re-chunked or re-compressed.
func (r *Repository) ReencryptPack(ctx context.Context, pi PackInfo) (PackInfo, error) {
	pack, _, err := r.ReadPack(ctx, pi)
	if err != nil {
		return PackInfo{}, err
	}
	name := "pack " + pi.ID.String()
	pfs, err := r.ParseTrailer(name, pack)
	if err != nil {
		return PackInfo{}, err
	}
	frames := make([]Frame, len(pfs))
	for i, pf := range pfs {
		plain, err := r.keys.openData(pack[pf.Offset:pf.Offset+pf.Length], adFrame)
		if err != nil {
			return PackInfo{}, corrupt(name, int64(pf.Offset), "frame fails authentication under every key generation")
		}
		frames[i] = Frame{Blobs: pf.Blobs, Sealed: seal(nil, r.keys.data, plain, adFrame)}
	}
	out, err := r.EncodePack(frames)
	if err != nil {
		return PackInfo{}, err
	}
	for i, npf := range out.Frames {
		if npf.Offset != pfs[i].Offset || npf.Length != pfs[i].Length {
			return PackInfo{}, fmt.Errorf("reencrypt %s: frame %d moved (%d+%d, was %d+%d): the cipher changed", name, i, npf.Offset, npf.Length, pfs[i].Offset, pfs[i].Length)
		}
	}
	if out.Info.Length != pi.Length {
		return PackInfo{}, fmt.Errorf("reencrypt %s: %d bytes, was %d", name, out.Info.Length, pi.Length)
	}
	if err := r.PutPack(ctx, out); err != nil {
		return PackInfo{}, err
	}
	return out.Info, nil
}

// SealedObject is a metadata object sealed under the write generation and
// not yet stored: its name (a hash of Bytes) is known before the write,
// so a journal can record it first.
type SealedObject struct {
	Name  string
	Bytes []byte
}

// SealIndex seals an index file under the write generation.
func (r *Repository) SealIndex(f *IndexFile) (SealedObject, error) {
	p, err := f.Encode()
	if err != nil {
		return SealedObject{}, err
	}
	b := seal(nil, r.keys.metadata, p, adIndex)
	return SealedObject{Name: IndexName(hashObject(b)), Bytes: b}, nil
}

// SealSnapshot seals a snapshot manifest under the write generation.
func (r *Repository) SealSnapshot(s *Snapshot) (SealedObject, error) {
	s.Version = snapshotVersion
	p, err := jsonMarshal(s)
	if err != nil {
		return SealedObject{}, err
	}
	b := seal(nil, r.keys.metadata, p, adSnap)
	return SealedObject{Name: SnapshotName(hashObject(b)), Bytes: b}, nil
}

// SealCheckpoint seals a checkpoint under the write generation.
func (r *Repository) SealCheckpoint(c *Checkpoint) (SealedObject, error) {
	if err := ValidStream(c.Stream); err != nil {
		return SealedObject{}, err
	}
	c.Version = checkpointVersion
	p, err := jsonMarshal(c)
	if err != nil {
		return SealedObject{}, err
	}
	b := seal(nil, r.keys.metadata, p, adCheckpoint)
	return SealedObject{Name: CheckpointName(c.Stream, hashObject(b)), Bytes: b}, nil
}

// SealSegment seals a segment manifest under the write generation.
func (r *Repository) SealSegment(s *Segment) (SealedObject, SegmentKey, error) {
	s.Version = segmentVersion
	s.Encoding = EventsEncoding
	if err := s.validate(); err != nil {
		return SealedObject{}, SegmentKey{}, err
	}
	p, err := jsonMarshal(s)
	if err != nil {
		return SealedObject{}, SegmentKey{}, err
	}
	b := seal(nil, r.keys.metadata, p, adSegment)
	k := s.Key(hashObject(b))
	return SealedObject{Name: k.Name(), Bytes: b}, k, nil
}

// SealRekey seals a re-encryption journal record's JSON.
func (r *Repository) SealRekey(p []byte) SealedObject {
	b := seal(nil, r.keys.metadata, p, adRekey)
	return SealedObject{Name: RekeyPrefix + hashObject(b).String(), Bytes: b}
}

// OpenRekey reads and opens a journal record.
func (r *Repository) OpenRekey(ctx context.Context, name string) ([]byte, error) {
	id, err := ParseID(strings.TrimPrefix(name, RekeyPrefix))
	if err != nil {
		return nil, corrupt(name, -1, "not a journal record name")
	}
	return r.loadSealed(ctx, RekeyPrefix, id, adRekey, 1<<20)
}

// PutSealed stores a sealed object (with its copy, where it has one).
func (r *Repository) PutSealed(ctx context.Context, o SealedObject) error {
	return r.store.Put(ctx, o.Name, o.Bytes)
}

// RetireReport says what RetireGenerations did.
type RetireReport struct {
	Kept      []uint32 `json:"kept"`      // generations every key file holds afterwards
	Retired   []uint32 `json:"retired"`   // generations no key file holds any more
	Rewrapped []string `json:"rewrapped"` // key files written with the smaller keyring
	Removed   []string `json:"removed"`   // key files they replace
}

// RetireGenerations re-wraps every key file with a keyring of generation 0
// (the master key: blob IDs, the chunker secrets and the config's sealing
// stay derived from it) and the write generation only, and deletes the old
// key files (FORMAT.md §4.1, step 6 of re-encryption). The caller MUST
// have re-encrypted every object first: what is sealed under a retired
// generation can no longer be read. passwords MUST hold every key file's
// password, as for RotateKeys. The steps (store the new file, delete the
// old one, file by file) keep every password able to open the repository
// at any interruption, and a rerun finishes.
func (r *Repository) RetireGenerations(ctx context.Context, passwords [][]byte) (RetireReport, error) {
	var rep RetireReport
	g := r.cfg.KeyGeneration
	if g == 0 {
		return rep, errors.New("key retire: the repository was never rotated")
	}
	var target Keyring
	for _, k := range r.ring {
		if k.Gen == 0 || k.Gen == g {
			target = append(target, k)
		}
	}
	if len(target) != 2 {
		return rep, fmt.Errorf("key retire: the keyring lacks generation %d", g)
	}
	slots, err := r.openKeySlots(ctx, passwords)
	if err != nil {
		return rep, err
	}
	retired := map[uint32]bool{}
	for _, s := range slots {
		if !s.ring.extends(target) {
			return rep, corrupt(s.name, -1, "its keyring lacks generation 0 or %d of the repository's", g)
		}
		for _, k := range s.ring {
			if k.Gen != 0 && k.Gen != g {
				retired[k.Gen] = true
			}
		}
	}
	mine, rewrapped, removed, err := r.rewrapKeyFiles(ctx, slots, target, passwords, "key retire")
	rep.Rewrapped, rep.Removed = rewrapped, removed
	if err != nil {
		return rep, err
	}
	keys, err := deriveRing(target, r.cfg.Cipher, g)
	if err != nil {
		return rep, err
	}
	r.keys, r.ring, r.keyName = keys, target, mine
	rep.Kept = []uint32{0, g}
	for gen := range retired {
		rep.Retired = append(rep.Retired, gen)
	}
	slices.Sort(rep.Retired)
	return rep, nil
}
