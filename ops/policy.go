package ops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/strata-backup/strata/server/auth"
)

// Policy is a set of recovery objectives: per stream glob, how old the
// newest snapshot may get, how far behind the restorable log may fall (the
// RPO), how often a drill must pass and how long it may take (the RTO),
// and, for the whole repository, how long ago a scrub may have run. It is
// read from a small YAML file (ParsePolicy); the zero Policy sets no limit,
// so only hard facts (nothing restorable, a failed drill, damage a scrub
// could not repair) raise a state.
//
//	scrub_age: {warning: 8d, failure: 31d}
//	streams:
//	  - match: "shop/*"
//	    snapshot_age: {warning: 26h, failure: 50h}
//	    rpo: {warning: 5m, failure: 30m}
//	    drill_age: {warning: 8d, failure: 15d}
//	    rto: {warning: 10m, failure: 1h}
//	  - match: "*"
//	    snapshot_age: {warning: 8d, failure: 15d}
type Policy struct {
	// ScrubAge bounds the time since the newest scrub pass ended.
	ScrubAge *Limit `yaml:"scrub_age,omitempty" json:"scrub_age,omitempty"`
	// Streams are tried in order; the first whose Match matches a stream
	// sets its limits. A stream no rule matches has no limits.
	Streams []Rule `yaml:"streams" json:"streams"`
}

// Rule is the objectives of the streams one glob matches. A nil limit is
// not checked.
type Rule struct {
	// Match is a stream glob as token scopes write them: '*' any run of
	// characters including '/', '?' one character other than '/'.
	Match       string `yaml:"match" json:"match"`
	SnapshotAge *Limit `yaml:"snapshot_age,omitempty" json:"snapshot_age,omitempty"`
	RPO         *Limit `yaml:"rpo,omitempty" json:"rpo,omitempty"`
	// DrillAge bounds the time since the newest drill that passed.
	DrillAge *Limit `yaml:"drill_age,omitempty" json:"drill_age,omitempty"`
	// RTO bounds the recovery time the newest passing drill measured.
	RTO *Limit `yaml:"rto,omitempty" json:"rto,omitempty"`
}

// Limit is a warning and a failure level. A value above Warning is a
// warning, above Failure a failure; either level may be left out (zero),
// but when both are given Warning must not exceed Failure.
type Limit struct {
	Warning Duration `yaml:"warning,omitempty" json:"warning_seconds,omitempty"`
	Failure Duration `yaml:"failure,omitempty" json:"failure_seconds,omitempty"`
}

// Duration is a time.Duration written as Go writes durations ("90s",
// "26h", "1h30m") or as whole days ("8d"). In JSON it is seconds.
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 15m, 26h or 8d", n.Line)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Seconds returns the duration in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

// MarshalJSON writes the duration as seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(d).Seconds(), 'f', -1, 64), nil
}

// ParseDuration parses "8d" (whole days) or anything time.ParseDuration
// accepts; it refuses negative durations.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		n, err = strconv.ParseInt(days, 10, 32)
		if n > maxDays {
			return 0, fmt.Errorf("duration %q: at most %d days", s, maxDays)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want a non-negative duration such as 15m, 26h or 8d", s)
	}
	return d, nil
}

// maxDays bounds a duration in days, well inside time.Duration's range.
const maxDays = 36500

// maxPolicyBytes bounds a policy file: a policy is a few rules.
const maxPolicyBytes = 1 << 20

// ErrPolicy is wrapped by every refusal of a policy file.
var ErrPolicy = errors.New("bad policy")

// ParsePolicy reads a YAML policy. Unknown fields, rules without a match,
// and limits whose warning level exceeds their failure level are refused
// (wrapping ErrPolicy), so a typo cannot silently drop an objective.
func ParsePolicy(r io.Reader) (*Policy, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPolicyBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrPolicy, maxPolicyBytes)
	}
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	return &p, nil
}

// LoadPolicy reads the policy file at path (ParsePolicy).
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	p, err := ParsePolicy(f)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

func (p *Policy) validate() error {
	if err := p.ScrubAge.validate(); err != nil {
		return fmt.Errorf("scrub_age: %w", err)
	}
	for i, r := range p.Streams {
		if r.Match == "" || len(r.Match) > 256 {
			return fmt.Errorf("streams[%d]: match must be a stream glob of 1 to 256 bytes", i)
		}
		for _, l := range []struct {
			name string
			l    *Limit
		}{{"snapshot_age", r.SnapshotAge}, {"rpo", r.RPO}, {"drill_age", r.DrillAge}, {"rto", r.RTO}} {
			if err := l.l.validate(); err != nil {
				return fmt.Errorf("streams[%d] (%s): %s: %w", i, r.Match, l.name, err)
			}
		}
	}
	return nil
}

func (l *Limit) validate() error {
	switch {
	case l == nil:
		return nil
	case l.Warning == 0 && l.Failure == 0:
		return errors.New("give a warning level, a failure level or both")
	case l.Warning != 0 && l.Failure != 0 && l.Warning > l.Failure:
		return fmt.Errorf("warning level %s is above the failure level %s", time.Duration(l.Warning), time.Duration(l.Failure))
	}
	return nil
}

// Rule returns the first rule matching stream, or nil when none does.
func (p *Policy) Rule(stream string) *Rule {
	if p == nil {
		return nil
	}
	for i := range p.Streams {
		if auth.MatchGlob(p.Streams[i].Match, stream) {
			return &p.Streams[i]
		}
	}
	return nil
}

// Grade is the state a value reaches against the limit: Failure when over
// the failure level, Warning when over the warning level, else OK. A nil
// limit grades everything OK.
func (l *Limit) Grade(v time.Duration) State {
	switch {
	case l == nil:
		return OK
	case l.Failure != 0 && v > time.Duration(l.Failure):
		return Failure
	case l.Warning != 0 && v > time.Duration(l.Warning):
		return Warning
	}
	return OK
}
