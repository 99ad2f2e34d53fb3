package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/ops"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/shard"
	"github.com/strata-backup/strata/server/wire"
)

// The keyless scrub (`strata serve --scrub-every D`, PROTOCOL.md
// "Scrubs"). The server holds no key, but a shard's header and checksum
// are clear (FORMAT.md §9): it can tell an intact shard from a damaged or
// missing one, and rebuild the missing ones from any k intact shards of
// the pack, checking the rebuilt pack against its BLAKE3 ID before it
// writes anything. It cannot open a pack, so blobs, index files and
// manifests are the keyed scrub's (`strata scrub`).

// ScrubResult is one keyless pass: the record stored, and the damage left,
// one line a pack.
type ScrubResult struct {
	Record   *ops.ScrubRecord
	Repaired []string
	Problems []string
}

// ScrubOnce runs one keyless scrub pass over the slice of packs that is
// due (ops.PlanPass from the newest keyless record; firstElapsed stands
// for the time since the last pass when there is none), rebuilds what
// parity allows, stores the pass's ops.ScrubRecord (keyed false), and
// reports it in the metrics and the audit trail. It returns an error,
// and stores no record, only when the store failed; the next pass then
// reads the same slice.
func (s *Server) ScrubOnce(ctx context.Context, cycle, firstElapsed time.Duration) (*ScrubResult, error) {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	start := time.Now()
	res, err := s.scrubPass(ctx, cycle, firstElapsed)
	took := time.Since(start).Seconds()
	rec := wire.AuditRecord{Time: s.o.Now().UTC(), Action: "scrub", Status: 200, Result: "ok", Seconds: took}
	switch {
	case err != nil && ctx.Err() != nil:
		rec.Status, rec.Result, rec.Detail = 503, "failed", "interrupted: the server is stopping; the next pass reads the same packs"
		s.o.Logger.Info("scrub interrupted; the next pass reads the same packs")
	case err != nil:
		rec.Status, rec.Result, rec.Detail = 500, "failed", err.Error()
		s.scrubs.failed()
		s.o.Logger.Error("scrub failed; the next pass reads the same packs", "error", err)
	default:
		r := res.Record
		rec.Bytes = r.BytesRead
		rec.Detail = fmt.Sprintf("read %d packs; %d bad shards, %d rebuilt from parity, %d beyond repair", r.PacksRead, r.BadShards, r.Repaired, r.Unrepaired)
		if len(res.Problems) > 0 {
			rec.Result, rec.Status = "damaged", 200
			rec.Detail += "; " + strings.Join(res.Problems, "; ")
		}
		s.scrubs.observe(r, true)
		s.o.Logger.Info("scrub", "packs", r.PacksRead, "bytes", r.BytesRead, "bad_shards", r.BadShards,
			"repaired", r.Repaired, "unrepaired", r.Unrepaired, "next", r.Next, "seconds", took)
		for _, p := range res.Problems {
			s.o.Logger.Error("scrub found damage parity cannot repair", "problem", p)
		}
	}
	s.audit.add(rec)
	return res, err
}

// RunScrubs runs a keyless scrub pass every interval until ctx is done,
// the first one interval after it starts, so the whole repository is read
// once per cycle. A pass that fails is logged and audited, and the next
// one tries again.
func (s *Server) RunScrubs(ctx context.Context, every, cycle time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ScrubOnce(ctx, cycle, every)
		}
	}
}

// scrubPass is ScrubOnce without the reporting.
func (s *Server) scrubPass(ctx context.Context, cycle, firstElapsed time.Duration) (*ScrubResult, error) {
	last, err := ops.LatestScrub(ctx, s.st, false)
	if err != nil {
		return nil, err
	}
	listed, err := listPacks(ctx, s.st, "")
	if err != nil {
		return nil, err
	}
	ids := slices.SortedFunc(maps.Keys(listed), func(a, b repo.ID) int { return a.Compare(b) })
	pass := ops.PlanPass(last, ids, s.o.Now(), cycle, firstElapsed)
	marked, err := engine.MarkedPacks(ctx, s.st)
	if err != nil {
		return nil, err
	}
	res := &ScrubResult{}
	read := 0
	var tally packScrub
	var incomplete []repo.ID
	for _, id := range ids[pass.From:pass.To] {
		if _, ok := marked[id]; ok {
			continue // unreferenced, and a prune deletes it: nothing to keep
		}
		read++
		ps, err := s.scrubPack(ctx, id, listed[id])
		if err != nil {
			return nil, err
		}
		if ps.incomplete {
			// Fewer than k shards, none bad: an upload or a prune in
			// progress looks the same as loss. Look again at the end.
			incomplete = append(incomplete, id)
			tally.bytes += ps.bytes
			continue
		}
		tally.add(ps, res)
	}
	for _, id := range incomplete {
		again, err := listPacks(ctx, s.st, strings.TrimSuffix(repo.ShardName(id, 0), "0"))
		if err != nil {
			return nil, err
		}
		if len(again[id]) == 0 {
			continue // a prune removed the pack meanwhile
		}
		ps, err := s.scrubPack(ctx, id, again[id])
		if err != nil {
			return nil, err
		}
		ps.bytes = 0 // counted once
		tally.add(ps, res)
	}
	rec := pass.Record(s.o.Now(), false)
	rec.PacksRead, rec.BytesRead = read, tally.bytes
	rec.BadShards, rec.Repaired, rec.Unrepaired = tally.bad, tally.repaired, tally.bad-tally.repaired
	if len(res.Problems) > 0 {
		rec.Error = fmt.Sprintf("%d packs damaged beyond what parity repairs, first: %s", len(res.Problems), res.Problems[0])
	}
	if err := ops.SaveScrub(ctx, s.st, rec); err != nil {
		return nil, err
	}
	res.Record = rec
	return res, nil
}

