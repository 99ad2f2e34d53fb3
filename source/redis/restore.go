package redis

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// RestoreOptions tune Restore; the zero value is a valid default.
type RestoreOptions struct {
	// Force replaces the contents of a target that holds keys.
	Force bool
	Logf  func(format string, args ...any)
	// Timeout bounds each wait on the target: its connection to this
	// process, and acknowledgement progress while it loads and applies;
	// default 2 minutes.
	Timeout time.Duration
	// Expect, if set, returns the recorded proof of a snapshot of the
	// stream whose consistent point is position pos, and a name for it:
	// the state a restore that applied commands reaches is checked
	// against it (FORMAT.md §11.1).
	Expect func(pos uint64) (p repo.Proof, what string, ok bool)
	// ReadBack reads the target back into RestoreStats.Proof even when
	// there is no proof to compare it with.
	ReadBack bool
}

// RestoreStats say what a restore did.
type RestoreStats struct {
	RDBBytes int64
	Commands int64  // commands replayed after the base
	Through  uint64 // the last position applied (the base's when none)
	// CutMulti is set when the target fell inside a MULTI/EXEC unit: the
	// unit is left out, and the restore ends before its MULTI.
	CutMulti bool
	// Proof is what the target held when it was read back after the
	// restore (FORMAT.md §11.1); Verified names the recorded proof it
	// matched, "" when none applied (the state is unproven).
	Proof    repo.Proof
	Verified string
}

// beforeVerify, when set by a test, runs between the restore and the
// read-back of the target.
var beforeVerify func()

// ErrNotEmpty: the target holds keys and Force is not set.
var ErrNotEmpty = errors.New("the target is not empty")

