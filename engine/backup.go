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
}

// Progress counts a running backup. Fields are updated atomically.
type Progress struct {
	BytesRead   atomic.Int64
	Blobs       atomic.Int64
	NewBlobs    atomic.Int64
	StoredBytes atomic.Int64 // sealed frame bytes written, before parity
}

func (o *BackupOptions) setDefaults() error {
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
	ready  chan struct{}
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
func Backup(ctx context.Context, r *repo.Repository, src io.Reader, o BackupOptions) (repo.ID, *repo.Snapshot, error) {
	if err := o.setDefaults(); err != nil {
		return repo.ID{}, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	known, parentIndexes, err := dedupBase(ctx, r, o.Parent)
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("read parent snapshot: %w", err)
	}

	var (
		wg       sync.WaitGroup
		hashCh   = make(chan *batch, o.Workers)
		orderCh  = make(chan *batch, 2*o.Workers)
		frameCh  = make(chan frameJob, o.Workers)
		sealedCh = make(chan repo.Frame, o.Workers)
		packCh   = make(chan []repo.Frame, 1)
	)
	fail := func(err error) { cancel(err) }

	// Stage 1: read and chunk, in batches of about 1 MiB.
	wg.Go(func() {
		defer close(hashCh)
		defer close(orderCh)
		ch := newChunker(r, src, o.Format)
		for {
			b := &batch{ready: make(chan struct{})}
			size := 0
			for size < 1<<20 {
				c, err := ch.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					fail(fmt.Errorf("read input: %w", err))
					return
				}
				b.chunks = append(b.chunks, c)
				size += len(c)
			}
			if len(b.chunks) == 0 {
				return
			}
			o.Progress.BytesRead.Add(int64(size))
			select {
			case hashCh <- b:
			case <-ctx.Done():
				return
			}
			select {
			case orderCh <- b:
			case <-ctx.Done():
				return
			}
			if size < 1<<20 {
				return // the chunker hit EOF
			}
		}
	})
	// Stage 2: hash in parallel.
	var hashers sync.WaitGroup
	for range o.Workers {
		hashers.Go(func() {
			for b := range hashCh {
				b.ids = make([]repo.ID, len(b.chunks))
				for i, c := range b.chunks {
					b.ids[i] = r.BlobID(repo.DataBlob, c)
				}
				close(b.ready)
			}
		})
	}
	// Stage 4: compress and seal frames in parallel.
	var sealers sync.WaitGroup
	for range o.Workers {
		sealers.Go(func() {
			for j := range frameCh {
				f, err := r.SealFrame(j.infos, j.blobs, o.Level)
				if err != nil {
					fail(err)
					continue
				}
				select {
				case sealedCh <- f:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { sealers.Wait(); close(sealedCh) }()
	// Stage 5: assemble packs.
	wg.Go(func() {
		defer close(packCh)
		var cur []repo.Frame
		size := 0
		for f := range sealedCh {
			cur = append(cur, f)
			size += len(f.Sealed)
			o.Progress.StoredBytes.Add(int64(len(f.Sealed)))
			if size >= o.PackSize {
				select {
				case packCh <- cur:
				case <-ctx.Done():
				}
				cur, size = nil, 0
			}
		}
		if len(cur) > 0 && ctx.Err() == nil {
			packCh <- cur
		}
	})
	// Stage 6: seal, erasure-code and store packs. Memory is bounded to about
	// Uploads+2 packs.
	var indexEntries []repo.IndexEntry
	var indexPacks []repo.PackInfo
	var newIndexes []repo.ID
	flushIndex := func() error {
		if len(indexPacks) == 0 {
			return nil
		}
		id, err := r.SaveIndex(ctx, &repo.IndexFile{Packs: indexPacks, Entries: indexEntries})
		if err != nil {
			return err
		}
		newIndexes = append(newIndexes, id)
		indexEntries, indexPacks = nil, nil
		return nil
	}
	// Two packs upload at once (each with its shards in parallel), so one
	// pack's fsyncs or round trips overlap the next one's.
	var (
		uploadMu  sync.Mutex
		uploadErr error
		uploaders sync.WaitGroup
	)
	for range o.Uploads {
		uploaders.Go(func() {
			for frames := range packCh {
				if ctx.Err() != nil {
					continue
				}
				pack, pfs, err := r.BuildPack(frames)
				var pi repo.PackInfo
				if err == nil {
					pi, err = r.WritePack(ctx, pack)
				}
				uploadMu.Lock()
				if err == nil {
					indexPacks = append(indexPacks, pi)
					indexEntries = append(indexEntries, repo.EntriesFor(pi.ID, pfs)...)
					if len(indexEntries) >= o.IndexFlush {
						err = flushIndex()
					}
				}
				if err != nil && uploadErr == nil {
					uploadErr = err
					fail(err)
				}
				uploadMu.Unlock()
			}
		})
	}
	wg.Go(uploaders.Wait)

	// Stage 3 (this goroutine): in order, deduplicate, build the tree and
	// group new blobs into frames. Data and list blobs go into separate
	// frames so that walking a tree reads list frames only.
	var (
		dataFrame, listFrame frameJob
		dataSize, listSize   int
		newBlobs             int64
	)
	emit := func(j *frameJob, size *int) {
		if len(j.blobs) == 0 {
			return
		}
		select {
		case frameCh <- *j:
		case <-ctx.Done():
		}
		*j, *size = frameJob{}, 0
	}
	store := func(t repo.BlobType, id repo.ID, data []byte) {
		if !known.Add(id) {
			return
		}
		newBlobs++
		o.Progress.NewBlobs.Add(1)
		j, size := &dataFrame, &dataSize
		if t == repo.ListBlob {
			j, size = &listFrame, &listSize
		}
		j.infos = append(j.infos, repo.BlobInfo{Type: t, ID: id, Len: uint32(len(data))})
		j.blobs = append(j.blobs, data)
		*size += len(data)
		if *size >= o.FrameSize {
			emit(j, size)
		}
	}
	tree := r.NewTreeBuilder(func(data []byte) (repo.ID, error) {
		id := r.BlobID(repo.ListBlob, data)
		store(repo.ListBlob, id, data)
		return id, nil
	})
	var size int64
	err = func() error {
		for b := range orderCh {
			select {
			case <-b.ready:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			for i, c := range b.chunks {
				size += int64(len(c))
				store(repo.DataBlob, b.ids[i], c)
				if err := tree.Add(b.ids[i]); err != nil {
					return err
				}
			}
			o.Progress.Blobs.Add(int64(len(b.chunks)))
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}()
	var root repo.Tree
	if err == nil {
		root, err = tree.Finish()
	}
	if err == nil {
		emit(&dataFrame, &dataSize)
		emit(&listFrame, &listSize)
	}
	if err != nil {
		fail(err)
	}
	close(frameCh)
	hashers.Wait()
	for range orderCh { // drain after a failure so stage 1 can exit
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		if uploadErr != nil {
			return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", uploadErr)
		}
		return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", cause)
	}
	if err := flushIndex(); err != nil {
		return repo.ID{}, nil, fmt.Errorf("backup failed, no snapshot written: %w", err)
	}

	snap := &repo.Snapshot{
		Stream: o.Stream, Time: o.Time, Created: time.Now().UTC(), Format: o.Format,
		Size: size, Blobs: tree.Count(), Tree: root, Host: o.Host, Position: o.Position,
		Indexes:  append(append([]repo.ID{}, parentIndexes...), newIndexes...),
		NewBlobs: newBlobs, StoredBytes: o.Progress.StoredBytes.Load(),
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
	return id, snap, nil
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
