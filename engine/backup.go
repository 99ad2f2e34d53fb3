package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
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
	// KeyMap, when set, learns the keys of the export's chunks; a snapshot
	// that Describe marks sorted then gets a key map (FORMAT.md §26). A key
	// map that cannot be written is reported through Logf, never fails the
	// backup: readers do without.
	KeyMap KeyMapSource

	// Tuning: none of these changes what a restore returns.
	Workers int // compression workers; default GOMAXPROCS
	// Level is the zstd level of every frame. By default a frame of data
	// blobs is compressed at zstd.SpeedBetterCompression while at most a
	// tenth of the bytes read so far were new, at zstd.SpeedDefault while
	// at most a quarter were (a backup against its parent: few frames, so
	// the better ratio costs little time), else at zstd.SpeedFastest
	// (bench/RESULTS.md, "Compression options").
	Level      zstd.EncoderLevel
	FrameSize  int // plaintext bytes compressed together; default 256 KiB
	PackSize   int // target sealed pack size; default 4 MiB
	IndexFlush int // entries per index file; default 65536
	Uploads    int // packs uploaded at once; default 2
	// CheckpointEvery is how often a running backup indexes the packs it
	// has stored and names them in a checkpoint, so that the next backup of
	// the stream resumes after an interruption (FORMAT.md §12.1); default
	// 5 s, and at least a twentieth of the time the backup has run.
	CheckpointEvery time.Duration
	KeyMapLeaf      int       // chunks a key map leaf lists; default DefaultKeyMapLeaf
	Progress        *Progress // counters updated as the backup runs; may be nil

	// Logf, when set, receives notes about the backup (how far retention
	// was extended, referenced objects found missing); nil discards them.
	Logf func(format string, args ...any)

	adaptiveLevel bool             // Level was left to the default: choose it per frame
	keyMap        *keyMapCollector // KeyMap and the IDs of the chunks it saw
	// dropIndex: Content.Index is not wanted (a Backup without a key map),
	// so the run does not keep every entry it indexed until it ends.
	dropIndex bool
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
		o.Level, o.adaptiveLevel = zstd.SpeedFastest, true
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
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 5 * time.Second
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
	input  int  // which input of the run the chunks are from
	end    bool // the input's last batch
	chunks [][]byte
	ids    []repo.ID
}

// packJob is the frames of one pack; cut marks a pack sent before it was
// full because the input stalled, which a checkpoint follows at once.
type packJob struct {
	frames []repo.Frame
	cut    bool
}

// frameJob is a run of new blobs to compress and seal together.
type frameJob struct {
	infos []repo.BlobInfo
	blobs [][]byte
	level zstd.EncoderLevel
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
	res := resumeFrom(ctx, r, o.Stream, o.Parent, known, o.Logf)
	ck := &checkpointer{stream: o.Stream, carried: res.indexes, every: o.CheckpointEvery, start: time.Now(), last: time.Now(), logf: o.Logf}
	if o.Parent != nil {
		p := o.Parent.ID
		ck.parent = &p
	}
	if len(res.consumed) > 0 {
		if o.Logf != nil {
			o.Logf("resuming: %d blobs in %d index files of %d interrupted backup(s) are reused", res.blobs, len(res.indexes), len(res.consumed))
		}
		// A checkpoint of this run names the files first, so the ones read
		// can go and their packs stay referenced all along.
		if err := ck.save(ctx, r, nil); err != nil {
			return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", err)
		}
		deleteCheckpoints(ctx, r, o.Stream, res.consumed, &ck.noDel, o.Logf)
	}
	if o.KeyMap != nil {
		o.keyMap = &keyMapCollector{src: o.KeyMap}
	}
	// Only the key map reads the run's entries back (writeKeyMap): without
	// one, holding them would grow the backup's memory with the export.
	o.dropIndex = o.keyMap == nil
	c, err := storeContent(ctx, r, src, &o, known, ck)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", err)
	}
	id, snap, err := writeSnapshot(ctx, r, &o, c, slices.Concat(parentIndexes, res.indexes))
	if snap != nil {
		// The snapshot references what the checkpoints kept.
		ck.deleteOwn(ctx, r)
	}
	return id, snap, err
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
	Index       repo.IndexFile // every pack and entry of Indexes, for callers that keep a live index (left empty by Backup without a key map)
}

