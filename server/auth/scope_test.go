package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestParseScopes(t *testing.T) {
	cases := []struct {
		in   string
		want []Scope // nil: an error
		text string  // FormatScopes of want, when it differs from in
	}{
		{"read", []Scope{{Read, ""}}, ""},
		{"admin", []Scope{{Admin, ""}}, ""},
		{"read,backup:shop/*,restore:*,admin", []Scope{{Read, ""}, {Backup, "shop/*"}, {Restore, "*"}, {Admin, ""}}, ""},
		{"backup:a?c/d.e_f-G9", []Scope{{Backup, "a?c/d.e_f-G9"}}, ""},
		{"read,read,backup:x,backup:x,backup:y", []Scope{{Read, ""}, {Backup, "x"}, {Backup, "y"}}, "read,backup:x,backup:y"},
		{"backup:*,restore:*", []Scope{{Backup, "*"}, {Restore, "*"}}, ""},
		{"backup:" + strings.Repeat("a", 200), []Scope{{Backup, strings.Repeat("a", 200)}}, ""},

		{"", nil, ""},
		{",", nil, ""},
		{"read,", nil, ""},
		{",read", nil, ""},
		{"read,,admin", nil, ""},
		{"write", nil, ""},
		{"Read", nil, ""},
		{"read ", nil, ""},
		{" read", nil, ""},
		{"read, admin", nil, ""},
		{"read:x", nil, ""},
		{"read:", nil, ""},
		{"admin:x", nil, ""},
		{"admin:", nil, ""},
		{"backup", nil, ""},
		{"backup:", nil, ""},
		{"restore", nil, ""},
		{":x", nil, ""},
		{"backup:" + strings.Repeat("a", 201), nil, ""},
		{"backup:[a]", nil, ""},
		{"backup:a\\*", nil, ""},
		{"backup:a b", nil, ""},
		{"backup:a:b", nil, ""},
		{"backup:é", nil, ""},
		{"restore:a\x00", nil, ""},
	}
	for _, tc := range cases {
		got, err := ParseScopes(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParseScopes(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		text := tc.text
		if text == "" {
			text = tc.in
		}
		if got, want := FormatScopes(got), text; got != want {
			t.Errorf("FormatScopes(ParseScopes(%q)) = %q, want %q", tc.in, got, want)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		glob, name string
		want       bool
	}{
		{"*", "a", true},
		{"*", "shop/eu/users", true},
		{"shop/*", "shop/users", true},
		{"shop/*", "shop/eu/users", true}, // '*' crosses '/'
		{"shop/*", "shop", false},
		{"shop/*", "shopping/users", false},
		{"shop*", "shopping/users", true},
		{"*/users", "shop/users", true},
		{"*/users", "shop/eu/users", true},
		{"*/users", "users", false},
		{"*users", "users", true},
		{"shop/users", "shop/users", true},
		{"shop/users", "shop/users2", false},
		{"shop/users", "shop/user", false},
		{"shop/user?", "shop/users", true},
		{"shop/user?", "shop/user", false},
		{"shop/user?", "shop/users2", false},
		{"shop?users", "shop/users", false}, // '?' never matches '/'
		{"shop?users", "shop.users", true},
		{"a.b", "a.b", true},
		{"a.b", "axb", false}, // '.' is literal
		{"a*b*c", "a/x/b/y/c", true},
		{"a*b*c", "a/x/c/y/b", false},
		{"*a*a*a*a*b", strings.Repeat("a", 150), false},
		{"*a*a*a*a*b", strings.Repeat("a", 150) + "b", true},
		{"**", "x", true},
		{"?", "x", true},
		{"?", "xy", false},
		{"??", "x", false},
		{"*?", "x", true},
		{"*?", "x/", false},
		{"x*", "x", true},
		{"*x", "x", true},
		{"Shop/*", "shop/users", false}, // case-sensitive
	}
	for _, tc := range cases {
		if got := matchGlob(tc.glob, tc.name); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tc.glob, tc.name, got, tc.want)
		}
		if got := globRegexp(tc.glob).MatchString(tc.name); got != tc.want {
			t.Errorf("reference: %q ~ %q = %v, want %v", tc.glob, tc.name, got, tc.want)
		}
	}
}

func TestAllows(t *testing.T) {
	ids := map[string]*Identity{
		"reader":   {Name: "reader", Scopes: []Scope{{Read, ""}}},
		"shopper":  {Name: "shopper", Scopes: []Scope{{Backup, "shop/*"}, {Restore, "shop/eu/*"}}},
		"restorer": {Name: "restorer", Scopes: []Scope{{Restore, "*"}}},
		"admin":    {Name: "admin", Scopes: []Scope{{Admin, ""}}},
		"none":     {Name: "none"},
	}
	// Columns in this order for every row.
	kinds := []Kind{Read, Backup, Restore, Admin}
	cases := []struct {
		id, stream string
		want       [4]bool
	}{
		{"reader", "", [4]bool{true, false, false, false}},
		{"reader", "shop/users", [4]bool{true, false, false, false}},
		{"shopper", "", [4]bool{false, true, true, false}}, // "any stream at all"
		{"shopper", "shop/users", [4]bool{false, true, false, false}},
		{"shopper", "shop/eu/users", [4]bool{false, true, true, false}},
		{"shopper", "shopping/users", [4]bool{false, false, false, false}},
		{"shopper", "shop", [4]bool{false, false, false, false}},
		{"restorer", "", [4]bool{false, false, true, false}},
		{"restorer", "anything/at/all", [4]bool{false, false, true, false}},
		{"admin", "", [4]bool{true, true, true, true}},
		{"admin", "shop/users", [4]bool{true, true, true, true}},
		{"none", "", [4]bool{}},
		{"none", "shop/users", [4]bool{}},
		// Names that look like paths never validate, so nobody gets them,
		// admin included, even where a glob would match the bytes.
		{"admin", "../etc", [4]bool{}},
		{"shopper", "shop/../etc", [4]bool{}},
		{"shopper", "shop/./users", [4]bool{}},
		{"shopper", "shop//users", [4]bool{}},
		{"shopper", "shop/users/", [4]bool{}},
		{"restorer", "/etc/passwd", [4]bool{}},
		{"restorer", "a\x00b", [4]bool{}},
		{"reader", "..", [4]bool{}},
		{"admin", strings.Repeat("a", 201), [4]bool{}},
	}
	for _, tc := range cases {
		for i, k := range kinds {
			if got := ids[tc.id].Allows(k, tc.stream); got != tc.want[i] {
				t.Errorf("%s.Allows(%s, %q) = %v, want %v", tc.id, k, tc.stream, got, tc.want[i])
			}
		}
	}
	var nobody *Identity
	if nobody.Allows(Read, "") || nobody.AllowsAllStreams(Read) {
		t.Error("a nil identity allows something")
	}
	if ids["admin"].Allows(Kind("write"), "x") || ids["admin"].Allows("", "") {
		t.Error("an unknown kind is allowed")
	}

	all := []struct {
		id   string
		want [4]bool
	}{
		{"reader", [4]bool{true, false, false, false}},
		{"shopper", [4]bool{false, false, false, false}},
		{"restorer", [4]bool{false, false, true, false}},
		{"admin", [4]bool{true, true, true, true}},
		{"none", [4]bool{}},
	}
	for _, tc := range all {
		for i, k := range kinds {
			if got := ids[tc.id].AllowsAllStreams(k); got != tc.want[i] {
				t.Errorf("%s.AllowsAllStreams(%s) = %v, want %v", tc.id, k, got, tc.want[i])
			}
		}
	}
}
