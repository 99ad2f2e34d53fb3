package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// DefaultPlanPage is how many segments PlanFor asks the server for at a
// time (PROTOCOL.md §5, "Pages"): a plan over daily snapshots of 10 s segments
// lists ~4,300, and one page of 1,024 keeps each answer (~57 KB) well
// inside the server's 1 ms. Servers before pages answer the whole plan.
const DefaultPlanPage = 1024

const (
	// maxPlanAnswer bounds an answer that may be a whole plan: the first
	// page (a server before pages ignores limit), or Plan's.
	maxPlanAnswer = 256 << 20
	// maxPageSegment is the most bytes one segment takes in a plan log
	// (four varints, the flags, the epoch, the ID), before base64.
	maxPageSegment = 4*10 + 1 + 10 + len(repo.ID{})
	// maxPlanHead bounds the rest of a page: stream, target, base label
	// (at most 8 KiB, escaped), from, next.
	maxPlanHead = 256 << 10
	// maxPlanRestarts is how often PlanFor starts over when the server
	// refuses a page's cursor (the catalog changed between two pages).
	maxPlanRestarts = 2
)

// Plan asks for the whole restore plan of stream at t in one answer.
func (c *Client) Plan(ctx context.Context, stream string, t index.Target) (*wire.Plan, error) {
	return c.PlanPage(ctx, stream, t, 0, "")
}

// PlanPage asks for one page of the restore plan of stream at t: at
// most limit segments (0: all of them) after the cursor after (""; the
// first page), whose Next continues it. A server before pages answers the
// whole plan whatever the limit.
func (c *Client) PlanPage(ctx context.Context, stream string, t index.Target, limit int, after string) (*wire.Plan, error) {
	q := url.Values{"stream": {stream}}
	if t.ByPos {
		q.Set("position", strconv.FormatUint(t.Position, 10))
	} else {
		q.Set("at", t.Time.UTC().Format(time.RFC3339Nano))
	}
	bound := int64(maxPlanAnswer)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		if len(after) > wire.MaxPlanCursor {
			return nil, fmt.Errorf("plan of %s: the server's cursor is %d bytes, over the limit %d", stream, len(after), wire.MaxPlanCursor)
		}
		q.Set("after", after)
		// Only a server that pages hands out cursors, and it honours limit.
		if limit > 0 {
			bound = maxPlanHead + int64(limit)*int64(maxPageSegment*4/3+1)
		}
	}
	var p wire.Plan
	return &p, c.getJSONBounded(ctx, "/v1/plan", q, &p, bound)
}

// getJSONBounded fetches a JSON document of at most bound bytes into v.
func (c *Client) getJSONBounded(ctx context.Context, path string, q url.Values, v any, bound int64) error {
	resp, err := c.call(ctx, http.MethodGet, path, q, nil, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength > bound {
		return fmt.Errorf("GET %s: answer of %d bytes, over the limit %d", path, resp.ContentLength, bound)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, bound)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: bad response: %w", path, err)
	}
	return nil
}

// errPlanChanged: the server refused a page's cursor, so the plan changed
// between two pages (or the cursor was altered on the way); PlanFor starts
// over from the first page.
var errPlanChanged = errors.New("the plan changed between two of its pages")

// PlanFor asks the server for a restore plan and turns it into an
// index.Plan the engine can run: the base manifest opened and checked
// against its label, the segment keys decoded and checked to be the
// stream's and in order. It follows the plan's pages (Options.PlanPage
// segments each) and, as each page arrives, starts fetching its segment manifests
// ahead of the restore (Store.Get hands them over), so a long plan's
// manifests are on their way before its last page is in. Each page must
// carry the first page's stream, target, base and from, and continue its
// segments; when the server refuses a cursor because the catalog changed
// between pages, the plan is asked for again from its first page.
func (c *Client) PlanFor(ctx context.Context, r *repo.Repository, stream string, t index.Target) (*index.Plan, error) {
	for restarts := 0; ; restarts++ {
		p, err := c.planFor(ctx, r, stream, t)
		if errors.Is(err, errPlanChanged) && restarts < maxPlanRestarts {
			continue
		}
		return p, err
	}
}

func (c *Client) planFor(ctx context.Context, r *repo.Repository, stream string, t index.Target) (_ *index.Plan, err error) {
	wp, err := c.PlanPage(ctx, stream, t, c.planPage, "")
	if err != nil {
		return nil, err
	}
	if wp.Stream != stream {
		return nil, fmt.Errorf("the server answered a plan of stream %q, not %s", wp.Stream, stream)
	}
	base, err := c.openSnapshot(ctx, r, wp.Base)
	if err != nil {
		return nil, err
	}
	if base.Stream != stream {
		return nil, fmt.Errorf("the server planned from snapshot %s of stream %s, not %s", base.ID.Short(), base.Stream, stream)
	}
	if base.Position != nil && wp.From != *base.Position+1 {
		return nil, fmt.Errorf("the server's plan starts at position %d, which does not follow its base", wp.From)
	}
	// Untrusted: the restore checks, on the verified manifests, that the
	// plan reaches t (engine.LoadPlanSegments), so a server that drops
	// segments or swaps in an older base with a shorter log is refused.
	p := &index.Plan{Stream: stream, Target: t, Base: base, From: wp.From, Untrusted: true}
	pf := c.startPrefetch(ctx, r)
	defer func() { pf.finish(err != nil) }()
	first := wp
	var segs []repo.SegmentKey
	next, prevTime := wp.From, int64(0) // the position and time the page continues from
	for page := 1; ; page++ {
		if page > 1 && (wp.Stream != first.Stream || wp.Target != first.Target || wp.Base.ID != first.Base.ID || wp.From != first.From) {
			return nil, fmt.Errorf("page %d of the server's plan is of another plan (%s at %s from snapshot %s, position %d)",
				page, wp.Stream, wp.Target, wp.Base.ID, wp.From)
		}
		// The plan log carries no stream: every key is stream's by construction.
		keys, err := wire.DecodePlanLogAfter(stream, next, prevTime, wp.Log)
		if err != nil {
			return nil, fmt.Errorf("the server's plan, page %d: %w", page, err)
		}
		if base.Position == nil && len(keys) > 0 {
			return nil, fmt.Errorf("the server's plan applies log to snapshot %s, which has no position", base.ID.Short())
		}
		if len(segs)+len(keys) > wire.MaxPlanSegments {
			return nil, fmt.Errorf("the server's plan lists over %d segments", wire.MaxPlanSegments)
		}
		if wp.Next != "" && (len(keys) == 0 || len(keys) > c.planPage) {
			return nil, fmt.Errorf("page %d of the server's plan holds %d segments and another page follows (asked for 1 to %d)", page, len(keys), c.planPage)
		}
		// Each key follows on from the one before, across pages too.
		for _, k := range keys {
			if n := len(segs); n > 0 && index.SameName(segs[n-1], k) {
				segs = append(segs, k)
				continue // a twin (FORMAT.md §4.1): LoadPlanSegments keeps the replacement
			}
			if k.First > next || k.Last < next {
				return nil, fmt.Errorf("the server's plan lists segment %s out of order", k.Name())
			}
			next, prevTime = k.Last+1, k.LastTime
			segs = append(segs, k)
		}
		pf.add(keys)
		if wp.Next == "" {
			break
		}
		after := wp.Next
		if wp, err = c.PlanPage(ctx, stream, t, c.planPage, after); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusBadRequest {
				return nil, fmt.Errorf("%w: %w", errPlanChanged, err)
			}
			return nil, err
		}
	}
	if len(segs) > 0 {
		p.Segments = segs
	}
	return p, nil
}