// Restore writes the plan's state into the instance at target: the base's
// RDB, then the plan's commands in order, through the last one the target
// covers, never stopping inside a MULTI/EXEC unit. The target must hold no
// keys unless o.Force; its whole contents are replaced either way.
//
// Every manifest and command is read and verified before the target is
// touched. The target loads the data as a replica of this process (so it
// must be able to connect to the address of this process it is reached
// from), and is promoted back with REPLICAOF NO ONE at the end, also on
// failure; an error after the load began says the target holds a partial
// state.
func Restore(ctx context.Context, r *repo.Repository, p *index.Plan, target Options, o RestoreOptions) (RestoreStats, error) {
	var st RestoreStats
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	base, hdrLen, err := ReadBase(ctx, r, p.Base)
	if err != nil {
		return st, fmt.Errorf("%w: %w", index.ErrNotRestorable, err)
	}
	st.RDBBytes = p.Base.Size - int64(hdrLen)
	segs, err := engine.LoadPlanSegments(ctx, r, p)
	if err != nil {
		return st, err
	}
	cut, multi, err := planCut(ctx, r, p, segs, base)
	if err != nil {
		return st, err
	}
	st.CutMulti = multi
	st.Through = cut
	if p.Base.Position != nil && cut < *p.Base.Position {
		st.Through = *p.Base.Position
	}
	if multi {
		o.Logf("the target falls inside a MULTI/EXEC unit: the restore ends at position %d, before its MULTI", cut)
	}

	conn, err := Dial(ctx, target)
	if err != nil {
		return st, err
	}
	defer conn.Close()
	keys, err := conn.Keyspace()
	if err != nil {
		return st, err
	}
	if len(keys) > 0 && !o.Force {
		var dbs []string
		for db, k := range keys {
			dbs = append(dbs, fmt.Sprintf("db%d: %d keys", db, k))
		}
		sort.Strings(dbs)
		return st, fmt.Errorf("%s: %w (%s); a restore replaces the whole contents: give --force to do that", conn.name, ErrNotEmpty, strings.Join(dbs, ", "))
	}
	if info, err := conn.Info("server"); err == nil && info["redis_mode"] == "cluster" {
		return st, fmt.Errorf("%s: a cluster node cannot be made a replica of the restore; restore into a standalone instance", conn.name)
	}

	host, _, err := net.SplitHostPort(conn.LocalAddr().String())
	if err != nil {
		return st, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return st, fmt.Errorf("listen for the target's replication link: %w", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if _, err := conn.Do("REPLICAOF", host, port); err != nil {
		return st, err
	}
	loaded := false
	defer func() {
		// Never leave the target trying to reach a master that is gone.
		if _, err := conn.Do("REPLICAOF", "NO", "ONE"); err != nil && loaded {
			o.Logf("warning: %v", err)
		}
	}()
	o.Logf("%s: loading the base (%d bytes of RDB) as a replica of %s", conn.name, st.RDBBytes, ln.Addr())

	m := &master{ln: ln, name: conn.name, timeout: o.Timeout}
	if err := m.accept(ctx); err != nil {
		return st, err
	}
	defer m.rc.Close()
	stopWatch := context.AfterFunc(ctx, func() { m.rc.Close() })
	defer stopWatch()
	loaded = true
	partial := func(err error) error {
		return fmt.Errorf("%s now holds a partial restore (run the restore again with --force): %w", conn.name, err)
	}
	sent, err := m.sendRDB(ctx, r, p.Base, hdrLen, st.RDBBytes)
	if err != nil {
		return st, partial(err)
	}
	go m.readAcks()
	if err := m.replay(ctx, r, p, segs, cut, &st); err != nil {
		return st, partial(err)
	}
	if err := m.waitAck(ctx, conn); err != nil {
		return st, partial(err)
	}
	if _, err := conn.Do("REPLICAOF", "NO", "ONE"); err != nil {
		return st, partial(err)
	}
	return st, verifyTarget(ctx, conn, p, sent, &st, o)
}

// verifyTarget reads the target back and compares it with the proof of
// the state restored (FORMAT.md §11.1): the base's, recorded and
// recomputed from the RDB sent, when no command applied; else the
// recorded proof of a snapshot at the position reached, when there is one.
func verifyTarget(ctx context.Context, conn *Conn, p *index.Plan, sent rdbSent, st *RestoreStats, o RestoreOptions) error {
	var want repo.Proof
	rec, ok := p.Base.Proof()
	if ok && sent.err == nil {
		// The base's bytes as sent, whatever was applied after them.
		if err := rec.Check("snapshot "+p.Base.ID.Short()+" (the RDB sent)", sent.proof); err != nil {
			return fmt.Errorf("%s: %w", conn.name, err)
		}
	}
	switch {
	case st.Commands > 0:
		if o.Expect == nil {
			break
		}
		if want, st.Verified, ok = o.Expect(st.Through); !ok {
			st.Verified = ""
		}
	case ok:
		want, st.Verified = rec, "snapshot "+p.Base.ID.Short()
	case sent.err == nil:
		// An unproven base: the read-back still has to match its RDB.
		want, st.Verified = sent.proof, "the RDB of snapshot "+p.Base.ID.Short()
	}
	if st.Verified == "" {
		why := "no snapshot with a proof is at the position reached"
		if sent.err != nil {
			why = sent.err.Error()
		}
		o.Logf("the restored state is unproven: %s", why)
		if !o.ReadBack {
			return nil
		}
	}
	if beforeVerify != nil {
		beforeVerify()
	}
	got := sent.digester()
	if err := TargetProof(ctx, conn, got); err != nil {
		return fmt.Errorf("%s: read the target back to verify it: %w", conn.name, err)
	}
	st.Proof = got.Proof()
	if st.Verified == "" {
		return nil
	}
	if err := want.Check(fmt.Sprintf("%s after the restore, against %s", conn.name, st.Verified), st.Proof); err != nil {
		return fmt.Errorf("%w (was the target written to during the restore?)", err)
	}
	return nil
}

// eachCommand calls fn for every command of the plan at positions From
// through last, decoded.
func eachCommand(ctx context.Context, r *repo.Repository, p *index.Plan, segs []*repo.Segment, last uint64, fn func(seq uint64, t int64, c *Command) error) error {
	for i, seg := range segs {
		if seg.First > last {
			break
		}
		k := p.Segments[i]
		err := engine.ReadSegment(ctx, r, k, seg, func(e *repo.Event) error {
			if e.Seq < p.From || e.Seq > last {
				return nil
			}
			c, err := DecodeCommandEvent(e.Value)
			if err != nil {
				return &repo.CorruptError{Object: k.Name(), Offset: -1, Reason: fmt.Sprintf("position %d: %v", e.Seq, err)}
			}
			return fn(e.Seq, e.Time, &c)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// planCut reads every command of the plan, checks that their offsets
// follow on from the base and from each other, and finds the last
// position to apply: the plan's last, moved before the MULTI of a unit the
// target falls inside. It returns that position and whether a unit was cut.
func planCut(ctx context.Context, r *repo.Repository, p *index.Plan, segs []*repo.Segment, base Base) (uint64, bool, error) {
	last := uint64(0)
	if p.Base.Position != nil {
		last = *p.Base.Position
	}
	cut := last
	multiAt := uint64(0) // position of the open MULTI, 0 when none
	prevEnd := base.Offset
	err := eachCommand(ctx, r, p, segs, ^uint64(0), func(seq uint64, t int64, c *Command) error {
		if !p.Applies(seq, t) {
			return errStopScan
		}
		// Offsets only grow (what lies between is PINGs and REPLCONFs);
		// a command before the base's offset means the base and the log
		// disagree, and replaying would apply it twice.
		if c.Start < prevEnd {
			return fmt.Errorf("%w: command at position %d starts at offset %d, before offset %d where the state before it ends", repo.ErrCorrupt, seq, c.Start, prevEnd)
		}
		prevEnd = c.End
		switch {
		case is(c.Argv[0], "MULTI"):
			multiAt = seq
		case is(c.Argv[0], "EXEC"):
			multiAt = 0
		}
		if multiAt == 0 {
			cut = seq
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, false, err
	}
	return cut, multiAt != 0, nil
}

var errStopScan = errors.New("past the target")

// master is the replication master the target connects to.
type master struct {
	ln      net.Listener
	rc      net.Conn
	rd      *Reader
	bw      *bufio.Writer
	sent    int64 // replication offset: bytes of commands sent
	ack     atomic.Int64
	ackErr  atomic.Pointer[error]
	ackCond chan struct{} // signalled on every ack
	name    string
	timeout time.Duration
}

// accept takes the target's connection and answers its handshake up to PSYNC.
func (m *master) accept(ctx context.Context) error {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := m.ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case x := <-ch:
		if x.err != nil {
			return x.err
		}
		m.rc = x.c
	case <-time.After(m.timeout):
		m.ln.Close()
		return fmt.Errorf("%s did not connect to %s within %s after REPLICAOF (can it reach this host?)", m.name, m.ln.Addr(), m.timeout)
	case <-ctx.Done():
		m.ln.Close()
		return context.Cause(ctx)
	}
	m.ln.Close() // a target that retries after a failed load must not find us
	m.bw = bufio.NewWriterSize(m.rc, 256<<10)
	m.ackCond = make(chan struct{}, 1)
	m.ack.Store(-1) // no acknowledgement yet: the target is still loading
	rd := NewReader(m.rc)
	m.rc.SetDeadline(time.Now().Add(m.timeout))
	for {
		argv, _, err := rd.ReadCommand(1 << 16)
		if err != nil {
			return fmt.Errorf("%s: replication handshake: %w", m.name, err)
		}
		if len(argv) == 0 {
			continue
		}
		switch {
		case is(argv[0], "PING"):
			m.bw.WriteString("+PONG\r\n")
		case is(argv[0], "PSYNC") || is(argv[0], "SYNC"):
			m.rc.SetDeadline(time.Time{})
			m.rd = rd
			return nil
		default: // AUTH, REPLCONF listening-port / ip-address / capa
			m.bw.WriteString("+OK\r\n")
		}
		if err := m.bw.Flush(); err != nil {
			return fmt.Errorf("%s: replication handshake: %w", m.name, err)
		}
	}
}

// skipWriter drops the first n bytes written to it.
type skipWriter struct {
	w io.Writer
	n int
}

func (s *skipWriter) Write(p []byte) (int, error) {
	k := min(s.n, len(p))
	s.n -= k
	if k == len(p) {
		return len(p), nil
	}
	n, err := s.w.Write(p[k:])
	return n + k, err
}

// sendRDB answers PSYNC with a full sync of the base's RDB.
// The proof of the RDB is computed from the bytes sent.
func (m *master) sendRDB(ctx context.Context, r *repo.Repository, snap index.SnapshotRef, hdrLen int, size int64) (rdbSent, error) {
	id := make([]byte, 20)
	rand.Read(id)
	fmt.Fprintf(m.bw, "+FULLRESYNC %s 0\r\n$%d\r\n", hex.EncodeToString(id), size)
	pr, pw := io.Pipe()
	sent := rdbSent{r: r}
	d := r.NewDigester()
	done := make(chan error, 1)
	go func() {
		err := DigestRDB(pr, d)
		io.Copy(io.Discard, pr)
		done <- err
	}()
	n, err := engine.Restore(ctx, r, snap, &skipWriter{w: io.MultiWriter(m.bw, pw), n: hdrLen}, engine.RestoreOptions{})
	pw.CloseWithError(err)
	if sent.err = <-done; sent.err == nil {
		sent.proof = d.Proof()
	}
	if err != nil {
		return sent, fmt.Errorf("sending the base: %w", err)
	}
	if n != size+int64(hdrLen) {
		return sent, fmt.Errorf("sending the base: %d bytes, want %d", n-int64(hdrLen), size)
	}
	return sent, m.flush()
}

// rdbSent is the proof of the RDB a restore sent, or why it has none.
type rdbSent struct {
	r     *repo.Repository
	proof repo.Proof
	err   error
}

func (s rdbSent) digester() *repo.Digester { return s.r.NewDigester() }

func (m *master) flush() error {
	if err := m.bw.Flush(); err != nil {
		if e := m.ackErr.Load(); e != nil {
			err = *e
		}
		return fmt.Errorf("%s dropped the replication link (see its log: an RDB it cannot load?): %w", m.name, err)
	}
	return nil
}

// readAcks reads REPLCONF ACK from the target until the link closes.
func (m *master) readAcks() {
	for {
		argv, _, err := m.rd.ReadCommand(1 << 16)
		if err != nil {
			m.ackErr.Store(&err)
			m.signal()
			return
		}
		if len(argv) >= 3 && is(argv[0], "REPLCONF") && is(argv[1], "ACK") {
			if n, ok := parseInt(argv[2]); ok {
				m.ack.Store(n)
				m.signal()
			}
		}
	}
}

func (m *master) signal() {
	select {
	case m.ackCond <- struct{}{}:
	default:
	}
}

// replay sends the plan's commands through position cut.
func (m *master) replay(ctx context.Context, r *repo.Repository, p *index.Plan, segs []*repo.Segment, cut uint64, st *RestoreStats) error {
	first := true
	var buf []byte
	return errors.Join(eachCommand(ctx, r, p, segs, cut, func(seq uint64, t int64, c *Command) error {
		buf = buf[:0]
		if first && c.DB >= 0 && !is(c.Argv[0], "SELECT") {
			// The stream named its database before the base's offset.
			buf = appendStrings(buf, "SELECT", strconv.Itoa(c.DB))
		}
		first = false
		buf = AppendCommand(buf, c.Argv...)
		if _, err := m.bw.Write(buf); err != nil {
			return m.flush()
		}
		m.sent += int64(len(buf))
		st.Commands++
		return nil
	}), m.flush())
}

// getack is REPLCONF GETACK *: the target answers with its offset. It
// counts in the offset like any command.
const getack = "*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n"

func (m *master) getAck() error {
	m.bw.WriteString(getack)
	m.sent += int64(len(getack))
	return m.flush()
}

// waitAck asks the target for its offset and waits until it has applied
// everything sent, as long as it makes progress or is loading the base.
func (m *master) waitAck(ctx context.Context, conn *Conn) error {
	want := m.sent
	if err := m.getAck(); err != nil {
		return err
	}
	last, since := m.ack.Load(), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		a := m.ack.Load()
		if a >= want {
			if a > m.sent {
				return fmt.Errorf("%s acknowledged offset %d, past the %d bytes sent", m.name, a, m.sent)
			}
			return nil
		}
		if e := m.ackErr.Load(); e != nil {
			return fmt.Errorf("%s dropped the replication link at offset %d of %d (see its log: an RDB it cannot load?): %w", m.name, max(a, 0), want, *e)
		}
		if a != last {
			last, since = a, time.Now()
		} else if time.Since(since) > m.timeout {
			if info, err := conn.Info("persistence"); err == nil && info["loading"] == "1" {
				since = time.Now() // still loading the base
			} else {
				return fmt.Errorf("%s made no progress for %s at offset %d of %d", m.name, m.timeout, max(a, 0), want)
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-m.ackCond:
		case <-tick.C:
			if err := m.getAck(); err != nil {
				return err
			}
		}
	}
}
