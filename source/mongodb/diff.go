package mongodb

import (
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MongoDB 5.0+ logs an update as a $v:2 document diff (FORMAT.md §23.3):
//
//	object diff: "d": {field: false, ...}   fields deleted
//	             "u": {field: value, ...}   fields updated
//	             "i": {field: value, ...}   fields inserted (appended)
//	             "s<field>": diff           a sub-document or array changed
//	array diff:  "a": true                  marks the diff as an array's
//	             "l": n                     the array resized to n elements
//	             "u<index>": value          element set (extending with nulls)
//	             "s<index>": diff           element changed
//
// A diff without a resize and without field names that a dotted path
// cannot name becomes $set/$unset (applied by the target server); any
// other is applied in memory to the document read from the target.

const maxDiffDepth = 100 // BSON nests at most 100 levels

// validDiff checks a diff's shape without applying it, so a restore
// refuses a malformed log before its first write.
func validDiff(d bson.Raw, array bool, depth int) error {
	if depth > maxDiffDepth {
		return fmt.Errorf("%w: $v:2 diff nested deeper than %d", ErrCorrupt, maxDiffDepth)
	}
	elems, err := d.Elements()
	if err != nil {
		return fmt.Errorf("%w: $v:2 diff: %v", ErrCorrupt, err)
	}
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		switch {
		case array && k == "a":
			if b, ok := v.BooleanOK(); !ok || !b {
				return fmt.Errorf("%w: $v:2 array diff: a is not true", ErrCorrupt)
			}
		case array && k == "l":
			if n, ok := v.AsInt64OK(); !ok || n < 0 || n > 1<<24 {
				return fmt.Errorf("%w: $v:2 array diff: bad length %v", ErrCorrupt, v)
			}
		case array && (strings.HasPrefix(k, "u") || strings.HasPrefix(k, "s")):
			if _, err := diffIndex(k[1:]); err != nil {
				return err
			}
			if k[0] == 's' {
				sub, ok := v.DocumentOK()
				if !ok {
					return fmt.Errorf("%w: $v:2 array diff: %s is a %s", ErrCorrupt, k, v.Type)
				}
				if err := validDiff(sub, isArrayDiff(sub), depth+1); err != nil {
					return err
				}
			}
		case !array && (k == "d" || k == "u" || k == "i"):
			if _, ok := v.DocumentOK(); !ok {
				return fmt.Errorf("%w: $v:2 diff: %s is a %s", ErrCorrupt, k, v.Type)
			}
		case !array && strings.HasPrefix(k, "s"):
			sub, ok := v.DocumentOK()
			if !ok {
				return fmt.Errorf("%w: $v:2 diff: %s is a %s", ErrCorrupt, k, v.Type)
			}
			if err := validDiff(sub, isArrayDiff(sub), depth+1); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: $v:2 diff: field %q", ErrUnsupported, k)
		}
	}
	return nil
}

// diffIndex parses an array index of a diff ("u3" → 3).
func diffIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<24 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("%w: $v:2 array diff: bad index %q", ErrCorrupt, s)
	}
	return n, nil
}

func isArrayDiff(d bson.Raw) bool {
	v, err := d.LookupErr("a")
	if err != nil {
		return false
	}
	b, ok := v.BooleanOK()
	return ok && b
}

// diffToUpdate translates a valid diff into {$set, $unset} with dotted
// paths. ok is false when the diff resizes an array or names a field a
// path cannot (empty, holding '.', or starting with '$').
func diffToUpdate(d bson.Raw) (bson.D, bool) {
	var set, unset bson.D
	if !diffPaths(d, "", false, &set, &unset) {
		return nil, false
	}
	var u bson.D
	if len(set) > 0 {
		u = append(u, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		u = append(u, bson.E{Key: "$unset", Value: unset})
	}
	return u, true
}

func pathOK(f string) bool {
	return f != "" && !strings.Contains(f, ".") && !strings.HasPrefix(f, "$")
}

func diffPaths(d bson.Raw, prefix string, array bool, set, unset *bson.D) bool {
	elems, _ := d.Elements()
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		switch {
		case array && k == "a":
		case array && k == "l":
			return false
		case array && k[0] == 'u':
			*set = append(*set, bson.E{Key: prefix + k[1:], Value: v})
		case array && k[0] == 's':
			sub, _ := v.DocumentOK()
			if !diffPaths(sub, prefix+k[1:]+".", isArrayDiff(sub), set, unset) {
				return false
			}
		case k == "d" || k == "u" || k == "i":
			fields, _ := v.DocumentOK()
			fe, _ := fields.Elements()
			for _, f := range fe {
				if !pathOK(f.Key()) {
					return false
				}
				if k == "d" {
					*unset = append(*unset, bson.E{Key: prefix + f.Key(), Value: ""})
				} else {
					*set = append(*set, bson.E{Key: prefix + f.Key(), Value: f.Value()})
				}
			}
		default: // "s<field>"
			if !pathOK(k[1:]) {
				return false
			}
			sub, _ := v.DocumentOK()
			if !diffPaths(sub, prefix+k[1:]+".", isArrayDiff(sub), set, unset) {
				return false
			}
		}
	}
	return true
}

