// Package wire is the index server's HTTP/JSON protocol (PROTOCOL.md): the
// request and response bodies, and the classification of object names that
// authorization rests on. Server and client both use it; it holds no state.
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
	ClassConfig   Class = iota + 1 // config, and the store layout: read by every client to open the repository
	ClassKey                       // keys/<id>: password-wrapped master keys
	ClassData                      // data/<xx>/<pack>.<i>: shards, shared by every stream (dedup)
	ClassIndex                     // index/<id>: shared by every stream
	ClassSnapshot                  // snapshots/<id>: its stream is its label's
	ClassLabel                     // labels/<id>
	ClassSegment                   // logs/<stream>/@…: the stream is in the name
	ClassPrune                     // prune/marks-<ns>.json
	ClassAudit                     // audit/<…>: written by the server only
)

var classNames = map[Class]string{ClassConfig: "config", ClassKey: "key", ClassData: "data", ClassIndex: "index",
	ClassSnapshot: "snapshot", ClassLabel: "label", ClassSegment: "segment", ClassPrune: "prune", ClassAudit: "audit"}

func (c Class) String() string {
	if n, ok := classNames[c]; ok {
		return n
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Object is a parsed object name.
type Object struct {
	Name    string
	Class   Class
	ID      repo.ID         // snapshots and labels: the snapshot ID
	Segment repo.SegmentKey // segments
}

// MaxNameLen bounds an object name in a request.
const MaxNameLen = 512

// ParseObject checks that name is exactly one of the names FORMAT.md
// defines and classifies it. Anything else (other prefixes, "..", empty
// segments, upper-case hex, trailing slashes) is refused, so a request can
// never address a file outside the repository's namespace.
func ParseObject(name string) (Object, error) {
	o := Object{Name: name}
	if len(name) == 0 || len(name) > MaxNameLen {
		return o, fmt.Errorf("object name of %d bytes", len(name))
	}
	var err error
	switch {
	case name == repo.ConfigName || name == repo.LayoutName:
		o.Class = ClassConfig
	case strings.HasPrefix(name, repo.KeysPrefix):
		o.Class = ClassKey
		_, err = repo.ParseID(name[len(repo.KeysPrefix):])
	case strings.HasPrefix(name, repo.DataPrefix):
		o.Class = ClassData
		_, _, err = repo.ParseShardName(name)
	case strings.HasPrefix(name, repo.IndexPrefix):
		o.Class = ClassIndex
		_, err = repo.ParseID(name[len(repo.IndexPrefix):])
	case strings.HasPrefix(name, repo.SnapshotsPrefix):
		o.Class = ClassSnapshot
		o.ID, err = repo.ParseID(name[len(repo.SnapshotsPrefix):])
	case strings.HasPrefix(name, repo.LabelsPrefix):
		o.Class = ClassLabel
		o.ID, err = repo.ParseID(name[len(repo.LabelsPrefix):])
	case strings.HasPrefix(name, repo.LogsPrefix):
		o.Class = ClassSegment
		o.Segment, err = repo.ParseSegmentName(name)
	case strings.HasPrefix(name, PruneMarksPrefix):
		o.Class = ClassPrune
		err = digitsThen(name[len(PruneMarksPrefix):], ".json")
	case strings.HasPrefix(name, AuditPrefix):
		o.Class = ClassAudit
		err = digitsThen(name[len(AuditPrefix):], ".jsonl")
	default:
		return o, fmt.Errorf("%q is not a repository object name", name)
	}
	if err != nil {
		return o, fmt.Errorf("%q is not a valid %s object name", name, o.Class)
	}
	return o, nil
}

// PruneMarksPrefix is engine.PruneMarksPrefix (engine is not imported here).
const PruneMarksPrefix = "prune/marks-"

// AuditPrefix holds the audit trail (PROTOCOL.md, "Audit trail").
const AuditPrefix = "audit/"

// digitsThen accepts 1–20 decimal digits followed by suffix.
func digitsThen(s, suffix string) error {
	d, ok := strings.CutSuffix(s, suffix)
	if !ok || len(d) == 0 || len(d) > 20 {
		return fmt.Errorf("bad name")
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return fmt.Errorf("bad name")
		}
	}
	return nil
}

// Prefix is a parsed List prefix: only the prefixes the repository's own
// readers list are accepted.
type Prefix struct {
	Prefix string
	Class  Class  // 0 for "" (everything)
	Stream string // logs/<stream>/@ only
}

// ParsePrefix checks a List prefix.
func ParsePrefix(p string) (Prefix, error) {
	out := Prefix{Prefix: p}
	switch p {
	case "":
		return out, nil
	case repo.KeysPrefix:
		out.Class = ClassKey
	case repo.DataPrefix:
		out.Class = ClassData
	case repo.IndexPrefix:
		out.Class = ClassIndex
	case repo.SnapshotsPrefix:
		out.Class = ClassSnapshot
	case repo.LabelsPrefix:
		out.Class = ClassLabel
	case repo.LogsPrefix:
		out.Class = ClassSegment
	case PruneMarksPrefix:
		out.Class = ClassPrune
	case AuditPrefix:
		out.Class = ClassAudit
	default:
		stream, ok := strings.CutPrefix(p, repo.LogsPrefix)
		stream, ok2 := strings.CutSuffix(stream, "/@")
		if !ok || !ok2 || repo.ValidStream(stream) != nil || repo.StreamLogPrefix(stream) != p {
			return out, fmt.Errorf("%q is not a prefix the repository lists", p)
		}
		out.Class, out.Stream = ClassSegment, stream
	}
	return out, nil
}
