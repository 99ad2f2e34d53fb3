// Package spec keeps FORMAT.md honest: its worked examples are parsed out of
// the document and checked against the code as golden vectors.
//
// # Worked repository
// Appendix A of FORMAT.md is a complete repository (config, key file, shards,
// index file, snapshot) as hex. The tests load it into a store, open it with
// the documented password and restore the documented content, so any change
// to the stored format that would break reading an existing repository
// fails here.
//
// # Vectors
// Fenced blocks tagged `vector NAME` hold key: value lines that tests
// recompute (key derivation, blob IDs).
package spec

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Block is one fenced code block of FORMAT.md with an info string.
type Block struct {
	Info string // the text after the opening ```
	Body string
}

// ReadBlocks returns the fenced blocks of a markdown file.
func ReadBlocks(path string) ([]Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Block
	var cur *Block
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur == nil {
				cur = &Block{Info: strings.TrimSpace(line[3:])}
			} else {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			cur.Body += line + "\n"
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: unterminated code block %q", path, cur.Info)
	}
	return out, sc.Err()
}

// Fields parses "key: value" lines.
func (b Block) Fields() map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(b.Body, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// Hex decodes a block body of hex digits, ignoring white space.
func (b Block) Hex() ([]byte, error) {
	return hex.DecodeString(strings.Join(strings.Fields(b.Body), ""))
}
