package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/strata-backup/strata/engine"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/repo/mem"
)

const (
	begin    = "<!-- appendix-a:begin -->"
	end      = "<!-- appendix-a:end -->"
	password = "strata-spec"
	content  = "{\"_id\":\"a\",\"n\":1}\n{\"_id\":\"b\",\"n\":2}\n"
	stream   = "spec/users"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: appendix FORMAT.md")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "appendix:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	ctx := context.Background()
	s := mem.New()
	r, err := repo.Init(ctx, s, []byte(password), repo.InitOptions{DataShards: 2, ParityShards: 1, KDF: repo.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, Host: "spec", User: "spec"})
	if err != nil {
		return err
	}
	id, _, err := engine.Backup(ctx, r, strings.NewReader(content), engine.BackupOptions{Stream: stream, Format: engine.FormatNDJSON, Time: time.Unix(1767225600, 0), Host: "spec"})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", begin)
	fmt.Fprintf(&b, "```vector worked-repository\npassword: %s\nrepository id: %s\nstream: %s\nsnapshot: %s\ncontent hex: %s\nblob id: %s\n```\n\n",
		password, r.Config().ID, stream, id, hex.EncodeToString([]byte(content)), r.BlobID(repo.DataBlob, []byte(content)))
	err = s.List(ctx, "", func(oi repo.ObjectInfo) error {
		data, err := s.Get(ctx, oi.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "```object %s\n", oi.Name)
		h := hex.EncodeToString(data)
		for len(h) > 0 {
			n := min(64, len(h))
			fmt.Fprintf(&b, "%s\n", h[:n])
			h = h[n:]
		}
		fmt.Fprintf(&b, "```\n\n")
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "%s", end)
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no appendix markers", path)
	}
	out := append(append(append([]byte{}, doc[:i]...), b.String()...), doc[j+len(end):]...)
	return os.WriteFile(path, out, 0o644)
}
