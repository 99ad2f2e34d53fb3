package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCommand is strata man DIR: one man page per command, written from the
// command tree, so they say what --help says.
func manCommand(env *environment) *cobra.Command {
	c := &cobra.Command{Use: "man DIR", Short: "write man pages for every command into DIR"}
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("usage: strata man DIR")
		}
		if err := os.MkdirAll(args[0], 0o755); err != nil {
			return err
		}
		root := c.Root()
		root.DisableAutoGenTag = true
		return doc.GenManTree(root, &doc.GenManHeader{Title: "STRATA", Section: "1", Source: "strata " + version}, args[0])
	}
	return c
}
