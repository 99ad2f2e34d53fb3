package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Export formats: how a backup is chunked.
const (
	FormatRaw    = "raw"    // opaque dump: Rabin chunks, about 1 MiB
	FormatNDJSON = "ndjson" // one record a line: record-aligned chunks of a few KiB
)

// BackupOptions describe one backup. The zero value of every tuning field is
// a sensible default; Stream is required.
type BackupOptions struct {
	Stream   string
	Format   string    // FormatRaw (default) or FormatNDJSON
	Time     time.Time // consistent point; default now
	Position *uint64   // change-log position of the consistent point, if known
	Host     string
	// Parent is the snapshot to deduplicate against, normally the latest of
	// the same stream; nil stores every chunk anew.
	Parent *index.SnapshotRef
	// Describe, if set, is called once the export has been read, before the
	// manifest is written, to add what the caller learned about the export
	// (KeyField and Sorted of an ndjson export).
	Describe func(*repo.Snapshot)

	// Tuning: none of these changes what a restore returns.
	Workers    int               // compression workers; default GOMAXPROCS
	Level      zstd.EncoderLevel // default zstd.SpeedFastest
	FrameSize  int               // plaintext bytes compressed together; default 256 KiB
	PackSize   int               // target sealed pack size; default 4 MiB
	IndexFlush int               // entries per index file; default 65536
	Uploads    int               // packs uploaded at once; default 2
	Progress   *Progress         // counters updated as the backup runs; may be nil

	// Logf, when set, receives notes about the backup (how far retention
	// was extended, referenced objects found missing); nil discards them.
	Logf func(format string, args ...any)
}

// Progress counts a running backup. Fields are updated atomically.
type Progress struct {
	BytesRead atomic.Int64
	// Blobs and NewBlobs count data chunks, and of them those not yet in
	// the repository: NewBlobs ≤ Blobs at every instant. (The snapshot's
	// NewBlobs also counts the new list blobs of its tree.)
	Blobs       atomic.Int64
	NewBlobs    atomic.Int64
	StoredBytes atomic.Int64 // sealed frame bytes written, before parity
}

// validate checks the options and fills the defaults of zero fields (the
// one way options get their defaults in this module).
func (o *BackupOptions) validate() error {
	if err := repo.ValidStream(o.Stream); err != nil {
		return err
	}
	switch o.Format {
	case "":
		o.Format = FormatRaw
	case FormatRaw, FormatNDJSON:
	default:
		return fmt.Errorf("unknown format %q (want %s or %s)", o.Format, FormatRaw, FormatNDJSON)
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	o.Time = o.Time.UTC()
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Level == 0 {
		o.Level = zstd.SpeedFastest
	}
	if o.FrameSize <= 0 {
		o.FrameSize = 256 << 10
	}
	o.FrameSize = min(o.FrameSize, repo.MaxFrameRaw/2)
	if o.PackSize <= 0 {
		o.PackSize = 4 << 20
	}
	if o.IndexFlush <= 0 {
		o.IndexFlush = 1 << 16
	}
	if o.Uploads <= 0 {
		o.Uploads = 2
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	return nil
}

func newChunker(r *repo.Repository, src io.Reader, format string) chunk.Chunker {
	c := r.Config()
	if format == FormatNDJSON {
		return chunk.NewRecords(src, [32]byte(c.RecordSeed), chunk.RecordParams{Min: c.RecordMinSize, Avg: c.RecordAvgSize, Max: c.RecordMaxSize, Delim: '\n'})
	}
	return chunk.NewRabin(src, c.ChunkerPolynomial, chunk.RabinParams{Min: c.RawMinSize, Max: c.RawMaxSize, AverageBits: c.RawAverageBits})
}

// batch is a run of consecutive chunks hashed together by one worker.
type batch struct {
	chunks [][]byte
	ids    []repo.ID
}

// frameJob is a run of new blobs to compress and seal together.
type frameJob struct {
	infos []repo.BlobInfo
	blobs [][]byte
}

// Backup reads src to its end and stores it as a new snapshot of o.Stream.
// The snapshot manifest is written only after every pack and index file it
// depends on is durable, so a failure at any point leaves the repository
// consistent (at worst with unreferenced packs). It returns the snapshot ID.
//
// The stages, in the order data flows through them, each a method of
// backupRun joined to the next by a channel: readChunks → hashBatch →
// dedupAndGroup (in order, on the calling goroutine) → sealFrames →
// assemblePacks → storePacks → writeSnapshot.
func Backup(ctx context.Context, r *repo.Repository, src io.Reader, o BackupOptions) (repo.ID, *repo.Snapshot, error) {
	if err := o.validate(); err != nil {
		return repo.ID{}, nil, err
	}
	known, parentIndexes, err := dedupBase(ctx, r, o.Parent)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("read parent snapshot: %w", err)
	}
	c, err := storeContent(ctx, r, src, &o, known)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", err)
	}
	return writeSnapshot(ctx, r, &o, c, parentIndexes)
}