// ApplyDiff applies a $v:2 diff to doc as MongoDB does and returns the new
// document. doc's sub-documents and arrays must be bson.D and bson.A (as
// bson.Unmarshal into a bson.D gives them).
func ApplyDiff(doc bson.D, diff bson.Raw) (bson.D, error) {
	if err := validDiff(diff, false, 0); err != nil {
		return nil, err
	}
	return applyObjectDiff(doc, diff)
}

func applyObjectDiff(doc bson.D, diff bson.Raw) (bson.D, error) {
	elems, _ := diff.Elements()
	find := func(k string) int {
		for i := range doc {
			if doc[i].Key == k {
				return i
			}
		}
		return -1
	}
	// MongoDB applies deletes, then updates, then inserts, then sub-diffs.
	for _, pass := range []string{"d", "u", "i", "s"} {
		for _, el := range elems {
			k, v := el.Key(), el.Value()
			switch {
			case pass == "s" && strings.HasPrefix(k, "s"):
				i := find(k[1:])
				if i < 0 {
					return nil, fmt.Errorf("%w: $v:2 diff changes field %q, which the document lacks", ErrCorrupt, k[1:])
				}
				sub, _ := v.DocumentOK()
				nv, err := applySub(doc[i].Value, sub)
				if err != nil {
					return nil, err
				}
				doc[i].Value = nv
			case pass != "s" && k == pass:
				fields, _ := v.DocumentOK()
				fe, _ := fields.Elements()
				for _, f := range fe {
					i := find(f.Key())
					switch pass {
					case "d":
						if i >= 0 {
							doc = append(doc[:i], doc[i+1:]...)
						}
					case "u":
						if i >= 0 {
							doc[i].Value = f.Value()
						} else {
							doc = append(doc, bson.E{Key: f.Key(), Value: f.Value()})
						}
					case "i":
						if i >= 0 {
							doc = append(doc[:i], doc[i+1:]...)
						}
						doc = append(doc, bson.E{Key: f.Key(), Value: f.Value()})
					}
				}
			}
		}
	}
	return doc, nil
}

func applySub(v any, sub bson.Raw) (any, error) {
	if isArrayDiff(sub) {
		a, ok := v.(bson.A)
		if !ok {
			return nil, fmt.Errorf("%w: $v:2 array diff on a %T", ErrCorrupt, v)
		}
		return applyArrayDiff(a, sub)
	}
	d, ok := v.(bson.D)
	if !ok {
		return nil, fmt.Errorf("%w: $v:2 diff on a %T, not a document", ErrCorrupt, v)
	}
	return applyObjectDiff(d, sub)
}

func applyArrayDiff(a bson.A, diff bson.Raw) (bson.A, error) {
	elems, _ := diff.Elements()
	// The resize comes first; element updates may extend the array again.
	if v, err := diff.LookupErr("l"); err == nil {
		n, _ := v.AsInt64OK()
		if int(n) < len(a) {
			a = a[:n]
		}
		for len(a) < int(n) {
			a = append(a, nil)
		}
	}
	for _, el := range elems {
		k, v := el.Key(), el.Value()
		if k == "a" || k == "l" {
			continue
		}
		i, err := diffIndex(k[1:])
		if err != nil {
			return nil, err
		}
		if k[0] == 'u' {
			for len(a) <= i {
				a = append(a, nil)
			}
			a[i] = v
			continue
		}
		if i >= len(a) {
			return nil, fmt.Errorf("%w: $v:2 array diff changes element %d of %d", ErrCorrupt, i, len(a))
		}
		sub, _ := v.DocumentOK()
		nv, err := applySub(a[i], sub)
		if err != nil {
			return nil, err
		}
		a[i] = nv
	}
	return a, nil
}