// StoreContent chunks src (FormatRaw or FormatNDJSON in o.Format), stores
// the blobs known does not hold, and returns the content's tree. It writes
// packs and index files but no manifest: the caller references the tree
// (a snapshot, or an S3 object event). On error nothing references what
// was written, and the blobs known took during the run are not stored
// (callers with a shared set MUST discard it or its additions).
// o.Stream is not used.
func StoreContent(ctx context.Context, r *repo.Repository, src io.Reader, o BackupOptions, known KnownSet) (Content, error) {
	cs, err := StoreContents(ctx, r, []ContentInput{{Src: src, Format: o.Format}}, o, known)
	if err != nil {
		return Content{}, err
	}
	return cs[0], nil
}

// ContentInput is one content of a StoreContents call.
type ContentInput struct {
	Src    io.Reader
	Format string // FormatRaw (default) or FormatNDJSON; o.Format is not used
}

// StoreContents is StoreContent for several contents at once: each gets its
// own tree, and their new blobs share frames, packs and index files, so many
// small contents cost a few pack writes instead of a few each. That is what
// lets the S3 gateway commit concurrent small PUTs as one group. Every
// returned Content carries the run's index files and stored bytes; Size,
// Blobs and NewBlobs are each content's own.
func StoreContents(ctx context.Context, r *repo.Repository, inputs []ContentInput, o BackupOptions, known KnownSet) ([]Content, error) {
	if o.Stream == "" {
		o.Stream = "content"
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	for i := range inputs {
		if inputs[i].Format == "" {
			inputs[i].Format = FormatRaw
		}
		if f := inputs[i].Format; f != FormatRaw && f != FormatNDJSON {
			return nil, fmt.Errorf("unknown format %q (want %s or %s)", f, FormatRaw, FormatNDJSON)
		}
	}
	return storeContents(ctx, r, inputs, &o, known, nil)
}

// storeContent runs the backup's stages on one input, in o.Format, and
// checkpoints through ck (none when nil).
func storeContent(ctx context.Context, r *repo.Repository, src io.Reader, o *BackupOptions, known KnownSet, ck *checkpointer) (Content, error) {
	cs, err := storeContents(ctx, r, []ContentInput{{Src: src, Format: o.Format}}, o, known, ck)
	if err != nil {
		return Content{}, err
	}
	return cs[0], nil
}

// storeContents runs the backup's stages, from reading the inputs to
// writing index files, and checkpoints through ck (none when nil); o and
// the inputs' formats are validated.
func storeContents(ctx context.Context, r *repo.Repository, inputs []ContentInput, o *BackupOptions, known KnownSet, ck *checkpointer) ([]Content, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stored := o.Progress.StoredBytes.Load()
	b := &backupRun{
		ctx: ctx, fail: cancel, r: r, o: o, known: known, ckpt: ck,
		frameCh:  make(chan frameJob, o.Workers),
		sealedCh: make(chan repo.Frame, o.Workers),
		packCh:   make(chan packJob, 1),
		contents: make([]Content, len(inputs)),
	}
	b.batches = newOrdered(o.Workers, 2*o.Workers, b.hashBatch)
	var wg sync.WaitGroup
	wg.Go(func() { b.readChunks(inputs) })
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
	uploaded := make(chan struct{})
	wg.Go(func() { uploaders.Wait(); close(uploaded) })
	if ck != nil {
		wg.Go(func() { b.checkpoints(uploaded) })
	}

	err := b.dedupAndGroup()
	if err != nil {
		b.fail(err)
	}
	close(b.frameCh)
	b.batches.drain() // after a failure, so readChunks can exit
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		if b.uploadErr != nil {
			return nil, b.uploadErr
		}
		return nil, cause
	}
	if err := b.flushIndex(); err != nil {
		return nil, err
	}
	for i := range b.contents {
		c := &b.contents[i]
		c.StoredBytes, c.Indexes, c.Index = o.Progress.StoredBytes.Load()-stored, b.newIndexes, b.allIndex
	}
	return b.contents, nil
}