// KnownSet decides which blobs a content store writes: Add MUST report
// true exactly when id is not yet stored (nor already taken by this run),
// and from then on report false for it. *index.IDSet is one.
type KnownSet interface {
	Add(id repo.ID) bool
}

// Content is what StoreContent wrote: the tree of the content's blobs and
// the index files that locate the new ones.
type Content struct {
	Tree        repo.Tree
	Size        int64 // plaintext bytes
	Blobs       int64 // data blobs in the tree
	NewBlobs    int64 // blobs (data and list) written by this run
	StoredBytes int64 // sealed frame bytes written, before parity
	Indexes     []repo.ID
	Index       repo.IndexFile // every pack and entry of Indexes, for callers that keep a live index
}

// StoreContent chunks src (FormatRaw or FormatNDJSON in o.Format), stores
// the blobs known does not hold, and returns the content's tree. It writes
// packs and index files but no manifest: the caller references the tree
// (a snapshot, or an S3 object event). On error nothing references what
// was written, and the blobs known took during the run are not stored
// (callers with a shared set MUST discard it or its additions).
// o.Stream is not used.
func StoreContent(ctx context.Context, r *repo.Repository, src io.Reader, o BackupOptions, known KnownSet) (Content, error) {
	if o.Stream == "" {
		o.Stream = "content"
	}
	if err := o.validate(); err != nil {
		return Content{}, err
	}
	return storeContent(ctx, r, src, &o, known)
}

// storeContent runs the backup's stages, from reading src to writing index
// files; o is validated.
func storeContent(ctx context.Context, r *repo.Repository, src io.Reader, o *BackupOptions, known KnownSet) (Content, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stored := o.Progress.StoredBytes.Load()
	b := &backupRun{
		ctx: ctx, fail: cancel, r: r, o: o, known: known,
		frameCh:  make(chan frameJob, o.Workers),
		sealedCh: make(chan repo.Frame, o.Workers),
		packCh:   make(chan []repo.Frame, 1),
	}
	b.batches = newOrdered(o.Workers, 2*o.Workers, b.hashBatch)
	var wg sync.WaitGroup
	wg.Go(func() { b.readChunks(src) })
	var sealers sync.WaitGroup
	for range o.Workers {
		sealers.Go(b.sealFrames)
	}
	go func() { sealers.Wait(); close(b.sealedCh) }()
	wg.Go(b.assemblePacks)
	var uploaders sync.WaitGroup
	for range o.Uploads {
		uploaders.Go(b.storePacks)
	}
	wg.Go(uploaders.Wait)

	root, err := b.dedupAndGroup()
	if err != nil {
		b.fail(err)
	}
	close(b.frameCh)
	b.batches.drain() // after a failure, so readChunks can exit
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		if b.uploadErr != nil {
			return Content{}, b.uploadErr
		}
		return Content{}, cause
	}
	if err := b.flushIndex(); err != nil {
		return Content{}, err
	}
	return Content{Tree: root, Size: b.size, Blobs: b.tree.Count(), NewBlobs: b.newBlobs,
		StoredBytes: o.Progress.StoredBytes.Load() - stored, Indexes: b.newIndexes, Index: b.allIndex}, nil
}

// backupRun is one running Backup: its options, its channels from stage to
// stage, and what the stages accumulate.
type backupRun struct {
	ctx   context.Context
	fail  context.CancelCauseFunc // stops every stage with the first error
	r     *repo.Repository
	o     *BackupOptions
	known KnownSet // blobs the parent or this backup already stored

	batches  *ordered[batch]   // readChunks → hashBatch → dedupAndGroup, in input order
	frameCh  chan frameJob     // dedupAndGroup → sealFrames
	sealedCh chan repo.Frame   // sealFrames → assemblePacks
	packCh   chan []repo.Frame // assemblePacks → storePacks

	// dedupAndGroup's own state (one goroutine).
	tree                 *repo.TreeBuilder
	dataFrame, listFrame frameJob
	dataSize, listSize   int
	newBlobs, size       int64

	// storePacks' shared state, under uploadMu.
	uploadMu     sync.Mutex
	uploadErr    error
	indexEntries []repo.IndexEntry
	indexPacks   []repo.PackInfo
	newIndexes   []repo.ID
	allIndex     repo.IndexFile // every index file written, for StoreContent's callers
}

