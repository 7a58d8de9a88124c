package syncplan

import (
	"slices"
	"unicode/utf8"
)

// Included reports whether rel passes the filters: every filter whose pattern
// matches rel decides in turn, so the last match wins; with no match, rel is
// included.
//
// aws matches each pattern, prefixed with the side's root ("/abs/dir/" or
// "bucket/prefix/"), against the file's full path (root + rel). As long as
// the root is literal (no "*", "?" or "[" in it), fnmatch(root+rel,
// root+pattern) equals fnmatch(rel, pattern), which is what is computed here.
// Two aws quirks are deliberately not reproduced: a root containing glob
// characters (aws then treats them as wildcards, so "--exclude x" under a
// directory "d[1]" matches nothing), and aws also matching every file against
// the patterns rooted at the other side's root (which matters only when one
// S3 root is a prefix of the other, as in "sync s3://b/ s3://b/sub/").
func (f Filters) Included(rel string) bool {
	in := true
	for _, flt := range f {
		if Match(flt.Pattern, rel) {
			in = flt.Include
		}
	}
	return in
}

// compiledFilters is Filters with each pattern parsed once, for Plan.
type compiledFilters []compiledFilter

type compiledFilter struct {
	include bool
	pat     pattern
}

func (f Filters) compile() compiledFilters {
	c := make(compiledFilters, len(f))
	for i, flt := range f {
		c[i] = compiledFilter{include: flt.Include, pat: compilePattern(flt.Pattern)}
	}
	return c
}

func (c compiledFilters) included(rel string) bool {
	in := true
	for _, flt := range c {
		if flt.pat.match(rel) {
			in = flt.include
		}
	}
	return in
}

// Match reports whether name matches the fnmatch pattern the way Python's
// fnmatch.fnmatchcase does (aws uses fnmatch.fnmatch, which on POSIX is the
// same: no case folding):
//
//   - "*" matches any run of characters, "/" included;
//   - "?" matches exactly one character (a code point, "/" included);
//   - "[seq]" matches one character in seq, "[!seq]" one not in seq; a "]"
//     right after "[" or "[!" is part of seq; "a-z" in seq is a range, a
//     reversed range ("z-a") matches nothing; "-" first or last is literal;
//     backslash and "^" have no special meaning;
//   - a "[" with no closing "]" is a literal "[";
//   - and CPython's odd corners of classes, reproduced (see compileClass);
//   - everything else matches itself, case-sensitively, and the whole name
//     must match.
func Match(pattern, name string) bool {
	return compilePattern(pattern).match(name)
}

// token kinds of a parsed pattern.
const (
	tokLit  = iota // one literal rune
	tokAny         // "?"
	tokStar        // "*" (runs of stars are collapsed)
	tokSet         // "[...]"
)

type token struct {
	kind   int
	r      rune  // tokLit
	negate bool  // tokSet: "[!...]"
	ranges []rng // tokSet: the members; empty means "matches nothing" (or anything when negated)
}

type rng struct{ lo, hi rune }

type pattern []token

// compilePattern parses an fnmatch pattern. Any string is a valid pattern.
// A class runs from after "[" (past an optional "!" and an optional "]"
// taken literally) to the next "]"; with no such "]", the "[" is literal.
func compilePattern(p string) pattern {
	rs := []rune(p)
	var out pattern
	for i := 0; i < len(rs); {
		c := rs[i]
		i++
		switch c {
		case '*':
			if len(out) == 0 || out[len(out)-1].kind != tokStar {
				out = append(out, token{kind: tokStar})
			}
		case '?':
			out = append(out, token{kind: tokAny})
		case '[':
			j := i
			if j < len(rs) && rs[j] == '!' {
				j++
			}
			if j < len(rs) && rs[j] == ']' {
				j++
			}
			for j < len(rs) && rs[j] != ']' {
				j++
			}
			if j >= len(rs) {
				out = append(out, token{kind: tokLit, r: '['})
				continue
			}
			t := compileClass(rs[i:j])
			out = append(out, t)
			i = j + 1
		default:
			out = append(out, token{kind: tokLit, r: c})
		}
	}
	return out
}

// matchOne reports whether the single-rune token t matches r.
func (t *token) matchOne(r rune) bool {
	switch t.kind {
	case tokLit:
		return t.r == r
	case tokAny:
		return true
	default: // tokSet
		in := false
		for _, g := range t.ranges {
			if g.lo <= r && r <= g.hi {
				in = true
				break
			}
		}
		return in != t.negate
	}
}