// packScrub is what the scrub of one pack found and did.
type packScrub struct {
	bytes         int64
	bad, repaired int
	incomplete    bool   // too few shards, and every one present intact
	repairedText  string // "" when nothing was rebuilt
	problem       string // "" when the pack is whole now
}

func (t *packScrub) add(ps packScrub, res *ScrubResult) {
	t.bytes += ps.bytes
	t.bad += ps.bad
	t.repaired += ps.repaired
	if ps.repairedText != "" {
		res.Repaired = append(res.Repaired, ps.repairedText)
	}
	if ps.problem != "" {
		res.Problems = append(res.Problems, ps.problem)
	}
}

// listedShard is a shard object a listing found.
type listedShard struct {
	index int
	size  int64
}

// listPacks returns the shards listed under prefix, by pack. Names that
// are not shard names are left to `strata check`.
func listPacks(ctx context.Context, st repo.Store, prefix string) (map[repo.ID][]listedShard, error) {
	if !strings.HasPrefix(prefix, repo.DataPrefix) {
		prefix = repo.DataPrefix
	}
	out := map[repo.ID][]listedShard{}
	err := st.List(ctx, prefix, func(oi repo.ObjectInfo) error {
		if id, i, err := repo.ParseShardName(oi.Name); err == nil {
			out[id] = append(out[id], listedShard{i, oi.Size})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list shards: %w", err)
	}
	return out, nil
}

// scrubPack reads the listed shards of one pack, verifies each (header,
// checksum, the pack and index its name says), and rebuilds the missing
// and bad ones from parity when enough are intact. The shards held count
// against the server's memory budget, as request bodies do, so a pass
// waits for uploads rather than pass the bound (PROTOCOL.md, "Limits and
// memory"). err is only for a failure of the store or of ctx.
func (s *Server) scrubPack(ctx context.Context, id repo.ID, listed []listedShard) (packScrub, error) {
	var ps packScrub
	var need int64
	for _, l := range listed {
		need += l.size
	}
	// Rebuilt shards are as large as the ones read; a pack over the whole
	// budget takes all of it, and waits until nothing else holds any.
	need = min(2*need, s.o.Memory)
	if err := s.budget.Acquire(ctx, need); err != nil {
		return ps, fmt.Errorf("scrub pack %s: waiting for memory: %w", id.Short(), err)
	}
	defer s.budget.Release(need)
	objs := map[int][]byte{}
	for _, l := range listed {
		i := l.index
		b, err := s.st.Get(ctx, repo.ShardName(id, i))
		switch {
		case errors.Is(err, repo.ErrNotFound):
			continue // removed since the listing: judged as missing below
		case err != nil:
			return ps, fmt.Errorf("read %s: %w", repo.ShardName(id, i), err)
		}
		ps.bytes += int64(len(b))
		objs[i] = b
	}
	// k and m come from the shards that verify: the most common pair, so
	// a forged or stray shard cannot choose them alone.
	votes := map[[2]int]int{}
	for i, b := range objs {
		if h, err := shard.Verify(b); err == nil && repo.ID(h.PackID) == id && h.Index == i {
			votes[[2]int{h.K, h.M}]++
		}
	}
	name := "pack " + id.Short()
	if len(votes) == 0 {
		ps.bad = len(objs)
		ps.problem = fmt.Sprintf("%s: NOT recoverable: none of its %d shards verifies", name, len(objs))
		return ps, nil
	}
	km := slices.MaxFunc(slices.Collect(maps.Keys(votes)), func(a, b [2]int) int {
		return cmp.Or(cmp.Compare(votes[a], votes[b]), cmp.Compare(b[0], a[0]), cmp.Compare(b[1], a[1]))
	})
	all := make([][]byte, km[0]+km[1])
	for i, b := range objs {
		if i < len(all) {
			all[i] = b
		}
	}
	rebuilt, rep, err := shard.Rebuild(id, all)
	ps.bad = len(rep.Missing) + len(rep.Bad)
	if err != nil {
		if len(rep.Bad) == 0 && errors.Is(err, shard.ErrTooFewShards) {
			ps.incomplete = true
		}
		ps.problem = fmt.Sprintf("%s: NOT recoverable: %v (%s)", name, err, strings.Join(rep.Problems(), ", "))
		return ps, nil
	}
	// A prune may have marked the pack since the pass began, and be
	// deleting its shards: rebuilding them would bring back part of it.
	if marked, err := engine.MarkedPacks(ctx, s.st); err != nil {
		return ps, err
	} else if _, ok := marked[id]; ok {
		return packScrub{bytes: ps.bytes}, nil
	}
	var done []int
	for i, obj := range rebuilt {
		if obj == nil {
			continue
		}
		shardName := repo.ShardName(id, i)
		mu := s.putLock(shardName)
		mu.Lock()
		err := s.st.Put(ctx, shardName, obj)
		mu.Unlock()
		if err != nil {
			return ps, fmt.Errorf("rebuild %s: %w", shardName, err)
		}
		done = append(done, i)
	}
	ps.repaired = len(done)
	if len(done) > 0 {
		ps.repairedText = fmt.Sprintf("%s: rebuilt shards %v from parity (%s)", name, done, strings.Join(rep.Problems(), ", "))
	}
	return ps, nil
}

// scrubMetrics are the scrub series (PROTOCOL.md, "Metrics"): gauges from
// the newest scrub record of each kind, keyed (`strata scrub`, seen when
// its record is uploaded through the server or found at start) and
// keyless (the server's own), and counters of the server's passes.
type scrubMetrics struct {
	mu                                  sync.Mutex
	newest                              map[bool]time.Time // of the records the gauges show
	last, bad, repaired, unrepaired     *prometheus.GaugeVec
	cycleStart                          *prometheus.GaugeVec
	passes                              *prometheus.CounterVec
	badTotal, repairedTotal, bytesTotal prometheus.Counter
}

func newScrubMetrics(reg *prometheus.Registry) *scrubMetrics {
	kind := []string{"keyed"}
	m := &scrubMetrics{
		newest: map[bool]time.Time{},
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_scrub_last_timestamp_seconds",
			Help: "When the newest scrub pass ended (unix seconds), by keyed (strata scrub) or not (the server's)."}, kind),
		bad: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_scrub_bad_shards",
			Help: "Shards the newest scrub pass found missing or damaged."}, kind),
		repaired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_scrub_repaired_shards",
			Help: "Shards the newest scrub pass rebuilt from parity."}, kind),
		unrepaired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_scrub_unrepaired_shards",
			Help: "Damaged shards the newest scrub pass could not rebuild: data at risk."}, kind),
		cycleStart: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_scrub_cycle_start_timestamp_seconds",
			Help: "When the scrub cycle the newest pass belongs to began (unix seconds)."}, kind),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_scrub_passes_total",
			Help: "The server's keyless scrub passes, by result (ok, or failed when the store failed)."}, []string{"result"}),
		badTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_scrub_bad_shards_total",
			Help: "Shards the server's scrub found missing or damaged since it started."}),
		repairedTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_scrub_repaired_shards_total",
			Help: "Shards the server's scrub rebuilt from parity since it started."}),
		bytesTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_scrub_read_bytes_total",
			Help: "Shard bytes the server's scrub read since it started."}),
	}
	reg.MustRegister(m.last, m.bad, m.repaired, m.unrepaired, m.cycleStart, m.passes, m.badTotal, m.repairedTotal, m.bytesTotal)
	return m
}

