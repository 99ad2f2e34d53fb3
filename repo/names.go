package repo

import (
	"fmt"
	"strconv"
	"strings"
)

// The repository's object namespace (FORMAT.md §1, "Objects and names"):
// every object name a repository holds, its kind, and the functions that
// format and parse them. Engine, server and verification all classify names
// here, so a new kind of object is added in one place.

// Object names and name prefixes.
const (
	ConfigName        = "config"       // the repository config
	LayoutName        = "stores"       // the store layout (FORMAT.md §17): which stores hold the repository, and its retention
	KeysPrefix        = "keys/"        // keys/<64 hex>: password-wrapped master keys
	DataPrefix        = "data/"        // data/<2 hex>/<64 hex>.<i>: pack shards
	IndexPrefix       = "index/"       // index/<64 hex>: index files
	SnapshotsPrefix   = "snapshots/"   // snapshots/<64 hex>: snapshot manifests
	LabelsPrefix      = "labels/"      // labels/<64 hex>: snapshot labels (FORMAT.md §19)
	LogsPrefix        = "logs/"        // logs/<stream>/@<range>.<64 hex>: log segment manifests
	PruneMarksPrefix  = "prune/marks-" // prune/marks-<19 digits>.json (FORMAT.md §18)
	AuditPrefix       = "audit/"       // audit/<19 digits>.jsonl: an index server's audit trail (PROTOCOL.md §7)
	DrillsPrefix      = "drills/"      // drills/<19 digits>.json: a restore drill's result (FORMAT.md §24)
	ScrubPrefix       = "scrub/"       // scrub/<19 digits>.json: a scrub pass's progress and findings (FORMAT.md §24)
	CheckpointsPrefix = "checkpoints/" // checkpoints/<stream>/@<64 hex>: a running backup's index files (FORMAT.md §12.1)
	RekeyPrefix       = "rekey/"       // rekey/<64 hex>: a record of a re-encryption's journal (FORMAT.md §4.1)
	// CopiesPrefix (copies.go): copies/<name>, the second copy of a metadata object (FORMAT.md §25)
	// LeasesPrefix (lease.go): leases/<stream>/@<generation:20>: a stream's writer lease (FORMAT.md §15)
)

// Kind is what kind of repository object a name denotes.
type Kind int

// The kinds of object, one per row of FORMAT.md §1.
const (
	KindConfig     Kind = iota + 1 // config
	KindLayout                     // stores
	KindKey                        // keys/<id>
	KindData                       // data/<xx>/<pack>.<i>
	KindIndex                      // index/<id>
	KindSnapshot                   // snapshots/<id>
	KindLabel                      // labels/<snapshot id>
	KindSegment                    // logs/<stream>/@…
	KindPruneMarks                 // prune/marks-<ns>.json
	KindAudit                      // audit/<ns>.jsonl
	KindDrill                      // drills/<ns>.json
	KindScrub                      // scrub/<ns>.json
	KindCopy                       // copies/<name>: the second copy of a metadata object (FORMAT.md §25)
	KindLease                      // leases/<stream>/@<generation>
	KindCheckpoint                 // checkpoints/<stream>/@<id>
	KindRekey                      // rekey/<id>
)

// kinds lists every kind with its prefix (or, for single objects, its
// exact name) and suffix. Order matters only in that no prefix is another's.
var kinds = []struct {
	kind   Kind
	name   string // for messages
	prefix string
	exact  bool   // the prefix is the whole name
	suffix string // after the digits of a stamped name
}{
	{KindConfig, "config", ConfigName, true, ""},
	{KindLayout, "store layout", LayoutName, true, ""},
	{KindKey, "key", KeysPrefix, false, ""},
	{KindData, "data", DataPrefix, false, ""},
	{KindIndex, "index", IndexPrefix, false, ""},
	{KindSnapshot, "snapshot", SnapshotsPrefix, false, ""},
	{KindLabel, "label", LabelsPrefix, false, ""},
	{KindSegment, "segment", LogsPrefix, false, ""},
	{KindPruneMarks, "prune marks", PruneMarksPrefix, false, ".json"},
	{KindAudit, "audit", AuditPrefix, false, ".jsonl"},
	{KindDrill, "drill", DrillsPrefix, false, ".json"},
	{KindScrub, "scrub", ScrubPrefix, false, ".json"},
	{KindCopy, "copy", CopiesPrefix, false, ""},
	{KindLease, "lease", LeasesPrefix, false, ""},
	{KindCheckpoint, "checkpoint", CheckpointsPrefix, false, ""},
	{KindRekey, "re-encryption journal", RekeyPrefix, false, ""},
}

// String names the kind for messages.
func (k Kind) String() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.name
		}
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Prefix returns the prefix under which objects of kind k are listed (for
// config and the store layout, their whole name).
func (k Kind) Prefix() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.prefix
		}
	}
	return ""
}

// KindOf classifies name by its prefix alone, without checking the rest of
// it; 0 means the name is under none of the repository's prefixes.
func KindOf(name string) Kind {
	for _, e := range kinds {
		if e.exact && name == e.prefix || !e.exact && strings.HasPrefix(name, e.prefix) {
			return e.kind
		}
	}
	return 0
}

// KindOfPrefix returns the kind whose objects are listed under exactly p
// (for example "index/"), or 0.
func KindOfPrefix(p string) Kind {
	for _, e := range kinds {
		if !e.exact && p == e.prefix {
			return e.kind
		}
	}
	return 0
}

