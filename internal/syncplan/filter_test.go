package syncplan

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// matchCases were checked with CPython 3.11's fnmatch.fnmatchcase, which is
// what aws's fnmatch.fnmatch is on POSIX.
var matchCases = []struct {
	pat, name string
	want      bool
}{
	{"*", "a", true},
	{"*", "", true},
	{"*", "a/b/c", true},
	{"*.txt", "dir/sub/a.txt", true},
	{"*.txt", "a.txt.bak", false},
	{"dir/*", "dir/a/b", true},
	{"dir/*", "dira", false},
	{"dir/*", "dir/", true},
	{"?", "a", true},
	{"?", "ab", false},
	{"?", "/", true},
	{"?", "", false},
	{"?", "é", true},
	{"a?c", "a/c", true},
	{"??", "é", false},
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[!abc]", "d", true},
	{"[!abc]", "a", false},
	{"[a-c]x", "bx", true},
	{"[a-c]x", "dx", false},
	{"[!a-c]", "/", true},
	{"[]]", "]", true},
	{"[]a]", "a", true},
	{"[!]]", "]", false},
	{"[!]]", "x", true},
	{"[", "[", true},
	{"[a", "[a", true},
	{"[a", "a", false},
	{"a[", "a[", true},
	{"[!", "[!", true},
	{"[]", "[]", true},
	{"[z-a]", "z", false},
	{"[!z-a]", "q", true},
	{"[a-]", "-", true},
	{"[-a]", "-", true},
	{"[a--]", "-", false},
	{`[\]`, `\`, true},
	{`\*`, `\x`, true},
	{`\*`, "*", false},
	{"[^a]", "^", true},
	{"[^a]", "b", false},
	{"A*", "a", false},
	{"a*", "A", false},
	{"*a*b*c*", "xaybzc", true},
	{"*a*b*c*", "xaybz", false},
	{"a*b*", "ab", true},
	{"**", "x/y", true},
	{"*/", "a/", true},
	{"*/*", "a", false},
	{"[*]", "*", true},
	{"[*]", "a", false},
	{"[?]", "?", true},
	{"[?]", "a", false},
	{"é*", "éa", true},
	{"[é-ü]", "ö", true},
	{"[é-ü]", "z", false},
	{"*.log", "a.log", true},
	{"logs/*", "logs/2024/x", true},
	{"*/logs/*", "a/logs/x", true},
	{"*/logs/*", "logs/x", false},
	{".*", ".hidden", true},
	{"*~", "a~", true},
	{"a[b-d-f]", "a-", true},
	{"a[b-d-f]", "ae", false},
	{"a[b-d-f]", "af", true},
	{"[a-a]", "a", true},
	{"x[!-]y", "x-y", false},
	{"x[!-]y", "xay", true},
	{"[&&]", "&", true},
	{"[~|]", "|", true},
	// CPython quirks: a dropped reversed range can leave a "!" in front,
	// which then negates the set.
	{"[b-0!]", "0", true},
	{"[b-0!]", "/", true},
	{"[b-0!x]", "x", false},
	{"[b-0!x]", "y", true},
	{"[b-0!-z]", "-", false},
	{"[b-0!-z]", "z", false},
	{"[b-0!-z]", "a", true},
	{"[!b-0c-z]", "b", true},
	{"[!b-0c-z]", "d", false},
	{"[!b-0c-z]", "a", true},
	{"[]-a]", "^", true},
	{"[!^a]", "^", false},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		if got := Match(c.pat, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pat, c.name, got, c.want)
		}
		if got := pythonRegexp(c.pat).MatchString(c.name); got != c.want {
			t.Errorf("oracle pythonRegexp(%q) on %q = %v, want %v", c.pat, c.name, got, c.want)
		}
	}
}

func TestFiltersIncluded(t *testing.T) {
	ex := func(p string) Filter { return Filter{Pattern: p} }
	in := func(p string) Filter { return Filter{Include: true, Pattern: p} }
	cases := []struct {
		name    string
		filters Filters
		rel     string
		want    bool
	}{
		{"no filters", nil, "a/b", true},
		{"exclude all", Filters{ex("*")}, "a/b", false},
		{"exclude then include: last wins", Filters{ex("*"), in("*.txt")}, "d/a.txt", true},
		{"exclude then include, no include match", Filters{ex("*"), in("*.txt")}, "d/a.jpg", false},
		{"include then exclude: exclude wins", Filters{in("*.txt"), ex("*")}, "a.txt", false},
		{"include alone changes nothing", Filters{in("*.txt")}, "a.jpg", true},
		{"exclude a directory", Filters{ex("logs/*")}, "logs/2024/a", false},
		{"exclude a directory, sibling kept", Filters{ex("logs/*")}, "logs2/a", true},
		{"star crosses /", Filters{ex("*.tmp")}, "a/b/c.tmp", false},
		{"question mark", Filters{ex("?.txt")}, "a.txt", false},
		{"question mark needs exactly one", Filters{ex("?.txt")}, "ab.txt", true},
		{"class", Filters{ex("[ab].txt")}, "b.txt", false},
		{"negated class", Filters{ex("[!ab].txt")}, "b.txt", true},
		{"negated class excludes", Filters{ex("[!ab].txt")}, "c.txt", false},
		{"case-sensitive", Filters{ex("*.TXT")}, "a.txt", true},
		{"three filters, middle matches only", Filters{ex("a*"), in("ab*"), ex("abc*")}, "abd", true},
		{"three filters, last matches", Filters{ex("a*"), in("ab*"), ex("abc*")}, "abcd", false},
		{"unclosed bracket is literal", Filters{ex("[a")}, "[a", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.filters.Included(c.rel); got != c.want {
				t.Errorf("%v.Included(%q) = %v, want %v", c.filters, c.rel, got, c.want)
			}
			if got := c.filters.compile().included(c.rel); got != c.want {
				t.Errorf("compiled %v.included(%q) = %v, want %v", c.filters, c.rel, got, c.want)
			}
		})
	}
}

// pythonRegexp is an independent oracle: a port of CPython 3.11's
// fnmatch.translate (chunking of classes on "-", removal of reversed ranges,
// empty and "!" classes) producing a Go regexp.
func pythonRegexp(pat string) *regexp.Regexp {
	p := []rune(pat)
	n := len(p)
	var res strings.Builder
	quote := func(s []rune) string {
		var b strings.Builder
		for _, r := range s {
			if r < utf8.RuneSelf && !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	i := 0
	for i < n {
		c := p[i]
		i++
		switch c {
		case '*':
			res.WriteString(".*")
		case '?':
			res.WriteString(".")
		case '[':
			j := i
			if j < n && p[j] == '!' {
				j++
			}
			if j < n && p[j] == ']' {
				j++
			}
			for j < n && p[j] != ']' {
				j++
			}
			if j >= n {
				res.WriteString(`\[`)
				continue
			}
			// Python: chunks split at the "-" of ranges.
			var chunks [][]rune
			k := i + 1
			if p[i] == '!' {
				k = i + 2
			}
			for {
				h := -1
				for m := k; m < j; m++ {
					if p[m] == '-' {
						h = m
						break
					}
				}
				if h < 0 {
					break
				}
				chunks = append(chunks, append([]rune(nil), p[i:h]...))
				i = h + 1
				k = h + 3
			}
			if last := p[i:j]; len(last) > 0 {
				chunks = append(chunks, append([]rune(nil), last...))
			} else {
				chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
			}
			for k := len(chunks) - 1; k > 0; k-- {
				a, b := chunks[k-1], chunks[k]
				if a[len(a)-1] > b[0] {
					chunks[k-1] = append(append([]rune(nil), a[:len(a)-1]...), b[1:]...)
					chunks = append(chunks[:k], chunks[k+1:]...)
				}
			}
			i = j + 1
			// stuff = "-".join(chunks), with the leading "!" kept aside.
			neg := false
			if len(chunks) > 0 && len(chunks[0]) > 0 && chunks[0][0] == '!' {
				neg = true
				chunks[0] = chunks[0][1:]
			}
			empty := true
			for _, ch := range chunks {
				if len(ch) > 0 {
					empty = false
				}
			}
			if len(chunks) > 1 {
				empty = false // a "-" joins them
			}
			switch {
			case empty && !neg:
				res.WriteString(`[^\x00-\x{10FFFF}]`) // (?!): never matches
			case empty && neg:
				res.WriteString(".")
			default:
				parts := make([]string, len(chunks))
				for x, ch := range chunks {
					parts[x] = quote(ch)
				}
				if neg {
					res.WriteString("[^" + strings.Join(parts, "-") + "]")
				} else {
					res.WriteString("[" + strings.Join(parts, "-") + "]")
				}
			}
		default:
			res.WriteString(quote([]rune{c}))
		}
	}
	return regexp.MustCompile(`^(?s:` + res.String() + `)\z`)
}

// FuzzMatch checks Match against the regexp translation of the pattern, as
// CPython's fnmatch builds it, and a few invariants.
func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pat, c.name)
	}
	f.Add("[a-c-e]*x?", "d-x/y")
	f.Add("*[!]-]*", "a]b")
	f.Fuzz(func(t *testing.T, pat, name string) {
		if !utf8.ValidString(pat) || !utf8.ValidString(name) || len(pat) > 64 || len(name) > 256 {
			t.Skip()
		}
		got := Match(pat, name)
		if want := pythonRegexp(pat).MatchString(name); got != want {
			t.Fatalf("Match(%q, %q) = %v, CPython's translation says %v", pat, name, got, want)
		}
		// A pattern without wildcards matches only itself.
		if !strings.ContainsAny(pat, "*?[") && got != (pat == name) {
			t.Fatalf("Match(%q, %q) = %v for a literal pattern", pat, name, got)
		}
		// "*" + pattern matches anything that ends in a match of pattern.
		if got && !Match("*"+pat, "x/"+name) {
			t.Fatalf("Match(*%q, x/%q) = false though %q matches %q", pat, name, pat, name)
		}
	})
}
