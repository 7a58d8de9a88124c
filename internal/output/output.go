// Package output prints any JSON-able value the way the aws CLI does with
// --output json, text or table, after applying a --query JMESPath
// expression (github.com/jmespath/go-jmespath).
//
// Behaviour follows awscli's formatter.py, text.py and table.py (v2 where v1
// and v2 differ): JSON with an indent of 4 and non-ASCII kept as is; text
// with scalars of a dict sorted by key on one tab-separated line, prefixed
// by the upper-cased key of the enclosing member, lists of dicts sharing one
// column set; table with the operation name as title, a section per nested
// member, single-row sections turned vertical when too wide for the
// terminal. Colours are never used (aws's --color off).
//
// Member order: --output json prints members in the order the value
// marshals them (api structs follow the FSx model's order, as aws does).
// Maps built by a query keep the order of the query's multiselect hash
// ({Path:…,S3:…}) as Python's jmespath does; other maps are sorted.
package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/jmespath/go-jmespath"
)

// Options select the format.
type Options struct {
	Output string // "json" (default), "text" or "table"
	Query  string // JMESPath; empty = none
	Title  string // table title: the operation name, e.g. DescribeDataRepositoryAssociations
	Width  int    // terminal width for table; 0 = 80 (aws's default when not a terminal)
}

// Write formats v to w.
func Write(w io.Writer, v any, o Options) error {
	tree, err := toTree(v)
	if err != nil {
		return err
	}
	if o.Query != "" {
		if tree, err = applyQuery(o.Query, tree); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	switch o.Output {
	case "", "json":
		if obj, ok := tree.(*object); ok && len(obj.keys) == 0 {
			return nil // aws prints nothing for an empty response
		}
		writeJSON(&buf, tree, 0)
		buf.WriteByte('\n')
	case "text":
		formatText(&buf, tree, "", nil)
	case "table":
		width := o.Width
		if width <= 0 {
			width = 80
		}
		renderTable(&buf, o.Title, tree, width)
	default:
		return fmt.Errorf("--output %q is not a format: use json, text or table", o.Output)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// CheckQuery compiles expr, for a CLI that wants to refuse a bad --query
// before it sends a request.
func CheckQuery(expr string) error {
	_, err := compile(expr)
	return err
}

func compile(expr string) (*jmespath.JMESPath, error) {
	q, err := jmespath.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("bad value for --query %q: %v", expr, err)
	}
	return q, nil
}

// object is a JSON object that keeps its member order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) (any, bool) { v, ok := o.vals[k]; return v, ok }

// toTree turns v into nil, bool, string, json.Number, []any and *object.
func toTree(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return readValue(dec)
}

func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v
			}
			_, err := dec.Token()
			return o, err
		case '[':
			l := []any{}
			for dec.More() {
				v, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := dec.Token()
			return l, err
		}
	}
	return tok, nil
}

// applyQuery runs the expression over the generic form go-jmespath wants and
// converts the result back, restoring member order.
func applyQuery(expr string, tree any) (any, error) {
	q, err := compile(expr)
	if err != nil {
		return nil, err
	}
	orders := map[string][]string{}
	collectOrders(tree, orders)
	for _, keys := range hashKeyOrders(expr) {
		orders[signature(keys)] = keys
	}
	res, err := q.Search(toGeneric(tree))
	if err != nil {
		return nil, fmt.Errorf("--query %q: %v", expr, err)
	}
	return fromGeneric(res, orders), nil
}

func toGeneric(v any) any {
	switch x := v.(type) {
	case *object:
		m := make(map[string]any, len(x.keys))
		for _, k := range x.keys {
			m[k] = toGeneric(x.vals[k])
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = toGeneric(e)
		}
		return l
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	}
	return v
}

func fromGeneric(v any, orders map[string][]string) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if ord, ok := orders[signature(keys)]; ok {
			keys = ord
		}
		o := &object{keys: keys, vals: make(map[string]any, len(x))}
		for _, k := range keys {
			o.vals[k] = fromGeneric(x[k], orders)
		}
		return o
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = fromGeneric(e, orders)
		}
		return l
	case float64:
		return floatNumber(x)
	}
	return v
}

func signature(keys []string) string {
	s := append([]string(nil), keys...)
	sort.Strings(s)
	return strings.Join(s, "\x00")
}

func collectOrders(v any, orders map[string][]string) {
	switch x := v.(type) {
	case *object:
		orders[signature(x.keys)] = x.keys
		for _, k := range x.keys {
			collectOrders(x.vals[k], orders)
		}
	case []any:
		for _, e := range x {
			collectOrders(e, orders)
		}
	}
}

// hashKeyOrders returns the key lists of the multiselect hashes in expr, in
// the order written: "{Path:FileSystemPath,S3:DataRepositoryPath}" gives
// [Path S3]. Literals and quoted strings are skipped.
func hashKeyOrders(expr string) [][]string {
	var (
		out   [][]string
		stack [][]string // keys of the open {…} groups
		depth []int      // bracket depth inside each group
		// expectKey is true right after "{" or a "," at the group's own level.
		expectKey bool
	)
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch c {
		case '\'', '`', '"':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			if c == '"' && expectKey && len(stack) > 0 {
				k := i + 1
				end := min(j, len(expr))
				var s string
				if err := json.Unmarshal([]byte(expr[i:min(end+1, len(expr))]), &s); err != nil {
					s = expr[k:end]
				}
				if rest := strings.TrimLeft(expr[min(end+1, len(expr)):], " \t\n"); strings.HasPrefix(rest, ":") {
					stack[len(stack)-1] = append(stack[len(stack)-1], s)
				}
			}
			expectKey = false
			i = j
		case '{':
			stack = append(stack, nil)
			depth = append(depth, 0)
			expectKey = true
		case '}':
			if len(stack) > 0 {
				out = append(out, stack[len(stack)-1])
				stack, depth = stack[:len(stack)-1], depth[:len(depth)-1]
			}
			expectKey = false
		case '[', '(':
			if len(depth) > 0 {
				depth[len(depth)-1]++
			}
			expectKey = false
		case ']', ')':
			if len(depth) > 0 {
				depth[len(depth)-1]--
			}
		case ',':
			expectKey = len(depth) > 0 && depth[len(depth)-1] == 0
		case ' ', '\t', '\n':
		default:
			if expectKey && len(stack) > 0 && (c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				j := i
				for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
					j++
				}
				if rest := strings.TrimLeft(expr[j:], " \t\n"); strings.HasPrefix(rest, ":") {
					stack[len(stack)-1] = append(stack[len(stack)-1], expr[i:j])
				}
				i = j - 1
			}
			expectKey = false
		}
	}
	return out
}