// Object is a parsed object name.
type Object struct {
	Name    string
	Kind    Kind
	ID      ID         // keys, index files, snapshots, labels (the snapshot's ID), shards (the pack's ID), segments (the manifest's)
	Shard   int        // data: the shard's index in its pack
	Segment SegmentKey // segments
	Stamp   int64      // prune marks, audit batches, drill and scrub records: the unix nanoseconds in the name
	Of      Kind       // copies: the kind of the object copied (ID and Segment are that object's)
	Stream  string     // leases and checkpoints: the stream
	Gen     uint64     // leases: the generation
}

// MaxNameLen bounds an object name: longer names are refused by ParseObject.
const MaxNameLen = 512

// ParseObject checks that name is exactly one of the names FORMAT.md §1
// defines and returns what it denotes. Anything else (other prefixes, "..",
// empty segments, upper-case hex, trailing slashes) is an error, so a name
// that parses never addresses anything outside the repository's namespace.
// Stamped names (prune marks, audit) are accepted with 1 to 19 digits whose
// value fits an int64; their writers use 19 (PruneMarksName, AuditName).
func ParseObject(name string) (Object, error) {
	o := Object{Name: name, Kind: KindOf(name)}
	if len(name) == 0 || len(name) > MaxNameLen {
		return o, fmt.Errorf("object name of %d bytes", len(name))
	}
	var err error
	switch o.Kind {
	case KindConfig, KindLayout:
	case KindKey, KindIndex, KindSnapshot, KindLabel, KindRekey:
		o.ID, err = ParseID(name[len(o.Kind.Prefix()):])
	case KindData:
		o.ID, o.Shard, err = ParseShardName(name)
	case KindSegment:
		o.Segment, err = ParseSegmentName(name)
		o.ID = o.Segment.ID
	case KindPruneMarks:
		o.Stamp, err = parseStamp(name[len(PruneMarksPrefix):], ".json")
	case KindAudit:
		o.Stamp, err = parseStamp(name[len(AuditPrefix):], ".jsonl")
	case KindDrill:
		o.Stamp, err = parseStamp(name[len(DrillsPrefix):], ".json")
	case KindScrub:
		o.Stamp, err = parseStamp(name[len(ScrubPrefix):], ".json")
	case KindCopy:
		var in Object
		if in, err = ParseObject(name[len(CopiesPrefix):]); err == nil && !HasCopy(in.Name) {
			err = fmt.Errorf("not a copied kind")
		}
		o.Of, o.ID, o.Segment = in.Kind, in.ID, in.Segment
	case KindLease:
		o.Stream, o.Gen, err = ParseLeaseName(name)
	case KindCheckpoint:
		o.Stream, o.ID, err = ParseCheckpointName(name)
	default:
		return o, fmt.Errorf("%q is not a repository object name", name)
	}
	if err != nil {
		return o, fmt.Errorf("%q is not a valid %s object name", name, o.Kind)
	}
	return o, nil
}

// parseStamp reads the decimal digits before suffix.
func parseStamp(s, suffix string) (int64, error) {
	d, ok := strings.CutSuffix(s, suffix)
	if !ok || len(d) == 0 || len(d) > 19 {
		return 0, fmt.Errorf("bad name")
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, fmt.Errorf("bad name")
		}
	}
	return strconv.ParseInt(d, 10, 64)
}

// ShardName is the object name of shard i of a pack: data/<2 hex>/<64 hex>.<i>.
func ShardName(pack ID, i int) string {
	h := pack.String()
	return DataPrefix + h[:2] + "/" + h + "." + strconv.Itoa(i)
}

// ParseShardName reverses ShardName.
func ParseShardName(name string) (ID, int, error) {
	rest, ok := strings.CutPrefix(name, DataPrefix)
	dot := strings.LastIndexByte(rest, '.')
	if !ok || len(rest) < 3 || rest[2] != '/' || dot < 3 {
		return ID{}, 0, fmt.Errorf("not a shard name: %q", name)
	}
	id, err := ParseID(rest[3:dot])
	if err != nil || rest[:2] != rest[3:5] {
		return ID{}, 0, fmt.Errorf("not a shard name: %q", name)
	}
	i, err := strconv.Atoi(rest[dot+1:])
	if err != nil || i < 0 || i > 254 || strconv.Itoa(i) != rest[dot+1:] {
		return ID{}, 0, fmt.Errorf("not a shard name: %q", name)
	}
	return id, i, nil
}

// ShardIndex returns i for the name of shard i of a pack (data/xx/<id>.<i>),
// and false for every other object. Multi-store placement keys on it.
func ShardIndex(name string) (int, bool) {
	if !strings.HasPrefix(name, DataPrefix) {
		return 0, false
	}
	_, i, err := ParseShardName(name)
	return i, err == nil
}

// KeyName is the object name of the key file with content ID id.
func KeyName(id ID) string { return KeysPrefix + id.String() }

// IndexName is the object name of the index file id.
func IndexName(id ID) string { return IndexPrefix + id.String() }

// SnapshotName is the object name of the snapshot manifest id.
func SnapshotName(id ID) string { return SnapshotsPrefix + id.String() }

// LabelName is the object name of a snapshot's label.
func LabelName(snapshot ID) string { return LabelsPrefix + snapshot.String() }

// PruneMarksName is the name of the prune marks object stamped ns (unix
// nanoseconds, 19 digits zero-padded).
func PruneMarksName(ns int64) string { return fmt.Sprintf("%s%019d.json", PruneMarksPrefix, ns) }

// AuditName is the name of the audit batch stamped ns.
func AuditName(ns int64) string { return fmt.Sprintf("%s%019d.jsonl", AuditPrefix, ns) }

// DrillName is the name of the drill record stamped ns.
func DrillName(ns int64) string { return fmt.Sprintf("%s%019d.json", DrillsPrefix, ns) }

// ScrubName is the name of the scrub record stamped ns.
func ScrubName(ns int64) string { return fmt.Sprintf("%s%019d.json", ScrubPrefix, ns) }