// readChunks reads and chunks src, in batches of about 1 MiB, and submits
// each batch to the hashers, whose results dedupAndGroup takes in order.
func (b *backupRun) readChunks(src io.Reader) {
	defer b.batches.close()
	ch := newChunker(b.r, src, b.o.Format)
	for {
		bt := batch{}
		size := 0
		for size < 1<<20 {
			c, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.fail(fmt.Errorf("read input: %w", err))
				return
			}
			bt.chunks = append(bt.chunks, c)
			size += len(c)
		}
		if len(bt.chunks) == 0 {
			return
		}
		b.o.Progress.BytesRead.Add(int64(size))
		if !b.batches.submit(b.ctx, bt) {
			return
		}
		if size < 1<<20 {
			return // the chunker hit EOF
		}
	}
}

// hashBatch computes the keyed IDs of a batch's chunks, on one of
// Workers goroutines.
func (b *backupRun) hashBatch(bt *batch) {
	bt.ids = make([]repo.ID, len(bt.chunks))
	for i, c := range bt.chunks {
		bt.ids[i] = b.r.BlobID(repo.DataBlob, c)
	}
}

// dedupAndGroup takes the batches in input order, deduplicates their
// chunks, builds the blob tree, and groups new blobs into frames. Data and
// list blobs go into separate frames so that walking a tree reads list
// frames only. It returns the tree's root.
func (b *backupRun) dedupAndGroup() (repo.Tree, error) {
	b.tree = b.r.NewTreeBuilder(func(data []byte) (repo.ID, error) {
		id := b.r.BlobID(repo.ListBlob, data)
		b.store(repo.ListBlob, id, data)
		return id, nil
	})
	for {
		bt, ok, err := b.batches.next(b.ctx)
		if !ok {
			break
		}
		if err != nil {
			return repo.Tree{}, err
		}
		for i, c := range bt.chunks {
			b.size += int64(len(c))
			// Counted before store, so a reader never sees more new
			// chunks than chunks.
			b.o.Progress.Blobs.Add(1)
			b.store(repo.DataBlob, bt.ids[i], c)
			if err := b.tree.Add(bt.ids[i]); err != nil {
				return repo.Tree{}, err
			}
		}
	}
	if b.ctx.Err() != nil {
		return repo.Tree{}, context.Cause(b.ctx)
	}
	root, err := b.tree.Finish()
	if err != nil {
		return repo.Tree{}, err
	}
	b.emit(&b.dataFrame, &b.dataSize)
	b.emit(&b.listFrame, &b.listSize)
	return root, nil
}

// store adds a blob to the frame of its type unless it is already known.
func (b *backupRun) store(t repo.BlobType, id repo.ID, data []byte) {
	if !b.known.Add(id) {
		return
	}
	b.newBlobs++
	if t == repo.DataBlob {
		b.o.Progress.NewBlobs.Add(1) // Progress counts data chunks; newBlobs the list blobs too
	}
	j, size := &b.dataFrame, &b.dataSize
	if t == repo.ListBlob {
		j, size = &b.listFrame, &b.listSize
	}
	j.infos = append(j.infos, repo.BlobInfo{Type: t, ID: id, Len: uint32(len(data))})
	j.blobs = append(j.blobs, data)
	*size += len(data)
	if *size >= b.o.FrameSize {
		b.emit(j, size)
	}
}

// emit hands a frame's blobs to the sealers.
func (b *backupRun) emit(j *frameJob, size *int) {
	if len(j.blobs) == 0 {
		return
	}
	select {
	case b.frameCh <- *j:
	case <-b.ctx.Done():
	}
	*j, *size = frameJob{}, 0
}

// sealFrames compresses and seals frames, in parallel with the other sealers.
func (b *backupRun) sealFrames() {
	for j := range b.frameCh {
		f, err := b.r.SealFrame(j.infos, j.blobs, b.o.Level)
		if err != nil {
			b.fail(err)
			continue
		}
		select {
		case b.sealedCh <- f:
		case <-b.ctx.Done():
		}
	}
}

// assemblePacks gathers sealed frames into packs of about PackSize.
func (b *backupRun) assemblePacks() {
	defer close(b.packCh)
	var cur []repo.Frame
	size := 0
	for f := range b.sealedCh {
		cur = append(cur, f)
		size += len(f.Sealed)
		b.o.Progress.StoredBytes.Add(int64(len(f.Sealed)))
		if size >= b.o.PackSize {
			select {
			case b.packCh <- cur:
			case <-b.ctx.Done():
			}
			cur, size = nil, 0
		}
	}
	if len(cur) > 0 && b.ctx.Err() == nil {
		b.packCh <- cur
	}
}

