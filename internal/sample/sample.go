package sample

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Default values of Options' zero fields.
const (
	DefaultDocs       = 100_000
	DefaultSeed       = 1
	DefaultUpdateRate = 0.01
	DefaultInsertRate = 0.005
	DefaultDeleteRate = 0.005
)

// DefaultStart is the instant of the day-0 export: 2026-01-01T00:00:00Z.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Day is the length of one generated day.
const Day = 24 * time.Hour

// MaxDocs bounds Docs, so a typo cannot ask for a terabyte.
const MaxDocs = 100_000_000

// Options choose a data set. The zero value is valid: DefaultDocs documents,
// seed DefaultSeed, the default rates, starting at DefaultStart.
type Options struct {
	Docs                               int
	Seed                               uint64
	UpdateRate, InsertRate, DeleteRate float64 // fractions of the live documents, per day
	Start                              time.Time
}

// ErrOptions wraps every refusal of bad Options or arguments.
var ErrOptions = errors.New("sample: invalid options")

func (o *Options) validate() error {
	if o.Docs == 0 {
		o.Docs = DefaultDocs
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.UpdateRate == 0 && o.InsertRate == 0 && o.DeleteRate == 0 {
		o.UpdateRate, o.InsertRate, o.DeleteRate = DefaultUpdateRate, DefaultInsertRate, DefaultDeleteRate
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	switch {
	case o.Docs < 1 || o.Docs > MaxDocs:
		return fmt.Errorf("%w: docs %d, want 1 to %d", ErrOptions, o.Docs, MaxDocs)
	case o.UpdateRate < 0 || o.InsertRate < 0 || o.DeleteRate < 0 || o.UpdateRate+o.InsertRate+o.DeleteRate > 1:
		return fmt.Errorf("%w: rates must be ≥ 0 and sum to at most 1", ErrOptions)
	case o.Start.Unix() < 0:
		return fmt.Errorf("%w: start before 1970", ErrOptions)
	}
	return nil
}

// Generator produces one data set. It is not safe for concurrent use.
type Generator struct {
	o Options
}

// New returns a generator for o, or an error wrapping ErrOptions.
func New(o Options) (*Generator, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Generator{o: o}, nil
}

// Options returns the options in use, defaults filled in.
func (g *Generator) Options() Options { return g.o }

// DayTime returns the instant of day d's export.
func (g *Generator) DayTime(d int) time.Time { return g.o.Start.Add(time.Duration(d) * Day) }

// Key returns the key of document id.
func Key(id uint64) string { return fmt.Sprintf("user-%010d", id) }

// Op is what an event does.
type Op string

// The event operations.
const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
)

// Event is one change. Doc is nil for a delete.
type Event struct {
	Seq  uint64
	Time time.Time // whole seconds
	Op   Op
	Key  string
	Doc  []byte
}

// AppendJSON appends e as one event line, without the newline.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, e.Time.Unix(), 10)
	b = append(b, `,"op":"`...)
	b = append(b, e.Op...)
	b = append(b, `","key":"`...)
	b = append(b, e.Key...)
	b = append(b, '"')
	if e.Op == OpPut {
		b = append(b, `,"doc":`...)
		b = append(b, e.Doc...)
	}
	return append(b, '}')
}

// state is the live documents: id → revision. next is the id the next
// insert takes.
type state struct {
	rev  map[uint64]uint32
	next uint64
}

func (g *Generator) initial() *state {
	s := &state{rev: make(map[uint64]uint32, g.o.Docs), next: uint64(g.o.Docs)}
	for id := range uint64(g.o.Docs) {
		s.rev[id] = 0
	}
	return s
}

// change is one step of a day, before it is numbered and rendered.
type change struct {
	ts  int64 // unix seconds
	op  Op
	id  uint64
	rev uint32
}

// noCut is a cut no event time reaches.
const noCut = int64(1<<63 - 1)

