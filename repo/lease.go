package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Leases (FORMAT.md §15, "One writer per stream"): a stream's capture
// holds a lease, a numbered sequence of small clear JSON objects
// leases/<stream>/@<generation:20>, each created only if absent
// (Creator). The holder renews by creating the next generation; a writer
// takes over by creating the next generation with itself as holder, and
// its epoch, the generation it took over at, is the fencing token every
// segment it writes carries.

// LeasesPrefix starts every lease object's name.
const LeasesPrefix = "leases/"

// MaxLeaseSize bounds a lease object read or upload.
const MaxLeaseSize = 4 << 10

// Bounds on a lease's renewal interval and missed-renewal count, so that a
// hostile lease cannot make a standby wait for ever.
const (
	MaxLeaseInterval = time.Hour
	MaxLeaseMissed   = 100
)

const leaseVersion = 1

// Lease is one generation of a stream's lease.
type Lease struct {
	Version    int    `json:"version"`
	Stream     string `json:"stream"`
	Generation uint64 `json:"generation"` // as in the name; 1 for the stream's first
	// Epoch is the generation at which Holder took the lease: equal to
	// Generation in the generation that took it, kept by its renewals. It
	// is the fencing token of the holder's segments (Segment.Epoch).
	Epoch  uint64      `json:"epoch"`
	Holder LeaseHolder `json:"holder"`
	// Since is when the holder took the lease and Renewed when it wrote
	// this generation, both by the holder's clock: for people, never
	// compared with another clock.
	Since   time.Time `json:"since"`
	Renewed time.Time `json:"renewed"`
	// IntervalMS is how often, in milliseconds, the holder renews; Missed is
	// how many intervals without a new generation a standby waits, by its
	// own clock, before it takes over.
	IntervalMS int64 `json:"interval_ms"`
	Missed     int   `json:"missed"`
	// Released: the holder stopped and gave the lease up; anyone may take
	// it at once.
	Released bool `json:"released,omitempty"`
}

// LeaseHolder names a lease's holder.
type LeaseHolder struct {
	ID   string `json:"id"` // 32 hex digits, random per capture: two captures in one process differ
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// Interval returns the lease's renewal interval.
func (l *Lease) Interval() time.Duration { return time.Duration(l.IntervalMS) * time.Millisecond }

// String describes the holder for messages: host, pid and since.
func (h LeaseHolder) String() string { return fmt.Sprintf("host %s pid %d", h.Host, h.PID) }

// Describe says who holds the lease and since when, for messages.
func (l *Lease) Describe() string {
	return fmt.Sprintf("%s since %s (epoch %d, generation %d, renewed every %s)",
		l.Holder, l.Since.UTC().Format(time.RFC3339), l.Epoch, l.Generation, l.Interval())
}

// LeaseName is the object name of generation gen of stream's lease.
func LeaseName(stream string, gen uint64) string {
	return string(appendPadded([]byte(StreamLeasePrefix(stream)), gen, 20))
}

// StreamLeasePrefix lists exactly one stream's lease generations:
// leases/<stream>/@ ('@' cannot start a stream name segment).
func StreamLeasePrefix(stream string) string { return LeasesPrefix + stream + "/@" }

// ParseLeaseName reverses LeaseName.
func ParseLeaseName(name string) (stream string, gen uint64, err error) {
	rest, ok := strings.CutPrefix(name, LeasesPrefix)
	at := strings.LastIndex(rest, "/@")
	if !ok || at <= 0 || len(rest)-at-2 != 20 {
		return "", 0, fmt.Errorf("not a lease name: %q", name)
	}
	stream = rest[:at]
	if err := ValidStream(stream); err != nil {
		return "", 0, fmt.Errorf("not a lease name: %q: %v", name, err)
	}
	digits := rest[at+2:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", 0, fmt.Errorf("not a lease name: %q", name)
		}
	}
	gen, err = strconv.ParseUint(digits, 10, 64)
	if err != nil || gen == 0 {
		return "", 0, fmt.Errorf("not a lease name: %q", name)
	}
	return stream, gen, nil
}

// Encode returns the lease's stored bytes.
func (l *Lease) Encode() ([]byte, error) {
	l.Version = leaseVersion
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("encode lease: %w", err)
	}
	return jsonMarshal(l)
}

// DecodeLease parses and checks a lease object against its name. Unknown
// fields are refused, as for labels: an index server stores leases and
// must not store what it cannot check.
func DecodeLease(name string, b []byte) (*Lease, error) {
	if len(b) > MaxLeaseSize {
		return nil, corrupt(name, -1, "lease of %d bytes, over the limit %d", len(b), MaxLeaseSize)
	}
	stream, gen, err := ParseLeaseName(name)
	if err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lease
	if err := dec.Decode(&l); err != nil {
		return nil, corrupt(name, -1, "lease is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, corrupt(name, -1, "lease has trailing data")
	}
	if l.Version != leaseVersion {
		return nil, fmt.Errorf("%s: %w: lease version %d", name, ErrUnsupportedVersion, l.Version)
	}
	if err := l.validate(); err != nil {
		return nil, corrupt(name, -1, "%v", err)
	}
	if l.Stream != stream || l.Generation != gen {
		return nil, corrupt(name, -1, "lease says stream %s generation %d, its name otherwise", l.Stream, l.Generation)
	}
	return &l, nil
}

func (l *Lease) validate() error {
	if err := ValidStream(l.Stream); err != nil {
		return err
	}
	switch {
	case l.Generation == 0 || l.Epoch == 0 || l.Epoch > l.Generation:
		return fmt.Errorf("lease generation %d epoch %d: want 1 ≤ epoch ≤ generation", l.Generation, l.Epoch)
	case len(l.Holder.ID) != 32 || !isLowerHex(l.Holder.ID):
		return fmt.Errorf("lease holder ID %q: want 32 lowercase hex digits", l.Holder.ID)
	case l.Holder.Host == "" || len(l.Holder.Host) > 255 || !utf8.ValidString(l.Holder.Host) || strings.ContainsFunc(l.Holder.Host, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("lease holder host: want 1 to 255 bytes of printable UTF-8")
	case l.Holder.PID < 0:
		return fmt.Errorf("lease holder pid %d", l.Holder.PID)
	case l.IntervalMS <= 0 || l.Interval() > MaxLeaseInterval:
		return fmt.Errorf("lease interval %d ms: want 1 ms to %s", l.IntervalMS, MaxLeaseInterval)
	case l.Missed < 1 || l.Missed > MaxLeaseMissed:
		return fmt.Errorf("lease missed renewals %d: want 1 to %d", l.Missed, MaxLeaseMissed)
	case l.Since.IsZero() || l.Renewed.IsZero():
		return fmt.Errorf("lease without since or renewed time")
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewestLease lists stream's lease generations and returns the newest, nil
// when the stream has none. A newest generation that does not decode is
// returned as its error (damage: check reports it), with its generation,
// so a writer can still go past it.
func NewestLease(ctx context.Context, s Store, stream string) (*Lease, uint64, error) {
	var newest string
	var gen uint64
	err := s.List(ctx, StreamLeasePrefix(stream), func(oi ObjectInfo) error {
		if _, g, err := ParseLeaseName(oi.Name); err == nil && g > gen {
			newest, gen = oi.Name, g
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list the lease of %s: %w", stream, err)
	}
	if gen == 0 {
		return nil, 0, nil
	}
	b, err := s.Get(ctx, newest)
	if err != nil {
		return nil, gen, fmt.Errorf("read the lease of %s: %w", stream, err)
	}
	l, err := DecodeLease(newest, b)
	return l, gen, err
}