// observe sets the gauges of r's kind from r, unless a newer record of
// that kind was seen; own is true for the server's own passes, which the
// counters count.
func (m *scrubMetrics) observe(r *ops.ScrubRecord, own bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := fmt.Sprint(r.Keyed)
	if own {
		m.passes.WithLabelValues("ok").Inc()
		m.badTotal.Add(float64(r.BadShards))
		m.repairedTotal.Add(float64(r.Repaired))
		m.bytesTotal.Add(float64(r.BytesRead))
	}
	if !r.Time.Before(m.newest[r.Keyed]) {
		m.newest[r.Keyed] = r.Time
		m.last.WithLabelValues(k).Set(float64(r.Time.UnixNano()) / 1e9)
		m.bad.WithLabelValues(k).Set(float64(r.BadShards))
		m.repaired.WithLabelValues(k).Set(float64(r.Repaired))
		m.unrepaired.WithLabelValues(k).Set(float64(r.Unrepaired))
		m.cycleStart.WithLabelValues(k).Set(float64(r.CycleStart.Unix()))
	}
}

func (m *scrubMetrics) failed() { m.passes.WithLabelValues("failed").Inc() }

// loadScrubs sets the gauges from the newest records in the store, so a
// restarted server reports the scrubs before it.
func (m *scrubMetrics) load(ctx context.Context, st repo.Store) error {
	for _, keyed := range []bool{false, true} {
		r, err := ops.LatestScrub(ctx, st, keyed)
		if err != nil {
			return err
		}
		if r != nil {
			m.observe(r, false)
		}
	}
	return nil
}
