package mongodb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// errNotInMemory is wrapped when an update cannot be applied to a document
// in memory the way the server applied it (a path through a scalar): the
// state it leaves is then unproven, never guessed.
var errNotInMemory = errors.New("update not applicable in memory")

// toD decodes a document into bson.D, sub-documents as bson.D and arrays
// as bson.A (what ApplyDiff and setPath expect).
func toD(doc bson.Raw) (bson.D, error) {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return d, nil
}

// applyUpdate applies an oplog update ({$set: {path: v}, $unset: {path:
// ""}} with dotted paths) to doc as MongoDB does: $set creates missing
// sub-documents and extends arrays with nulls; $unset removes a field, or
// sets an array element to null.
func applyUpdate(doc bson.Raw, update bson.D) (bson.Raw, error) {
	raw, err := bson.Marshal(update)
	if err != nil {
		return nil, fmt.Errorf("%w: update: %v", ErrCorrupt, err)
	}
	u, err := toD(raw)
	if err != nil {
		return nil, err
	}
	d, err := toD(doc)
	if err != nil {
		return nil, err
	}
	for _, op := range u {
		fields, ok := op.Value.(bson.D)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not a document", ErrCorrupt, op.Key)
		}
		for _, f := range fields {
			path := strings.Split(f.Key, ".")
			var v any
			switch op.Key {
			case "$set":
				v, err = setPath(d, path, f.Value, false)
			case "$unset":
				v, err = setPath(d, path, nil, true)
			default:
				return nil, fmt.Errorf("%w: update operator %q", ErrUnsupported, op.Key)
			}
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", op.Key, f.Key, err)
			}
			d = v.(bson.D)
		}
	}
	return bson.Marshal(d)
}

// setPath sets (or, with unset, removes) path in container c, a bson.D or
// bson.A, and returns the new container.
func setPath(c any, path []string, v any, unset bool) (any, error) {
	name, rest := path[0], path[1:]
	switch c := c.(type) {
	case bson.D:
		i := -1
		for j := range c {
			if c[j].Key == name {
				i = j
				break
			}
		}
		if len(rest) == 0 {
			switch {
			case unset && i >= 0:
				return append(c[:i:i], c[i+1:]...), nil
			case unset:
				return c, nil
			case i >= 0:
				c[i].Value = v
				return c, nil
			default:
				return append(c, bson.E{Key: name, Value: v}), nil
			}
		}
		if i < 0 {
			if unset {
				return c, nil
			}
			sub, err := setPath(bson.D{}, rest, v, unset)
			if err != nil {
				return nil, err
			}
			return append(c, bson.E{Key: name, Value: sub}), nil
		}
		sub, err := descend(c[i].Value, rest, v, unset)
		if err != nil {
			return nil, err
		}
		c[i].Value = sub
		return c, nil
	case bson.A:
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 || name != strconv.Itoa(n) {
			if unset {
				return c, nil
			}
			return nil, fmt.Errorf("%w: field %q of an array", errNotInMemory, name)
		}
		if n >= len(c) {
			if unset {
				return c, nil
			}
			if n > 1<<20 {
				return nil, fmt.Errorf("%w: array index %d", errNotInMemory, n)
			}
			for len(c) <= n {
				c = append(c, nil)
			}
			if len(rest) > 0 {
				c[n] = bson.D{}
			}
		}
		if len(rest) == 0 {
			c[n] = v // $unset of an element leaves null in its place
			return c, nil
		}
		sub, err := descend(c[n], rest, v, unset)
		if err != nil {
			return nil, err
		}
		c[n] = sub
		return c, nil
	}
	return nil, fmt.Errorf("%w: a path through a %T", errNotInMemory, c)
}

func descend(c any, rest []string, v any, unset bool) (any, error) {
	switch c.(type) {
	case bson.D, bson.A:
		return setPath(c, rest, v, unset)
	}
	if unset {
		return c, nil
	}
	return nil, fmt.Errorf("%w: a path through a %T", errNotInMemory, c)
}

// applyDiffRaw applies a $v:2 diff to doc.
func applyDiffRaw(doc bson.Raw, diff bson.Raw) (bson.Raw, error) {
	d, err := toD(doc)
	if err != nil {
		return nil, err
	}
	nd, err := ApplyDiff(d, diff)
	if err != nil {
		return nil, err
	}
	return bson.Marshal(nd)
}