// storePacks seals, erasure-codes and stores packs and writes an index
// file every IndexFlush entries. Uploads of them run at once (each with
// its shards in parallel), so one pack's fsyncs or round trips overlap the
// next one's; memory stays at about Uploads+2 packs.
func (b *backupRun) storePacks() {
	for frames := range b.packCh {
		if b.ctx.Err() != nil {
			continue
		}
		pack, pfs, err := b.r.BuildPack(frames)
		var pi repo.PackInfo
		if err == nil {
			pi, err = b.r.WritePack(b.ctx, pack)
		}
		b.uploadMu.Lock()
		if err == nil {
			b.indexPacks = append(b.indexPacks, pi)
			b.indexEntries = append(b.indexEntries, repo.EntriesFor(pi.ID, pfs)...)
			if len(b.indexEntries) >= b.o.IndexFlush {
				err = b.flushIndex()
			}
		}
		if err != nil && b.uploadErr == nil {
			b.uploadErr = err
			b.fail(err)
		}
		b.uploadMu.Unlock()
	}
}

// flushIndex writes the index entries gathered so far as an index file.
// Callers hold uploadMu, or run after every uploader has ended.
func (b *backupRun) flushIndex() error {
	if len(b.indexPacks) == 0 {
		return nil
	}
	id, err := b.r.SaveIndex(b.ctx, &repo.IndexFile{Packs: b.indexPacks, Entries: b.indexEntries})
	if err != nil {
		return err
	}
	b.newIndexes = append(b.newIndexes, id)
	b.allIndex.Packs = append(b.allIndex.Packs, b.indexPacks...)
	b.allIndex.Entries = append(b.allIndex.Entries, b.indexEntries...)
	b.indexEntries, b.indexPacks = nil, nil
	return nil
}

// writeSnapshot writes the manifest of stored content, last, and then
// extends retention.
func writeSnapshot(ctx context.Context, r *repo.Repository, o *BackupOptions, c Content, parentIndexes []repo.ID) (repo.ID, *repo.Snapshot, error) {
	snap := &repo.Snapshot{
		Stream: o.Stream, Time: o.Time, Created: time.Now().UTC(), Format: o.Format,
		Size: c.Size, Blobs: c.Blobs, Tree: c.Tree, Host: o.Host, Position: o.Position,
		Indexes:  append(append([]repo.ID{}, parentIndexes...), c.Indexes...),
		NewBlobs: c.NewBlobs, StoredBytes: o.Progress.StoredBytes.Load(),
	}
	if o.Parent != nil {
		p := o.Parent.ID
		snap.Parent = &p
	}
	if o.Describe != nil {
		o.Describe(snap)
	}
	id, err := r.SaveSnapshot(ctx, snap)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("backup: packs and index are stored but the snapshot is not: %w", err)
	}
	// The new snapshot keeps its parent's packs alive: their retention must
	// last as long as its own (FORMAT.md §17).
	if err := retainAfterSnapshot(ctx, r, o.Logf); err != nil {
		return id, snap, fmt.Errorf("snapshot %s is stored, but %w", id.Short(), err)
	}
	return id, snap, nil
}

// retainAfterSnapshot runs RetainReferenced and reports it through logf.
func retainAfterSnapshot(ctx context.Context, r *repo.Repository, logf func(string, ...any)) error {
	rep, done, err := RetainReferenced(ctx, r)
	if err != nil || !done || logf == nil {
		return err
	}
	rep.Log(logf)
	return nil
}

// dedupBase collects every blob ID of the parent snapshot (data and list
// blobs) and the index files that locate them.
func dedupBase(ctx context.Context, r *repo.Repository, parent *index.SnapshotRef) (*index.IDSet, []repo.ID, error) {
	if parent == nil {
		return index.NewIDSet(1 << 16), nil, nil
	}
	s := parent.Snapshot
	known := index.NewIDSet(int(s.Blobs + s.Blobs/3 + 1024))
	// Only list blobs are read to walk the tree; their locations are all that is kept.
	ix, err := loadSnapshotIndex(ctx, r, s, func(e repo.IndexEntry) bool { return e.Type == repo.ListBlob })
	if err != nil {
		return nil, nil, err
	}
	br := newBlobReader(r, ix.BlobIndex, 16)
	br.damaged = ix.damaged
	err = walkTree(ctx, br, s.Tree, func(id repo.ID) error { known.Add(id); return nil }, func(id repo.ID) error { known.Add(id); return nil })
	if errors.Is(err, ErrMissingBlob) {
		return nil, nil, fmt.Errorf("%w (the parent snapshot %s is damaged; run 'strata check')", err, parent.ID.Short())
	}
	return known, s.Indexes, err
}
