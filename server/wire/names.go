package wire

import (
	"fmt"
	"strings"

	"github.com/strata-backup/strata/repo"
)

// Class is what kind of repository object a name denotes. Authorization is
// by class and, where the name or a label ties the object to one, stream.
type Class int

const (
	ClassConfig     Class = iota + 1 // config, and the store layout: read by every client to open the repository
	ClassKey                         // keys/<id>: password-wrapped master keys
	ClassData                        // data/<xx>/<pack>.<i>: shards, shared by every stream (dedup)
	ClassIndex                       // index/<id>: shared by every stream
	ClassSnapshot                    // snapshots/<id>: its stream is its label's
	ClassLabel                       // labels/<id>
	ClassSegment                     // logs/<stream>/@…: the stream is in the name
	ClassPrune                       // prune/marks-<ns>.json
	ClassAudit                       // audit/<…>: written by the server only
	ClassScrub                       // scrub/<ns>.json: scrub records (FORMAT.md §24), clear, no content
	ClassDrill                       // drills/<ns>.json: clear drill records; the stream is in the body
	ClassLease                       // leases/<stream>/@<generation>: the stream is in the name
	ClassCheckpoint                  // checkpoints/<stream>/@<id>: the stream is in the name
)

var classNames = map[Class]string{ClassConfig: "config", ClassKey: "key", ClassData: "data", ClassIndex: "index",
	ClassSnapshot: "snapshot", ClassLabel: "label", ClassSegment: "segment", ClassPrune: "prune", ClassAudit: "audit",
	ClassScrub: "scrub", ClassDrill: "drill", ClassLease: "lease", ClassCheckpoint: "checkpoint"}

func (c Class) String() string {
	if n, ok := classNames[c]; ok {
		return n
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// classOf maps a repository object kind to its authorization class.
var classOf = map[repo.Kind]Class{
	repo.KindConfig: ClassConfig, repo.KindLayout: ClassConfig, repo.KindKey: ClassKey, repo.KindData: ClassData,
	repo.KindIndex: ClassIndex, repo.KindSnapshot: ClassSnapshot, repo.KindLabel: ClassLabel,
	repo.KindSegment: ClassSegment, repo.KindPruneMarks: ClassPrune, repo.KindAudit: ClassAudit,
	repo.KindScrub:      ClassScrub,
	repo.KindDrill:      ClassDrill,
	repo.KindLease:      ClassLease,
	repo.KindCheckpoint: ClassCheckpoint,
}

// Object is a parsed object name.
type Object struct {
	Name    string
	Class   Class
	ID      repo.ID         // snapshots and labels: the snapshot ID
	Segment repo.SegmentKey // segments
	Stamp   int64           // stamped names (drill records): the unix nanoseconds in the name
	Stream  string          // leases and checkpoints: the stream
	Gen     uint64          // leases: the generation
}

// MaxNameLen bounds an object name in a request.
const MaxNameLen = repo.MaxNameLen

// ParseObject checks with repo.ParseObject that name is exactly one of the
// names FORMAT.md defines and classifies it, so a request can never address
// a file outside the repository's namespace.
func ParseObject(name string) (Object, error) {
	p, err := repo.ParseObject(name)
	if err == nil && p.Kind == repo.KindCopy {
		// The server keeps the metadata copies itself (FORMAT.md §25):
		// clients neither read nor write them by name.
		err = fmt.Errorf("%q is a metadata copy, which the server keeps itself", name)
	}
	if err == nil && p.Kind == repo.KindRekey {
		// Re-encryption runs where the store is reachable (FORMAT.md §4.1).
		err = fmt.Errorf("%q is a re-encryption journal record, which no client writes through the server", name)
	}
	o := Object{Name: name, Class: classOf[p.Kind], Segment: p.Segment, Stamp: p.Stamp, Stream: p.Stream, Gen: p.Gen}
	if p.Kind == repo.KindSnapshot || p.Kind == repo.KindLabel {
		o.ID = p.ID
	}
	return o, err
}

// Prefix is a parsed List prefix: only the prefixes the repository's own
// readers list are accepted.
type Prefix struct {
	Prefix string
	Class  Class  // 0 for "" (everything)
	Stream string // logs/<stream>/@, leases/<stream>/@ and checkpoints/<stream>/@ only
}

// ParsePrefix checks a List prefix: "", the prefix of one kind of object
// (repo.KindOfPrefix), or one stream's log or checkpoint prefix.
func ParsePrefix(p string) (Prefix, error) {
	out := Prefix{Prefix: p}
	if p == "" {
		return out, nil
	}
	if k := repo.KindOfPrefix(p); k != 0 && k != repo.KindRekey {
		out.Class = classOf[k]
		return out, nil
	}
	if stream, ok := strings.CutPrefix(p, repo.LeasesPrefix); ok {
		stream, ok2 := strings.CutSuffix(stream, "/@")
		if !ok2 || repo.ValidStream(stream) != nil || repo.StreamLeasePrefix(stream) != p {
			return out, fmt.Errorf("%q is not a prefix the repository lists", p)
		}
		out.Class, out.Stream = ClassLease, stream
		return out, nil
	}
	if stream, ok := strings.CutPrefix(p, repo.CheckpointsPrefix); ok {
		stream, ok = strings.CutSuffix(stream, "/@")
		if !ok || repo.ValidStream(stream) != nil || repo.StreamCheckpointPrefix(stream) != p {
			return out, fmt.Errorf("%q is not a prefix the repository lists", p)
		}
		out.Class, out.Stream = ClassCheckpoint, stream
		return out, nil
	}
	stream, ok := strings.CutPrefix(p, repo.LogsPrefix)
	stream, ok2 := strings.CutSuffix(stream, "/@")
	if !ok || !ok2 || repo.ValidStream(stream) != nil || repo.StreamLogPrefix(stream) != p {
		return out, fmt.Errorf("%q is not a prefix the repository lists", p)
	}
	out.Class, out.Stream = ClassSegment, stream
	return out, nil
}
