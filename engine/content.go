package engine

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-backup/strata/repo"
)

// BlobLocator finds where a blob is stored. Lookup MUST be safe for
// concurrent use and report false for a blob it does not know.
// *index.BlobIndex (after Seal) is one.
type BlobLocator interface {
	Lookup(id repo.ID) (repo.IndexEntry, repo.PackInfo, bool)
}

// ReadContent writes bytes [off, off+n) of the content whose blob tree is t
// to w (n < 0: to the end). Blobs wholly outside the range are not read;
// every blob read is verified against its keyed ID. It returns the bytes
// written; a blob missing from loc is ErrMissingBlob.
func ReadContent(ctx context.Context, r *repo.Repository, loc BlobLocator, t repo.Tree, off, n int64, w io.Writer) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("read content: negative offset %d", off)
	}
	br := newBlobReader(r, loc, 4)
	var pos, written int64
	errDone := fmt.Errorf("done")
	err := walkTree(ctx, br, t, func(id repo.ID) error {
		if n >= 0 && written >= n {
			return errDone
		}
		e, _, ok := loc.Lookup(id)
		if !ok {
			return fmt.Errorf("%w: %s", ErrMissingBlob, id)
		}
		l := int64(e.BlobLength)
		if pos+l <= off {
			pos += l
			return nil
		}
		b, err := br.readBlob(ctx, id, repo.DataBlob)
		if err != nil {
			return err
		}
		lo := max(off-pos, 0)
		b = b[lo:]
		if n >= 0 && int64(len(b)) > n-written {
			b = b[:n-written]
		}
		pos += l
		m, err := w.Write(b)
		written += int64(m)
		return err
	}, nil)
	if err == errDone {
		err = nil
	}
	return written, err
}
