package ndjson

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A small JSON validator and scanner. It exists because the change log must
// take 100k events a second: encoding/json would spend most of a core
// decoding documents the log only stores. It checks full JSON syntax
// (RFC 8259) so that nothing malformed is ever stored, and returns where
// each value ends.

const maxDepth = 512

var errSyntax = errors.New("invalid JSON")

func syntaxErr(off int, what string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, off, what)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanValue validates the JSON value starting at b[i] and returns the
// offset just past it.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{':
		if depth >= maxDepth {
			return i, syntaxErr(i, "nested too deeply")
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, syntaxErr(i, "want an object key")
			}
			var err error
			if i, err = scanString(b, i); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, syntaxErr(i, "want ':'")
			}
			if i, err = scanValue(b, skipSpace(b, i+1), depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			if i >= len(b) || b[i] != ',' {
				return i, syntaxErr(i, "want ',' or '}'")
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return i, syntaxErr(i, "nested too deeply")
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = scanValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			if i >= len(b) || b[i] != ',' {
				return i, syntaxErr(i, "want ',' or ']'")
			}
			i = skipSpace(b, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return i, syntaxErr(i, fmt.Sprintf("unexpected byte %q", b[i]))
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(i, "bad literal")
	}
	return i + len(lit), nil
}

// scanString validates the string starting at the quote b[i]. Its bytes
// are taken as they are: invalid UTF-8 passes, as it does through
// encoding/json (which replaces it when decoding).
func scanString(b []byte, i int) (int, error) {
	start := i
	i++
	for i < len(b) {
		// Most bytes of a document's strings are plain: skip them with one
		// table lookup each before looking at what ends or escapes.
		for i < len(b) && !stringSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, syntaxErr(i, "unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, syntaxErr(i, "bad \\u escape")
				}
				i += 6
			default:
				return i, syntaxErr(i, "bad escape")
			}
		case c < 0x20:
			return i, syntaxErr(i, "control character in a string")
		default:
			i++
		}
	}
	return start, syntaxErr(start, "unterminated string")
}

// stringSpecial marks the bytes scanString must look at: the closing
// quote, the escape and the control characters a string may not hold.
var stringSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return start, syntaxErr(start, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return start, syntaxErr(start, "bad fraction")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return start, syntaxErr(start, "bad exponent")
		}
	}
	return i, nil
}

// stringValue decodes the JSON string token s (quotes included).
func stringValue(s []byte) ([]byte, error) {
	inner := s[1 : len(s)-1]
	for _, c := range inner {
		if c == '\\' {
			var out string
			if err := json.Unmarshal(s, &out); err != nil {
				return nil, err
			}
			return []byte(out), nil
		}
	}
	return inner, nil
}

// keyValue turns a key token into the key bytes: a string's decoded
// bytes, or a number's text. Other kinds cannot be keys.
func keyValue(tok []byte) ([]byte, error) {
	switch c := tok[0]; {
	case c == '"':
		return stringValue(tok)
	case c == '-' || c >= '0' && c <= '9':
		return tok, nil
	}
	return nil, fmt.Errorf("a key must be a string or a number, not %.20s", tok)
}

// fields calls fn with each top-level field of the object in b (name token
// with quotes, value token) until fn returns false. It validates everything
// it passes over, and the whole object when fn never stops it.
func fields(b []byte, fn func(name, value []byte) bool) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return syntaxErr(i, "not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return checkEnd(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return syntaxErr(i, "want an object key")
		}
		ns := i
		var err error
		if i, err = scanString(b, i); err != nil {
			return err
		}
		name := b[ns:i]
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return syntaxErr(i, "want ':'")
		}
		vs := skipSpace(b, i+1)
		if i, err = scanValue(b, vs, 1); err != nil {
			return err
		}
		if !fn(name, b[vs:i]) {
			return nil
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			return checkEnd(b, i+1)
		}
		if i >= len(b) || b[i] != ',' {
			return syntaxErr(i, "want ',' or '}'")
		}
		i = skipSpace(b, i+1)
	}
}

func checkEnd(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return syntaxErr(i, "data after the object")
	}
	return nil
}

// nameIs reports whether the name token (with quotes) is the field name.
// Names with escapes are decoded first.
func nameIs(tok []byte, field string) bool {
	if len(tok) == len(field)+2 && string(tok[1:len(tok)-1]) == field {
		return true
	}
	for _, c := range tok {
		if c == '\\' {
			s, err := stringValue(tok)
			return err == nil && string(s) == field
		}
	}
	return false
}
