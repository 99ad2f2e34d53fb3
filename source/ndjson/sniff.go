package ndjson

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// SniffBytes is how much of an export a backup without a format reads to
// choose one.
const SniffBytes = 64 << 10

// Sniff decides whether an export that starts with head is NDJSON, and
// says why. The rule (README, backup): every complete line in head (the
// last one too when all is true: head is the whole export) is a JSON
// object with keyField holding a string or a number, and there is at least
// one. A why that begins "it looks like NDJSON" marks an export that starts
// like NDJSON but breaks the rule, for the raw-backup warning.
func Sniff(head []byte, all bool, keyField string) (bool, string) {
	if !all {
		i := bytes.LastIndexByte(head, '\n')
		if i < 0 {
			if bytes.HasPrefix(bytes.TrimLeft(head, " \t"), []byte("{")) {
				return false, fmt.Sprintf("it looks like NDJSON, but its first line is longer than %d KiB", SniffBytes>>10)
			}
			return false, fmt.Sprintf("its first %d KiB hold no complete line", SniffBytes>>10)
		}
		head = head[:i+1]
	}
	n := 0
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte("\n"))
		head = rest
		n++
		line = bytes.TrimSuffix(line, []byte("\r"))
		var doc map[string]json.RawMessage
		if bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("{")) && json.Unmarshal(line, &doc) == nil {
			v := bytes.TrimSpace(doc[keyField])
			if len(v) > 0 && (v[0] == '"' || v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {
				continue
			}
			return false, fmt.Sprintf("it looks like NDJSON, but line %d has no string or number %q field (see --key-field)", n, keyField)
		}
		if n > 1 {
			return false, fmt.Sprintf("it looks like NDJSON, but line %d is not a JSON object", n)
		}
		return false, "its first line is not a JSON object"
	}
	if n == 0 {
		return false, "it is empty"
	}
	return true, fmt.Sprintf("its first %d line(s) are JSON objects with a %q field", n, keyField)
}