// day applies day d (≥ 1) to s, stopping before the first change whose time
// is after cut, and calls fn (when not nil) with each change it applies, in
// order. It reports whether the whole day was applied.
func (g *Generator) day(s *state, d int, cut int64, fn func(change)) bool {
	live := len(s.rev)
	nu := int(float64(live) * g.o.UpdateRate)
	ni := int(float64(live) * g.o.InsertRate)
	nd := int(float64(live) * g.o.DeleteRate)
	n := nu + ni + nd
	if n == 0 {
		return true
	}
	// Each day draws from its own stream, so day d does not depend on how
	// many numbers earlier days consumed.
	rng := rand.New(rand.NewPCG(g.o.Seed, 0x5d1ce^uint64(d)<<20))
	const update, insert, remove = 0, 1, 2
	kinds := make([]byte, 0, n)
	for k, c := range [3]int{nu, ni, nd} {
		for range c {
			kinds = append(kinds, byte(k))
		}
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	from := g.DayTime(d - 1).Unix()
	span := int64(Day / time.Second)
	for i, k := range kinds {
		// Evenly spread strictly inside the day; with more than 86,399
		// changes a day, neighbours share a second.
		c := change{ts: from + 1 + int64(i)*(span-1)/int64(n)}
		if c.ts > cut {
			return false
		}
		switch k {
		case insert:
			c.op, c.id = OpPut, s.next
			s.next++
			s.rev[c.id] = 0
		case update, remove:
			id, ok := s.pick(rng)
			if !ok { // nothing left to change
				continue
			}
			c.id = id
			if k == update {
				s.rev[id]++
				c.op, c.rev = OpPut, s.rev[id]
			} else {
				delete(s.rev, id)
				c.op = OpDelete
			}
		}
		if fn != nil {
			fn(c)
		}
	}
	return true
}

// pick returns a live id: a random id below next, or the first live one
// after it (wrapping), so deleted ids are skipped deterministically.
func (s *state) pick(rng *rand.Rand) (uint64, bool) {
	if len(s.rev) == 0 {
		return 0, false
	}
	id := rng.Uint64N(s.next)
	for {
		if _, ok := s.rev[id]; ok {
			return id, true
		}
		id = (id + 1) % s.next
	}
}

// Export writes day d's export: the live documents sorted by key, one a line.
func (g *Generator) Export(w io.Writer, d int) error {
	if d < 0 {
		return fmt.Errorf("%w: day %d", ErrOptions, d)
	}
	return g.StateAt(w, g.DayTime(d))
}

// StateAt writes the state at instant t: day 0's documents with every event
// whose time is at or before t applied, sorted by key. It is what a
// point-in-time restore at t from the day-0 export and the log must output.
func (g *Generator) StateAt(w io.Writer, t time.Time) error {
	s, err := g.stateAt(t)
	if err != nil {
		return err
	}
	return g.write(w, s)
}

// Lookup returns the document with key at instant t, or nil when there is
// none.
func (g *Generator) Lookup(key string, t time.Time) ([]byte, error) {
	s, err := g.stateAt(t)
	if err != nil {
		return nil, err
	}
	var id uint64
	if _, err := fmt.Sscanf(key, "user-%d", &id); err != nil || Key(id) != key {
		return nil, nil
	}
	rev, ok := s.rev[id]
	if !ok {
		return nil, nil
	}
	return g.Doc(nil, id, rev), nil
}

func (g *Generator) stateAt(t time.Time) (*state, error) {
	if t.Before(g.o.Start) {
		return nil, fmt.Errorf("%w: %s is before the day-0 export (%s)", ErrOptions, t.UTC().Format(time.RFC3339), g.o.Start.UTC().Format(time.RFC3339))
	}
	s := g.initial()
	cut := t.Unix() // event times are whole seconds: ts ≤ t ⇔ ts ≤ floor(t)
	for d := 1; g.DayTime(d-1).Unix() < cut; d++ {
		if !g.day(s, d, cut, nil) {
			break
		}
	}
	return s, nil
}

// Changes writes the events of day d (≥ 1), numbered from Position(d−1)+1.
func (g *Generator) Changes(w io.Writer, d int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	err := g.Events(d, d, func(e *Event) error {
		line = append(e.AppendJSON(line[:0]), '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// Events calls fn with every event of days from … to (1 ≤ from ≤ to), in
// order. The event and its Doc are valid only during the call.
func (g *Generator) Events(from, to int, fn func(*Event) error) error {
	if from < 1 || to < from {
		return fmt.Errorf("%w: days %d to %d, want 1 ≤ from ≤ to", ErrOptions, from, to)
	}
	s := g.initial()
	var seq uint64
	var err error
	var e Event
	for d := 1; d <= to && err == nil; d++ {
		g.day(s, d, noCut, func(c change) {
			seq++
			if d < from || err != nil {
				return
			}
			e = Event{Seq: seq, Time: time.Unix(c.ts, 0).UTC(), Op: c.op, Key: Key(c.id), Doc: e.Doc[:0]}
			if c.op == OpPut {
				e.Doc = g.Doc(e.Doc, c.id, c.rev)
			}
			err = fn(&e)
		})
	}
	return err
}

// Position returns the number of events of days 1 … d: the log position
// day d's export is consistent at.
func (g *Generator) Position(d int) uint64 {
	s := g.initial()
	var n uint64
	for day := 1; day <= d; day++ {
		g.day(s, day, noCut, func(change) { n++ })
	}
	return n
}

func (g *Generator) write(w io.Writer, s *state) error {
	ids := make([]uint64, 0, len(s.rev))
	for id := range s.rev {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	bw := bufio.NewWriterSize(w, 1<<20)
	var b []byte
	for _, id := range ids {
		b = append(g.Doc(b[:0], id, s.rev[id]), '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}
