package auth

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// globRegexp is the reference for matchGlob: the same rules written as a
// regular expression, which Go matches in linear time without backtracking.
func globRegexp(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for _, c := range []byte(glob) {
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`[^/]`)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"read", "read,backup:shop/*,restore:*,admin", "backup:a?b", "read:x", "backup:", "read,,admin", "restore:shop/eu/*"} {
		f.Add(s, "shop/users")
	}
	f.Fuzz(func(t *testing.T, s, stream string) {
		scopes, err := ParseScopes(s)
		if err != nil {
			return
		}
		text := FormatScopes(scopes)
		again, err := ParseScopes(text)
		if err != nil || !slices.Equal(again, scopes) {
			t.Fatalf("ParseScopes(%q) = %v; formatted %q parses as %v, %v", s, scopes, text, again, err)
		}
		id := &Identity{Name: "f", Scopes: scopes}
		for _, k := range []Kind{Read, Backup, Restore, Admin} {
			id.Allows(k, stream)
			id.AllowsAllStreams(k)
		}
	})
}

func FuzzMatchGlob(f *testing.F) {
	f.Add("shop/*", "shop/eu/users")
	f.Add("*a*a*b", "aaaaaaab")
	f.Add("a?c", "a/c")
	f.Add("**?", "x")
	f.Fuzz(func(t *testing.T, glob, name string) {
		// Stream names are ASCII (Allows checks them before matching), and
		// matchGlob counts bytes where the reference counts runes: '?'
		// against "\uf092" differs, which no valid name can reach.
		if validGlob(glob) != nil || len(name) > 400 || strings.ContainsFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) {
			return
		}
		if got, want := matchGlob(glob, name), globRegexp(glob).MatchString(name); got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, reference says %v", glob, name, got, want)
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(validFile))
	f.Add([]byte("# only a comment\n\n   \n"))
	f.Add([]byte("ci read " + strings.Repeat("0", 64)))
	f.Add([]byte("ci read " + strings.Repeat("0", 64) + "\r\nci admin " + strings.Repeat("1", 64) + "\n"))
	f.Add([]byte("ci  read " + strings.Repeat("0", 64) + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, e := range s.entries {
			b.WriteString(formatLine(e.id.Name, e.id.Scopes, e.hash) + "\n")
		}
		again, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("formatted %q does not parse: %v", b.String(), err)
		}
		if len(again.entries) != len(s.entries) {
			t.Fatalf("%d entries, then %d", len(s.entries), len(again.entries))
		}
		for i, e := range s.entries {
			a := again.entries[i]
			if a.id.Name != e.id.Name || !slices.Equal(a.id.Scopes, e.id.Scopes) || a.hash != e.hash {
				t.Fatalf("entry %d: %v, then %v", i, e, a)
			}
		}
	})
}
