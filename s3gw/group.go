package s3gw

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
)

// Small PUTs are committed in groups. Each stored event waits for its log
// segment to be sealed, and each content store writes at least one pack:
// alone, a small PUT costs two pack writes and their fsyncs. A group shares
// them: one content run for every body of the group (engine.StoreContents)
// and one flush per bucket log (commitAll). The group is whatever PUTs
// arrived while the previous group was being written, so a lone client
// waits no longer than before and many clients share the cost.
const (
	groupObjectMax = 512 << 10 // bodies up to this size are read whole and group-committed
	groupBytesMax  = 64 << 20  // bodies buffered at once; PUTs beyond it stream alone
	groupItemsMax  = 512       // PUTs in one group
)

// errClosed answers a PUT that arrives while the gateway closes.
var errClosed = errors.New("s3 gateway: closing")

// groupPut is one small PUT waiting for its group.
type groupPut struct {
	bucket, key string
	body        []byte
	etag        string // the body's MD5, hex
	o           PutOptions

	info ObjectInfo
	err  error
	done chan struct{} // closed when info and err are set
}

// groups is the group committer's state.
type groups struct {
	ch       chan *groupPut // unbuffered: a PUT is queued only when the committer takes it
	stop     chan struct{}
	stopped  chan struct{}
	buffered chan struct{} // one token per groupObjectMax bytes of bodies buffered
}

func newGroups() *groups {
	return &groups{ch: make(chan *groupPut), stop: make(chan struct{}), stopped: make(chan struct{}),
		buffered: make(chan struct{}, groupBytesMax/groupObjectMax)}
}

// putSmall reads src whole when it is small and commits it with whatever
// other PUTs arrive meanwhile. handled is false when src is larger than
// groupObjectMax or the buffer budget is spent; src then continues at rest.
func (g *Gateway) putSmall(ctx context.Context, bucket, key string, src io.Reader, o PutOptions) (info ObjectInfo, rest io.Reader, handled bool, err error) {
	select {
	case g.groups.buffered <- struct{}{}:
	default:
		return ObjectInfo{}, src, false, nil
	}
	defer func() { <-g.groups.buffered }()
	body, err := io.ReadAll(io.LimitReader(src, groupObjectMax+1))
	if err != nil {
		return ObjectInfo{}, nil, true, err // a body that did not arrive whole, or failed its signature
	}
	if len(body) > groupObjectMax {
		return ObjectInfo{}, io.MultiReader(bytes.NewReader(body), src), false, nil
	}
	// Hashed here, on the request's goroutine, not on the one committer.
	sum := md5.Sum(body)
	if o.ContentMD5 != nil && !bytes.Equal(o.ContentMD5, sum[:]) {
		return ObjectInfo{}, nil, true, ErrBadDigest // nothing stored
	}
	p := &groupPut{bucket: bucket, key: key, body: body, etag: hex.EncodeToString(sum[:]), o: o, done: make(chan struct{})}
	select {
	case g.groups.ch <- p:
	case <-g.groups.stopped:
		return ObjectInfo{}, nil, true, errClosed
	case <-ctx.Done():
		return ObjectInfo{}, nil, true, ctx.Err()
	}
	// Once taken, the PUT is committed or refused whatever happens to the
	// request: wait for the outcome so that it is the one reported.
	<-p.done
	return p.info, nil, true, p.err
}

// runGroups is the group committer: it takes a PUT, then every PUT already
// waiting, commits them as one group, and repeats until stopGroups.
func (g *Gateway) runGroups() {
	logged := make(chan struct{})
	toLog := make(chan *storedGroup, 1)
	go g.logGroups(toLog, logged)
	defer func() {
		close(toLog)
		<-logged
		close(g.groups.stopped)
	}()
	var carry []*groupPut // PUTs of a key already in the last group
	for {
		group := carry
		carry = nil
		if len(group) == 0 {
			select {
			case p := <-g.groups.ch:
				group = append(group, p)
			case <-g.groups.stop:
				return
			}
		}
		// No two PUTs of one key in a group: each check sees the table as
		// it was before the group, so the second waits for the next, whose
		// events are logged after this group's (logGroups keeps the order).
		inGroup := map[[2]string]bool{}
		var kept []*groupPut
		add := func(p *groupPut) {
			k := [2]string{p.bucket, p.key}
			if inGroup[k] {
				carry = append(carry, p)
				return
			}
			inGroup[k] = true
			kept = append(kept, p)
		}
		for _, p := range group {
			add(p)
		}
	collect:
		for len(kept)+len(carry) < groupItemsMax {
			select {
			case p := <-g.groups.ch:
				add(p)
			default:
				break collect
			}
		}
		toLog <- g.storeGroup(kept)
	}
}

// stopGroups ends the group committer once its current group is written.
func (g *Gateway) stopGroups() {
	select {
	case <-g.groups.stop:
	default:
		close(g.groups.stop)
	}
	<-g.groups.stopped
}

// storedGroup is a group whose bodies are stored, on its way to the log.
type storedGroup struct {
	all    []*groupPut     // every PUT of the group, answered when its events are
	items  []*commitItem   // the events of those whose bodies were stored
	recs   []*ObjectRecord // their records, in items' order
	stored []*groupPut     // their PUTs, in items' order
}

// storeGroup stores the group's bodies in one content run and returns the
// events that record them. When the store fails, every PUT of the group
// has its err set and no event.
func (g *Gateway) storeGroup(group []*groupPut) *storedGroup {
	sg := &storedGroup{all: group}
	// A group's writes are shared: no one request's end cancels them.
	ctx := context.Background()
	inputs := make([]engine.ContentInput, len(group))
	for i, p := range group {
		inputs[i] = engine.ContentInput{Src: bytes.NewReader(p.body), Format: format(p.key, p.o.ContentType)}
	}
	sg.stored = group
	var cs []engine.Content
	err := g.storeContent(ctx, func(known engine.KnownSet) (*repo.IndexFile, error) {
		var err error
		if cs, err = engine.StoreContents(ctx, g.r, inputs, engine.BackupOptions{}, known); err != nil {
			return nil, err
		}
		return &cs[0].Index, nil // every content of one run shares its index file
	})
	if err != nil {
		for _, p := range sg.stored {
			p.err = err
		}
		sg.stored = nil
		return sg
	}
	for i, p := range sg.stored {
		rec := &ObjectRecord{Size: cs[i].Size, ETag: p.etag, ContentType: p.o.ContentType,
			Meta: p.o.Meta, Checksums: p.o.Checksums, Parts: []Part{{Size: cs[i].Size, Tree: cs[i].Tree}},
			Retention: p.o.Retention, LegalHold: p.o.LegalHold}
		sg.recs = append(sg.recs, rec)
		sg.items = append(sg.items, g.objectItem(p.bucket, p.key, rec, p.o.IfNoneMatch))
	}
	return sg
}

// logGroups records stored groups, in the order they were taken, each with
// one flush per bucket log, and answers their PUTs. It runs beside
// runGroups, so one group's log flush overlaps the next one's content store.
func (g *Gateway) logGroups(in <-chan *storedGroup, done chan<- struct{}) {
	defer close(done)
	for sg := range in {
		g.commitAll(context.Background(), sg.items)
		for i, p := range sg.stored {
			p.info, p.err = sg.items[i].objectInfo(sg.recs[i])
		}
		for _, p := range sg.all {
			close(p.done)
		}
	}
}