// backupRun is one running Backup: its options, its channels from stage to
// stage, and what the stages accumulate.
type backupRun struct {
	ctx   context.Context
	fail  context.CancelCauseFunc // stops every stage with the first error
	r     *repo.Repository
	o     *BackupOptions
	known KnownSet // blobs the parent or this backup already stored
	ckpt  *checkpointer

	batches  *ordered[batch] // readChunks → hashBatch → dedupAndGroup, in input order
	frameCh  chan frameJob   // dedupAndGroup → sealFrames
	sealedCh chan repo.Frame // sealFrames → assemblePacks
	packCh   chan packJob    // assemblePacks → storePacks

	// dedupAndGroup's own state (one goroutine).
	tree                 *repo.TreeBuilder // of the input being read
	contents             []Content         // one per input, filled as each input ends
	dataFrame, listFrame frameJob
	dataSize, listSize   int
	newBlobs             int64 // of the input being read
	size                 int64 // bytes read in the run, every input
	newData              int64 // bytes of new data blobs in the run

	// storePacks' shared state, under uploadMu.
	uploadMu     sync.Mutex
	uploadErr    error
	indexEntries []repo.IndexEntry
	indexPacks   []repo.PackInfo
	newIndexes   []repo.ID
	allIndex     repo.IndexFile // every index file written, for StoreContent's callers
}

// batchBytes sizes the batches of chunks hashed together. Up to about
// 3×Workers batches are in flight between the reader and dedupAndGroup (in
// the hashers' queue and waiting in order), so their size is most of the
// chunk bytes a backup holds: 256 KiB (~100 record chunks) keeps that near
// 2 MiB at two workers, where 1 MiB batches held ~7 MiB, and a batch is
// still far more work than its hand-offs.
const batchBytes = 256 << 10

