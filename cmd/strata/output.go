package main

import (
	"encoding/json"

	"github.com/spf13/pflag"
)

// jsonFlag registers --json; what says the shape it prints (README,
// "JSON output").
func jsonFlag(fs *pflag.FlagSet, what string) *bool {
	return fs.Bool("json", false, what)
}

// writeJSON prints v as one indented JSON document: the shape of every
// --json that is not a stream of records.
func writeJSON(env *environment, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
