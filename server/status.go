package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/ops"
)

// statusReport grades every stream against the server's policy (ops.Compute),
// from the catalog and the drill and scrub records in the store: the same
// computation `strata status` makes, so the page, the metrics and the CLI
// agree.
func (s *Server) statusReport(ctx context.Context) (*ops.Report, *index.Catalog, error) {
	recs, err := s.records.Read(ctx, s.st)
	if err != nil {
		return nil, nil, err
	}
	var cat index.Catalog
	// The catalog's slices and maps are replaced, never modified, so a
	// copy of the struct taken under the lock stays a consistent view.
	s.cat.read(func(c *index.Catalog) { cat = *c })
	rep := ops.Compute(ops.Input{Catalog: &cat, Coverage: s.cat.streamCoverage, Drills: recs.Drills,
		Scrub: recs.Scrub, Policy: s.policy.Load(), Now: s.o.Now(), Problems: recs.Problems})
	return rep, &cat, nil
}

// SetPolicy replaces the policy the status page and the metrics grade by
// (Options.Policy at start); nil sets no limit. The CLI calls it on SIGHUP.
func (s *Server) SetPolicy(p *ops.Policy) { s.policy.Store(p) }

// opsRecords answers GET /v1/records (read): the newest drill records of
// every stream and the newest scrub record, so `strata status` through a
// server grades streams with its own policy (PROTOCOL.md §7).
func (s *Server) opsRecords(w http.ResponseWriter, r *http.Request, rq *request) *apiError {
	recs, err := s.records.Read(r.Context(), s.st)
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, recs)
	return nil
}

// statusCollector reports, at scrape time, each stream against its
// objectives (PROTOCOL.md §7, "Recovery objectives"). It reads the drill
// and scrub records, decoding only those it has not seen before.
type statusCollector struct{ s *Server }

var (
	stateDesc      = prometheus.NewDesc("strata_stream_state", "The stream's state against the policy: 0 ok, 1 warning, 2 failure.", []string{"stream"}, nil)
	newestSnapDesc = prometheus.NewDesc("strata_stream_newest_snapshot_timestamp_seconds", "Consistent time of the stream's newest snapshot (unix seconds).", []string{"stream"}, nil)
	snapAgeDesc    = prometheus.NewDesc("strata_stream_snapshot_age_seconds", "Now minus the stream's newest snapshot time.", []string{"stream"}, nil)
	winStartDesc   = prometheus.NewDesc("strata_stream_window_start_timestamp_seconds", "Start of the stream's newest restorable window (unix seconds).", []string{"stream"}, nil)
	winEndDesc     = prometheus.NewDesc("strata_stream_window_end_timestamp_seconds", "End of the stream's newest restorable window: its newest restorable instant (unix seconds).", []string{"stream"}, nil)
	rpoDesc        = prometheus.NewDesc("strata_stream_rpo_seconds", "Now minus the stream's newest restorable instant: what losing the database now would lose.", []string{"stream"}, nil)
	gapsDesc       = prometheus.NewDesc("strata_stream_gaps", "Gaps in the stream's stored log.", []string{"stream"}, nil)
	drillTimeDesc  = prometheus.NewDesc("strata_drill_last_timestamp_seconds", "When the stream's newest drill ran (unix seconds).", []string{"stream"}, nil)
	drillOKDesc    = prometheus.NewDesc("strata_drill_last_success", "1 when the stream's newest drill passed, 0 when it failed.", []string{"stream"}, nil)
	drillPassDesc  = prometheus.NewDesc("strata_drill_last_passed_timestamp_seconds", "When the stream's newest passing drill ran (unix seconds).", []string{"stream"}, nil)
	drillRTODesc   = prometheus.NewDesc("strata_drill_rto_seconds", "The recovery time the stream's newest passing drill measured.", []string{"stream"}, nil)
	limitDesc      = prometheus.NewDesc("strata_policy_limit_seconds", "The policy's limit for the stream: objective is snapshot_age, rpo, drill_age or rto; level warning or failure.", []string{"stream", "objective", "level"}, nil)
	scrubLimitDesc = prometheus.NewDesc("strata_policy_scrub_limit_seconds", "The policy's limit on the time since the newest scrub ended, by level (warning or failure).", []string{"level"}, nil)
	statusErrDesc  = prometheus.NewDesc("strata_status_errors_total", "Scrapes whose status could not be computed (the drill and scrub records could not be listed).", nil, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stateDesc, newestSnapDesc, snapAgeDesc, winStartDesc, winEndDesc, rpoDesc, gapsDesc,
		drillTimeDesc, drillOKDesc, drillPassDesc, drillRTODesc, limitDesc, scrubLimitDesc, statusErrDesc} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	rep, _, err := c.s.statusReport(context.Background())
	if err != nil {
		c.s.statusErrors.Add(1)
		c.s.o.Logger.Error("status metrics: records not read", "error", err)
	}
	ch <- prometheus.MustNewConstMetric(statusErrDesc, prometheus.CounterValue, float64(c.s.statusErrors.Load()))
	if rep == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, st := range rep.Streams {
		name := st.Stream
		g(stateDesc, float64(st.State), name)
		g(gapsDesc, float64(len(st.Gaps)), name)
		if st.NewestSnapshotTime != nil {
			g(newestSnapDesc, unixSeconds(*st.NewestSnapshotTime), name)
			g(snapAgeDesc, *st.SnapshotAgeSeconds, name)
		}
		if n := len(st.Windows); n > 0 {
			g(winStartDesc, unixSeconds(st.Windows[n-1].From), name)
			g(winEndDesc, unixSeconds(st.Windows[n-1].To), name)
			g(rpoDesc, *st.RPOSeconds, name)
		}
		if d := st.LastDrill; d != nil {
			g(drillTimeDesc, unixSeconds(d.Time), name)
			ok := 0.0
			if d.OK {
				ok = 1
			}
			g(drillOKDesc, ok, name)
		}
		if st.LastPassedDrill != nil {
			g(drillPassDesc, unixSeconds(*st.LastPassedDrill), name)
			g(drillRTODesc, *st.RTOSeconds, name)
		}
		if r := rep.Policy.Rule(name); r != nil {
			for _, l := range []struct {
				objective string
				l         *ops.Limit
			}{{"snapshot_age", r.SnapshotAge}, {"rpo", r.RPO}, {"drill_age", r.DrillAge}, {"rto", r.RTO}} {
				if l.l == nil {
					continue
				}
				if l.l.Warning != 0 {
					g(limitDesc, l.l.Warning.Seconds(), name, l.objective, "warning")
				}
				if l.l.Failure != 0 {
					g(limitDesc, l.l.Failure.Seconds(), name, l.objective, "failure")
				}
			}
		}
	}
	if p := rep.Policy; p != nil && p.ScrubAge != nil {
		if p.ScrubAge.Warning != 0 {
			g(scrubLimitDesc, p.ScrubAge.Warning.Seconds(), "warning")
		}
		if p.ScrubAge.Failure != 0 {
			g(scrubLimitDesc, p.ScrubAge.Failure.Seconds(), "failure")
		}
	}
	// The scrub series (strata_scrub_*, by keyed) come from the scrub
	// metrics (scrub.go), which follow the same records.
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