// match runs the pattern over name with the usual single-backtrack-point
// wildcard algorithm: a "*" can always absorb more, so on a mismatch only the
// most recent "*" needs to take one more rune. O(len(name)·len(pattern)).
// Invalid UTF-8 bytes in name count as one character each (U+FFFD never
// matches a literal from the pattern unless the pattern holds U+FFFD).
func (p pattern) match(name string) bool {
	pi, ni := 0, 0
	starPi, starNi := -1, 0
	for {
		if pi < len(p) && p[pi].kind == tokStar {
			starPi, starNi = pi, ni
			pi++
			continue
		}
		if ni == len(name) {
			if pi == len(p) {
				return true
			}
		} else if pi < len(p) {
			r, size := utf8.DecodeRuneInString(name[ni:])
			if p[pi].matchOne(r) {
				pi++
				ni += size
				continue
			}
		}
		// Mismatch (or pattern exhausted with name left): let the last "*"
		// absorb one more rune and retry after it.
		if starPi < 0 || starNi == len(name) {
			return false
		}
		_, size := utf8.DecodeRuneInString(name[starNi:])
		starNi += size
		pi, ni = starPi+1, starNi
	}
}

// citem is one character of a class as CPython's fnmatch.translate hands it
// to the re module: join marks the unescaped "-" it puts between chunks,
// the only "-" that can make a range.
type citem struct {
	r    rune
	join bool
}

// compileClass builds the set for the content of "[...]" exactly as CPython
// 3.11's fnmatch.translate and then re do, quirks included:
//
//  1. content with a "-" is cut into chunks at the "-" of each range (the
//     first character, or the first after "!", is never a cut; after a cut
//     the next possible one is two characters on);
//  2. a range whose ends are reversed is dropped with its two ends (so
//     "[z-a]" matches nothing and "[!z-a]" anything);
//  3. a "!" that then comes first negates the set, even if it was not first
//     in the pattern: "[b-a!x]" is "[!x]";
//  4. re reads the rest: "x-y" (with the chunk "-") is a range, every other
//     character is literal, and a trailing "-" is literal.
func compileClass(content []rune) token {
	var items []citem
	if !slices.Contains(content, '-') {
		for _, r := range content {
			items = append(items, citem{r: r})
		}
	} else {
		var chunks [][]rune
		start, k := 0, 1
		if content[0] == '!' {
			k = 2
		}
		for {
			h := -1
			for m := k; m < len(content); m++ {
				if content[m] == '-' {
					h = m
					break
				}
			}
			if h < 0 {
				break
			}
			chunks = append(chunks, slices.Clone(content[start:h]))
			start, k = h+1, h+3
		}
		if last := content[start:]; len(last) > 0 {
			chunks = append(chunks, slices.Clone(last))
		} else {
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
		}
		for k := len(chunks) - 1; k > 0; k-- {
			a, b := chunks[k-1], chunks[k]
			if a[len(a)-1] > b[0] {
				chunks[k-1] = append(slices.Clone(a[:len(a)-1]), b[1:]...)
				chunks = slices.Delete(chunks, k, k+1)
			}
		}
		for x, ch := range chunks {
			if x > 0 {
				items = append(items, citem{r: '-', join: true})
			}
			for _, r := range ch {
				items = append(items, citem{r: r})
			}
		}
	}
	t := token{kind: tokSet}
	switch {
	case len(items) == 0:
		return t // "(?!)": never matches
	case len(items) == 1 && items[0] == citem{r: '!'}:
		return token{kind: tokAny}
	case items[0] == citem{r: '!'}:
		t.negate = true
		items = items[1:]
	}
	for x := 0; x < len(items); {
		lo := items[x].r
		x++
		if x < len(items) && items[x].join {
			if x+1 < len(items) {
				hi := items[x+1].r
				x += 2
				if lo <= hi { // reversed ranges were dropped above
					t.ranges = append(t.ranges, rng{lo, hi})
				}
				continue
			}
			t.ranges = append(t.ranges, rng{lo, lo}, rng{'-', '-'})
			x++
			continue
		}
		t.ranges = append(t.ranges, rng{lo, lo})
	}
	return t
}
