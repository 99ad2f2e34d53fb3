package ops

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/index"
)

// State is how a stream or the repository stands against its objectives.
// Its value is the exit code of `strata status`: 0, 1 or 2.
type State int

// The states, in order of gravity.
const (
	OK State = iota
	Warning
	Failure
)

func (s State) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Failure:
		return "failure"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes "ok", "warning" or "failure".
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *State) UnmarshalText(b []byte) error {
	for _, v := range []State{OK, Warning, Failure} {
		if string(b) == v.String() {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("state %q: want ok, warning or failure", b)
}

// Finding is one check's verdict: which objective, the state it reached
// and why, in words an operator acts on.
type Finding struct {
	Check   string `json:"check"` // restorable, snapshot_age, rpo, drill, drill_age, rto, conflicts, scrub, scrub_age, records
	State   State  `json:"state"`
	Message string `json:"message"`
}

// Drills is what status needs of a stream's drill records: the newest one,
// and the newest that passed (the same record when the newest passed).
type Drills struct {
	Newest   *DrillRecord `json:"newest,omitempty"`
	NewestOK *DrillRecord `json:"newest_ok,omitempty"`
}

// Window is a restorable span of a stream, both ends inclusive.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Gap is a stretch of the log that is missing: positions FromPos..ToPos,
// between the events at After and Before.
type Gap struct {
	FromPos uint64    `json:"from_pos"`
	ToPos   uint64    `json:"to_pos"`
	After   time.Time `json:"after"`
	Before  time.Time `json:"before"`
}

// StreamStatus is one stream against its objectives.
type StreamStatus struct {
	Stream string `json:"stream"`
	State  State  `json:"state"`
	// Rule is the policy glob that set the stream's limits, "" for none.
	Rule      string `json:"rule,omitempty"`
	Snapshots int    `json:"snapshots"`
	// NewestSnapshot is the newest snapshot's ID and consistent time.
	NewestSnapshot     string     `json:"newest_snapshot,omitempty"`
	NewestSnapshotTime *time.Time `json:"newest_snapshot_time,omitempty"`
	SnapshotAgeSeconds *float64   `json:"snapshot_age_seconds,omitempty"`
	Segments           int        `json:"segments"`
	Windows            []Window   `json:"windows"`
	// RPOSeconds is now minus the end of the newest restorable window: what
	// a loss of the database now would lose.
	RPOSeconds *float64 `json:"rpo_seconds,omitempty"`
	Gaps       []Gap    `json:"gaps"`
	// LastDrill is the newest drill record; LastPassedDrill the newest one
	// that passed.
	LastDrill       *DrillRecord `json:"last_drill,omitempty"`
	LastPassedDrill *time.Time   `json:"last_passed_drill,omitempty"`
	// RTOSeconds is the recovery time the newest passing drill measured.
	RTOSeconds *float64  `json:"rto_seconds,omitempty"`
	Findings   []Finding `json:"findings"`
}

// Report is the status of every stream and of the repository's scrubs.
type Report struct {
	Time  time.Time `json:"time"`
	State State     `json:"state"` // the worst of every stream and finding
	// Policy is the policy in force; nil when none was given.
	Policy  *Policy        `json:"policy,omitempty"`
	Streams []StreamStatus `json:"streams"`
	// LastScrub is the newest scrub record; ScrubAgeSeconds its age.
	LastScrub       *ScrubRecord `json:"last_scrub,omitempty"`
	ScrubAgeSeconds *float64     `json:"scrub_age_seconds,omitempty"`
	// Findings are about the repository as a whole: scrubs and records.
	Findings []Finding `json:"findings"`
}

// Input is what Compute works from. Catalog and Now are required.
type Input struct {
	Catalog *index.Catalog
	// Coverage returns a stream's coverage; nil means Catalog.Coverage.
	// The index server passes its cached coverage.
	Coverage func(stream string) index.Coverage
	Drills   map[string]Drills // by stream
	Scrub    *ScrubRecord      // the newest scrub record, nil when none
	Policy   *Policy           // nil: no limits
	Now      time.Time
	// Segments, when set, counts each stream's log segments: a catalog
	// pieced together from an index server's answers (labels and
	// coverage) has streams in Logs but not their segments.
	Segments map[string]int
	// Problems are records that could not be read: each becomes a
	// repository warning, since it may hide a drill or a scrub.
	Problems []string
}

// Compute grades every stream of the catalog, and every stream a policy
// rule names exactly (a glob without '*' or '?') though the catalog lacks
// it, against the policy. It never fails: what it cannot know is a finding.
func Compute(in Input) *Report {
	cov := in.Coverage
	if cov == nil {
		cov = in.Catalog.Coverage
	}
	rep := &Report{Time: in.Now.UTC(), Policy: in.Policy, LastScrub: in.Scrub}
	names := map[string]bool{}
	for _, s := range in.Catalog.Snapshots {
		names[s.Stream] = true
	}
	for name := range in.Catalog.Logs {
		names[name] = true
	}
	if in.Policy != nil {
		for _, r := range in.Policy.Streams {
			if !strings.ContainsAny(r.Match, "*?") {
				names[r.Match] = true
			}
		}
	}
	for name := range names {
		rep.Streams = append(rep.Streams, streamStatus(in, name, cov(name)))
	}
	slices.SortFunc(rep.Streams, func(a, b StreamStatus) int { return cmp.Compare(a.Stream, b.Stream) })

	var scrubAge *Limit
	if in.Policy != nil {
		scrubAge = in.Policy.ScrubAge
	}
	add := func(check string, st State, format string, args ...any) {
		rep.Findings = append(rep.Findings, Finding{Check: check, State: st, Message: fmt.Sprintf(format, args...)})
	}
	if sc := in.Scrub; sc != nil {
		age := in.Now.Sub(sc.Time)
		rep.ScrubAgeSeconds = seconds(age)
		if sc.Unrepaired > 0 {
			add("scrub", Failure, "the newest scrub (%s) found %d damaged shards that parity could not repair: run `strata check --read-data` and restore the packs from another store", formatTime(sc.Time), sc.Unrepaired)
		}
		if sc.Error != "" {
			add("scrub", Warning, "the newest scrub (%s) ended with an error: %s", formatTime(sc.Time), sc.Error)
		}
		if g := scrubAge.Grade(age); g != OK {
			add("scrub_age", g, "the newest scrub ended %s ago, over its %s", FormatDuration(roundDuration(age)), scrubAge.levelFor(g))
		}
	} else if scrubAge != nil {
		add("scrub_age", Failure, "no scrub has run (scrub age %s)", scrubAge.levelFor(Failure))
	}
	for _, p := range in.Problems {
		add("records", Warning, "%s", p)
	}
	for _, f := range rep.Findings {
		rep.State = max(rep.State, f.State)
	}
	for _, s := range rep.Streams {
		rep.State = max(rep.State, s.State)
	}
	return rep
}

func streamStatus(in Input, name string, cov index.Coverage) StreamStatus {
	now := in.Now
	st := StreamStatus{Stream: name, Windows: []Window{}, Gaps: []Gap{}, Findings: []Finding{}}
	rule := in.Policy.Rule(name)
	if rule == nil {
		rule = &Rule{}
	}
	st.Rule = rule.Match
	add := func(check string, s State, format string, args ...any) {
		st.Findings = append(st.Findings, Finding{Check: check, State: s, Message: fmt.Sprintf(format, args...)})
		st.State = max(st.State, s)
	}
	snaps := in.Catalog.Stream(name)
	st.Snapshots = len(snaps)
	if n := len(snaps); n > 0 {
		newest := snaps[n-1]
		t := newest.Time.UTC()
		st.NewestSnapshot, st.NewestSnapshotTime = newest.ID.String(), &t
		age := now.Sub(t)
		st.SnapshotAgeSeconds = seconds(age)
		if g := rule.SnapshotAge.Grade(age); g != OK {
			add("snapshot_age", g, "the newest snapshot is %s old, over its %s", FormatDuration(roundDuration(age)), rule.SnapshotAge.levelFor(g))
		}
	}
	if l := in.Catalog.Logs[name]; l != nil {
		st.Segments = len(l.Segments)
	}
	if in.Segments != nil {
		st.Segments = in.Segments[name]
	}
	for _, w := range cov.Windows {
		st.Windows = append(st.Windows, Window{From: w.From.UTC(), To: w.To.UTC()})
	}
	for _, g := range cov.Gaps {
		st.Gaps = append(st.Gaps, Gap{FromPos: g.FromPos, ToPos: g.ToPos, After: g.After.UTC(), Before: g.Before.UTC()})
	}
	if n := len(st.Windows); n == 0 {
		what := "the repository holds nothing of it"
		switch {
		case st.Segments > 0:
			what = "it has log but no snapshot to apply it to"
		case st.Snapshots > 0:
			what = "no snapshot of it is restorable"
		}
		add("restorable", Failure, "nothing restorable: %s", what)
	} else {
		lag := now.Sub(st.Windows[n-1].To)
		st.RPOSeconds = seconds(lag)
		if g := rule.RPO.Grade(lag); g != OK {
			msg := "the newest restorable instant is %s old, over the RPO's %s"
			if k := len(st.Gaps); k > 0 && st.Gaps[k-1].After.Equal(st.Windows[n-1].To) {
				msg += " (a log gap follows it: take a snapshot)"
			}
			add("rpo", g, msg, FormatDuration(roundDuration(lag)), rule.RPO.levelFor(g))
		}
	}
	if len(cov.Conflicts) > 0 {
		add("conflicts", Warning, "%d log segments overlap another's: two writers on one stream", len(cov.Conflicts))
	}
	d := in.Drills[name]
	st.LastDrill = d.Newest
	if d.NewestOK != nil {
		t := d.NewestOK.Time.UTC()
		st.LastPassedDrill = &t
		rto := d.NewestOK.RTOSeconds
		st.RTOSeconds = &rto
	}
	if d.Newest != nil && !d.Newest.OK {
		why := d.Newest.Error
		if why == "" {
			why = "a check failed"
		}
		add("drill", Failure, "the newest drill (%s) failed: %s", formatTime(d.Newest.Time), why)
	}
	if rule.DrillAge != nil {
		if d.NewestOK == nil {
			add("drill_age", Failure, "no drill has passed (drill age %s)", rule.DrillAge.levelFor(Failure))
		} else if age := now.Sub(d.NewestOK.Time); rule.DrillAge.Grade(age) != OK {
			g := rule.DrillAge.Grade(age)
			add("drill_age", g, "the newest passing drill ran %s ago, over its %s", FormatDuration(roundDuration(age)), rule.DrillAge.levelFor(g))
		}
	}
	if rule.RTO != nil && d.NewestOK != nil {
		rto := time.Duration(d.NewestOK.RTOSeconds * float64(time.Second))
		if g := rule.RTO.Grade(rto); g != OK {
			add("rto", g, "the newest passing drill took %s to restore, over the RTO's %s", FormatDuration(roundDuration(rto)), rule.RTO.levelFor(g))
		}
	}
	return st
}

// levelFor names the level a grade crossed, for messages: "warning level
// 5m", "failure level 8d".
func (l *Limit) levelFor(s State) string {
	if l == nil {
		return "-"
	}
	if s == Failure && l.Failure != 0 || l.Warning == 0 {
		return "failure level " + FormatDuration(time.Duration(l.Failure))
	}
	return "warning level " + FormatDuration(time.Duration(l.Warning))
}

// FormatDuration writes d as a policy file would: whole days as "8d",
// otherwise Go's form without trailing zero units ("1h", "1h30m", "90s").
func FormatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

func seconds(d time.Duration) *float64 {
	v := d.Seconds()
	return &v
}

// roundDuration keeps messages short: seconds below an hour, minutes above.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
