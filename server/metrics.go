package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/server/wire"
)

// metrics are the server's Prometheus series (PROTOCOL.md, "Metrics").
type metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	planLatency     prometheus.Histogram
	backups         prometheus.Counter
	backupBytes     prometheus.Counter
	storedBytes     prometheus.Counter
	uploadBytes     prometheus.Counter
	restores        *prometheus.CounterVec
	restoreDuration prometheus.Histogram
	checks          *prometheus.CounterVec
	checkProblems   prometheus.Gauge
	checkTime       prometheus.Gauge
	auditFailures   prometheus.Counter
	busyRefusals    prometheus.Counter
	// in and stored mirror backupBytes and storedBytes for the dedup ratio.
	in, stored atomic.Int64
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_http_requests_total",
			Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_http_request_duration_seconds",
			Help: "HTTP request latency by endpoint.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"endpoint"}),
		planLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_plan_duration_seconds",
			Help: "Time to compute a restore plan from the catalog.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
		backups: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_backups_total",
			Help: "Snapshots stored through the server."}),
		backupBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_backup_bytes_total",
			Help: "Bytes of the exports backed up (before dedup and compression)."}),
		storedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_backup_stored_bytes_total",
			Help: "New sealed bytes the backups added (after dedup and compression, before parity)."}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_upload_bytes_total",
			Help: "Bytes of objects accepted (shards with parity, manifests, labels)."}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_restores_total",
			Help: "Restores reported by clients, by result."}, []string{"result"}),
		restoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_restore_duration_seconds",
			Help: "Restore durations reported by clients.", Buckets: prometheus.ExponentialBuckets(0.1, 3, 10)}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_checks_total",
			Help: "Checks reported by clients, by result (clean or damaged)."}, []string{"result"}),
		checkProblems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_check_problems",
			Help: "Problems the newest check found."}),
		checkTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_check_last_timestamp_seconds",
			Help: "When the newest check was reported (unix seconds)."}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_audit_write_failures_total",
			Help: "Failed writes of the audit trail (records are retried)."}),
		busyRefusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_memory_busy_total",
			Help: "Requests answered 503 because the memory budget stayed full (PROTOCOL.md, Limits and memory)."}),
	}
	reg.MustRegister(m.requests, m.latency, m.planLatency, m.backups, m.backupBytes, m.storedBytes, m.uploadBytes,
		m.restores, m.restoreDuration, m.checks, m.checkProblems, m.checkTime, m.auditFailures, m.busyRefusals,
		&catalogCollector{s: s}, &statusCollector{s: s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.audit.failed = m.auditFailures.Inc
	return m
}

// endpointMetrics are one endpoint's request series, looked up once: a
// labelled series is otherwise found by hashing its label values on
// every request. Each is made on the endpoint's first request, as
// WithLabelValues would, so /metrics lists the same series.
type endpointMetrics struct {
	m       *metrics
	name    string
	latency atomic.Pointer[prometheus.Observer]
	ok      atomic.Pointer[prometheus.Counter] // code 200
}

func (m *metrics) endpoint(name string) *endpointMetrics {
	return &endpointMetrics{m: m, name: name}
}

func (e *endpointMetrics) request(status int, took time.Duration) {
	if status == http.StatusOK {
		ok := e.ok.Load()
		if ok == nil {
			c := e.m.requests.WithLabelValues(e.name, "200")
			ok = &c
			e.ok.Store(ok) // racing stores hold the same series
		}
		(*ok).Inc()
	} else {
		e.m.requests.WithLabelValues(e.name, strconv.Itoa(status)).Inc()
	}
	lat := e.latency.Load()
	if lat == nil {
		o := e.m.latency.WithLabelValues(e.name)
		lat = &o
		e.latency.Store(lat)
	}
	(*lat).Observe(took.Seconds())
}

func (m *metrics) request(endpoint string, status int, took time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(took.Seconds())
}

func (m *metrics) planned(took time.Duration) { m.planLatency.Observe(took.Seconds()) }

func (m *metrics) uploaded(n int) { m.uploadBytes.Add(float64(n)) }

func (m *metrics) busy() { m.busyRefusals.Inc() }

func (m *metrics) backup(l *repo.Label) {
	m.backups.Inc()
	m.backupBytes.Add(float64(l.Size))
	m.storedBytes.Add(float64(l.StoredBytes))
	m.in.Add(l.Size)
	m.stored.Add(l.StoredBytes)
}

func (m *metrics) restored(r wire.RestoreReport) {
	result := "ok"
	if r.Error != "" {
		result = "failed"
	}
	m.restores.WithLabelValues(result).Inc()
	m.restoreDuration.Observe(r.Seconds)
}

func (m *metrics) checked(r wire.CheckReport, now time.Time) {
	result := "clean"
	if len(r.Problems) > 0 {
		result = "damaged"
	}
	m.checks.WithLabelValues(result).Inc()
	m.checkProblems.Set(float64(len(r.Problems)))
	m.checkTime.Set(float64(now.Unix()))
}

// catalogCollector reports, at scrape time, what the catalog holds: per
// stream the log lag (now minus the newest event), and the dedup ratio of
// everything backed up through the server.
type catalogCollector struct{ s *Server }

var (
	lagDesc   = prometheus.NewDesc("strata_log_lag_seconds", "Now minus the time of the stream's newest stored event.", []string{"stream"}, nil)
	snapDesc  = prometheus.NewDesc("strata_catalog_snapshots", "Snapshots in the catalog.", nil, nil)
	segDesc   = prometheus.NewDesc("strata_catalog_segments", "Log segments in the catalog.", nil, nil)
	dedupDesc = prometheus.NewDesc("strata_dedup_ratio", "Export bytes backed up over the sealed bytes they added, since the server started (1 means no saving).", nil, nil)
)

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- snapDesc
	ch <- segDesc
	ch <- dedupDesc
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.s.o.Now()
	var snaps, segs int
	c.s.cat.read(func(cat *index.Catalog) {
		snaps = len(cat.Snapshots)
		for name, l := range cat.Logs {
			segs += len(l.Segments)
			if n, ok := l.Newest(); ok {
				ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, now.Sub(time.Unix(0, n.LastTime)).Seconds(), name)
			}
		}
	})
	ch <- prometheus.MustNewConstMetric(snapDesc, prometheus.GaugeValue, float64(snaps))
	ch <- prometheus.MustNewConstMetric(segDesc, prometheus.GaugeValue, float64(segs))
	m := c.s.metrics
	if m == nil {
		return
	}
	ratio := 1.0
	if stored := m.stored.Load(); stored > 0 {
		ratio = float64(m.in.Load()) / float64(stored)
	}
	ch <- prometheus.MustNewConstMetric(dedupDesc, prometheus.GaugeValue, ratio)
}
