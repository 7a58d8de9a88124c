package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// floatNumber turns a number computed by a query back into JSON number text:
// integral values print as integers (Python's jmespath returns ints there).
func floatNumber(f float64) json.Number {
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// writeJSON prints v as Python's json.dumps(v, indent=4, ensure_ascii=False).
func writeJSON(b *bytes.Buffer, v any, level int) {
	ind := func(n int) { b.WriteString(strings.Repeat("    ", n)) }
	switch x := v.(type) {
	case *object:
		if len(x.keys) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(",\n")
			}
			ind(level + 1)
			writeString(b, k)
			b.WriteString(": ")
			writeJSON(b, x.vals[k], level+1)
		}
		b.WriteByte('\n')
		ind(level)
		b.WriteByte('}')
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range x {
			if i > 0 {
				b.WriteString(",\n")
			}
			ind(level + 1)
			writeJSON(b, e, level+1)
		}
		b.WriteByte('\n')
		ind(level)
		b.WriteByte(']')
	case string:
		writeString(b, x)
	case json.Number:
		b.WriteString(x.String())
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case nil:
		b.WriteString("null")
	default:
		fmt.Fprint(b, x)
	}
}

// writeString escapes as Python's json with ensure_ascii=False: only '"',
// '\\' and control characters below 0x20.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// str is Python's str() of a JSON value, as the text and table formats print
// scalars: True, False, None.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	case *object:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "'%s': %s", k, repr(x.vals[k]))
		}
		b.WriteByte('}')
		return b.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = repr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

func repr(v any) string {
	if s, ok := v.(string); ok {
		return "'" + s + "'"
	}
	return str(v)
}

func isScalar(v any) bool {
	switch v.(type) {
	case *object, []any:
		return false
	}
	return true
}

// formatText follows awscli/text.py.
func formatText(b *bytes.Buffer, v any, ident string, scalarKeys []string) {
	switch x := v.(type) {
	case *object:
		textDict(b, x, ident, scalarKeys)
	case []any:
		textList(b, x, ident)
	default:
		b.WriteString(str(x))
		b.WriteByte('\n')
	}
}

func textList(b *bytes.Buffer, l []any, ident string) {
	if len(l) == 0 {
		return
	}
	hasDict, hasList := false, false
	for _, e := range l {
		switch e.(type) {
		case *object:
			hasDict = true
		case []any:
			hasList = true
		}
	}
	switch {
	case hasDict:
		keys := allScalarKeys(l)
		for _, e := range l {
			formatText(b, e, ident, keys)
		}
	case hasList:
		var scalars []any
		var rest []any
		for _, e := range l {
			if isScalar(e) {
				scalars = append(scalars, e)
			} else {
				rest = append(rest, e)
			}
		}
		if len(scalars) > 0 {
			textScalarList(b, scalars, ident)
		}
		for _, e := range rest {
			formatText(b, e, ident, nil)
		}
	default:
		textScalarList(b, l, ident)
	}
}

func textScalarList(b *bytes.Buffer, l []any, ident string) {
	if ident != "" {
		for _, e := range l {
			b.WriteString(strings.ToUpper(ident) + "\t" + str(e) + "\n")
		}
		return
	}
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = str(e)
	}
	b.WriteString(strings.Join(parts, "\t") + "\n")
}

func allScalarKeys(l []any) []string {
	seen := map[string]bool{}
	for _, e := range l {
		if o, ok := e.(*object); ok {
			for _, k := range o.keys {
				if isScalar(o.vals[k]) {
					seen[k] = true
				}
			}
		}
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func textDict(b *bytes.Buffer, o *object, ident string, scalarKeys []string) {
	var scalars []string
	type pair struct {
		k string
		v any
	}
	var rest []pair
	if scalarKeys == nil {
		keys := append([]string(nil), o.keys...)
		sort.Strings(keys)
		for _, k := range keys {
			if isScalar(o.vals[k]) {
				scalars = append(scalars, str(o.vals[k]))
			} else {
				rest = append(rest, pair{k, o.vals[k]})
			}
		}
	} else {
		isKey := map[string]bool{}
		for _, k := range scalarKeys {
			isKey[k] = true
			if v, ok := o.get(k); ok {
				scalars = append(scalars, str(v))
			} else {
				scalars = append(scalars, "")
			}
		}
		keys := append([]string(nil), o.keys...)
		sort.Strings(keys)
		for _, k := range keys {
			if !isKey[k] {
				rest = append(rest, pair{k, o.vals[k]})
			}
		}
	}
	if len(scalars) > 0 {
		if ident != "" {
			scalars = append([]string{strings.ToUpper(ident)}, scalars...)
		}
		b.WriteString(strings.Join(scalars, "\t") + "\n")
	}
	for _, p := range rest {
		formatText(b, p.v, p.k, nil)
	}
}

// textWidth is table.py's get_text_length: East Asian wide, full-width and
// ambiguous characters count 2.
var wideCond = func() *runewidth.Condition {
	c := runewidth.NewCondition()
	c.EastAsianWidth = true
	return c
}()

func textWidth(s string) int {
	n := 0
	for _, r := range s {
		if w := wideCond.RuneWidth(r); w == 2 {
			n += 2
		} else {
			n++
		}
	}
	if !utf8.ValidString(s) {
		return len(s)
	}
	return n
}