// readChunks reads and chunks the inputs in turn, in batches of about
// batchBytes, and submits each batch to the hashers, whose results dedupAndGroup
// takes in order. The last batch of each input (possibly empty) is marked.
func (b *backupRun) readChunks(inputs []ContentInput) {
	defer b.batches.close()
	for i, in := range inputs {
		ch := newChunker(b.r, in.Src, in.Format)
		for end := false; !end; {
			bt := batch{input: i}
			size := 0
			for size < batchBytes {
				c, err := ch.Next()
				if err == io.EOF {
					end = true
					break
				}
				if err != nil {
					b.fail(fmt.Errorf("read input: %w", err))
					return
				}
				bt.chunks = append(bt.chunks, c)
				size += len(c)
			}
			bt.end = end
			b.o.Progress.BytesRead.Add(int64(size))
			if !b.batches.submit(b.ctx, bt) {
				return
			}
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
// chunks, builds each input's blob tree, and groups new blobs into frames.
// Data and list blobs go into separate frames so that walking a tree reads
// list frames only. It fills b.contents' trees and counts.
func (b *backupRun) dedupAndGroup() error {
	newTree := func() {
		b.tree = b.r.NewTreeBuilder(func(data []byte) (repo.ID, error) {
			id := b.r.BlobID(repo.ListBlob, data)
			b.store(repo.ListBlob, id, data)
			return id, nil
		})
		b.newBlobs = 0
	}
	newTree()
	for {
		bt, ok, err := b.batches.next(b.ctx)
		if !ok {
			break
		}
		if err != nil {
			return err
		}
		c := &b.contents[bt.input]
		for i, ch := range bt.chunks {
			c.Size += int64(len(ch))
			b.size += int64(len(ch))
			// Counted before store, so a reader never sees more new
			// chunks than chunks.
			b.o.Progress.Blobs.Add(1)
			b.store(repo.DataBlob, bt.ids[i], ch)
			if b.o.keyMap != nil {
				b.o.keyMap.chunk(bt.ids[i], ch)
			}
			if err := b.tree.Add(bt.ids[i]); err != nil {
				return err
			}
		}
		if bt.end {
			if c.Tree, err = b.tree.Finish(); err != nil {
				return err
			}
			c.Blobs, c.NewBlobs = b.tree.Count(), b.newBlobs
			newTree()
		}
	}
	if b.ctx.Err() != nil {
		return context.Cause(b.ctx)
	}
	b.emit(&b.dataFrame, &b.dataSize)
	b.emit(&b.listFrame, &b.listSize)
	return nil
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
	} else {
		b.newData += int64(len(data))
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
	j.level = b.o.Level
	if b.o.adaptiveLevel && j.infos[0].Type == repo.DataBlob {
		// A slower level costs its extra time only on the new bytes: at
		// most a tenth (better, ~1.45× fastest's time) or a quarter
		// (default, ~1.25×) of what the backup reads, so at most about 6%
		// more compression time in all.
		switch {
		case b.newData*10 <= b.size:
			j.level = zstd.SpeedBetterCompression
		case b.newData*4 <= b.size:
			j.level = zstd.SpeedDefault
		}
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
		f, err := b.r.SealFrame(j.infos, j.blobs, j.level)
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

// assemblePacks gathers sealed frames into packs of about PackSize. With
// checkpoints, a pack that has waited CheckpointEvery for more frames (the
// input stalls) is sent as it is, so a checkpoint covers what was read.
func (b *backupRun) assemblePacks() {
	defer close(b.packCh)
	var cur []repo.Frame
	size := 0
	var started time.Time
	var tick <-chan time.Time
	if b.ckpt != nil {
		t := time.NewTicker(max(b.o.CheckpointEvery/4, 10*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	send := func(cut bool) {
		select {
		case b.packCh <- packJob{frames: cur, cut: cut}:
		case <-b.ctx.Done():
		}
		cur, size = nil, 0
	}
	for {
		select {
		case f, ok := <-b.sealedCh:
			if !ok {
				if len(cur) > 0 && b.ctx.Err() == nil {
					send(false)
				}
				return
			}
			if len(cur) == 0 {
				started = time.Now()
			}
			cur = append(cur, f)
			size += len(f.Sealed)
			b.o.Progress.StoredBytes.Add(int64(len(f.Sealed)))
			if size >= b.o.PackSize {
				send(false)
			}
		case now := <-tick:
			if len(cur) > 0 && now.Sub(started) >= b.o.CheckpointEvery {
				send(true)
			}
		}
	}
}

// storePacks builds, erasure-codes and stores packs and writes an index
// file every IndexFlush entries. Uploads of them run at once (each with
// its shards in parallel), so one pack's fsyncs or round trips overlap the
// next one's; memory stays at about Uploads+2 packs.
func (b *backupRun) storePacks() {
	for job := range b.packCh {
		if b.ctx.Err() != nil {
			continue
		}
		// The pack is built straight into its shard objects, the frames'
		// bytes copied once; the frames can go before the upload (job
		// stays live for job.cut), ~PackSize less per uploader.
		p, err := b.r.EncodePack(job.frames)
		job.frames = nil
		var pi repo.PackInfo
		var pfs []repo.PackFrame
		if err == nil {
			err = b.r.PutPack(b.ctx, p)
			pi, pfs = p.Info, p.Frames
		}
		b.uploadMu.Lock()
		if err == nil {
			b.indexPacks = append(b.indexPacks, pi)
			b.indexEntries = append(b.indexEntries, repo.EntriesFor(pi.ID, pfs)...)
			if job.cut || len(b.indexEntries) >= b.o.IndexFlush {
				err = b.checkpoint()
			}
		}
		if err != nil && b.uploadErr == nil {
			b.uploadErr = err
			b.fail(err)
		}
		b.uploadMu.Unlock()
	}
}

// checkpoint writes the index entries gathered so far as an index file
// and, when the run keeps checkpoints, a checkpoint naming every index file
// written. Callers hold uploadMu.
func (b *backupRun) checkpoint() error {
	if err := b.flushIndex(); err != nil || b.ckpt == nil {
		return err
	}
	return b.ckpt.save(b.ctx, b.r, b.newIndexes)
}

// checkpoints writes a checkpoint whenever one is due and packs were
// stored since the last, until the uploaders are done.
func (b *backupRun) checkpoints(uploaded <-chan struct{}) {
	t := time.NewTicker(max(b.o.CheckpointEvery/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-uploaded:
			return
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.uploadMu.Lock()
			if len(b.indexPacks) > 0 && b.ckpt.due(now) {
				if err := b.checkpoint(); err != nil && b.uploadErr == nil {
					b.uploadErr = err
					b.fail(err)
				}
			}
			b.uploadMu.Unlock()
		}
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
	if b.o.dropIndex {
		// The next file's entries reuse the arrays (SaveIndex is done
		// with them); IndexFlush bounds them.
		b.indexEntries, b.indexPacks = b.indexEntries[:0], b.indexPacks[:0]
		return nil
	}
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
	if km, sealed, err := writeKeyMap(ctx, r, o, snap, c, parentIndexes); err != nil {
		if ctx.Err() != nil {
			return repo.ID{}, nil, fmt.Errorf("backup: packs and index are stored but the snapshot is not: %w", ctx.Err())
		}
		if o.Logf != nil {
			o.Logf("backup: no key map for this snapshot (get and history search the blob tree): %v", err)
		}
	} else if km != nil {
		snap.KeyMap, snap.StoredBytes = km, snap.StoredBytes+sealed
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
