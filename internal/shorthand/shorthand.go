// Package shorthand reads aws CLI parameter values: JSON, or the aws CLI's
// shorthand syntax (awscli/shorthand.py), into Go values with FSx member
// names. It is its own package because the syntax is a property of the aws
// command line, not of the FSx shapes (internal/api) or their rules
// (internal/dra); internal/cli is its only intended user.
//
//	--s3 'AutoImportPolicy={Events=[NEW,CHANGED]},AutoExportPolicy={Events=[NEW]}'
//	--tags Key=Name,Value=dra-extdata Key=Owner,Value=me
//	--filters Name=file-system-id,Values=fs-123,fs-456
//	--report Enabled=true,Path=/fsx/reports,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY
//
// Grammar (as awscli): parameter = keyval *("," keyval); keyval = key "="
// values; values = csv-value | "[" list "]" | "{" keyvals "}"; a csv value
// "a,b" becomes a list unless what follows the comma is a new "key=".
// Values may be quoted with ' or ", and "\," escapes a comma. Then, as
// awscli's BackCompatVisitor does, values are shaped by the target type: a
// scalar becomes a one-element list where a list is expected, "true"/"false"
// become booleans, digits become integers. Member names are case-sensitive
// and an unknown one is an error naming the valid ones.
//
// Not supported: awscli's "key@=file://…" paramfile references inside
// shorthand (the CLI resolves a whole-value file:// itself).
package shorthand

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Error is a parse or shape error of one parameter.
type Error struct {
	Param string // "--s3"
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("Error parsing parameter '%s': %s", e.Param, e.Msg)
}

// Decode reads one structure parameter into v (a pointer to a struct): JSON
// when the value starts with "{", else shorthand.
func Decode(param, value string, v any) error {
	tree, err := parseValue(value)
	if err != nil {
		return &Error{param, err.Error()}
	}
	return assign(param, tree, v)
}

// DecodeList reads a list parameter given as one or more arguments into v (a
// pointer to a slice): one JSON list ("[…]"), or one item per argument, each
// JSON ("{…}") or shorthand; a list of strings takes the arguments as they
// are.
func DecodeList(param string, values []string, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Slice {
		panic("shorthand.DecodeList needs a pointer to a slice")
	}
	if len(values) == 1 && strings.HasPrefix(strings.TrimSpace(values[0]), "[") {
		var tree any
		if err := json.Unmarshal([]byte(values[0]), &tree); err != nil {
			return &Error{param, "Invalid JSON: " + err.Error() + "\nJSON received: " + values[0]}
		}
		return assign(param, tree, v)
	}
	elem := rv.Elem().Type().Elem()
	var list []any
	for _, s := range values {
		if isStructLike(elem) {
			t, err := parseValue(s)
			if err != nil {
				return &Error{param, err.Error()}
			}
			list = append(list, t)
		} else {
			list = append(list, s)
		}
	}
	return assign(param, list, v)
}

func isStructLike(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

func parseValue(value string) (any, error) {
	if t := strings.TrimSpace(value); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		var tree any
		if err := json.Unmarshal([]byte(value), &tree); err != nil {
			return nil, fmt.Errorf("Invalid JSON: %v\nJSON received: %s", err, value)
		}
		return tree, nil
	}
	return Parse(value)
}

func assign(param string, tree any, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("shorthand: target must be a non-nil pointer")
	}
	shaped, err := shape(tree, rv.Elem().Type(), "")
	if err != nil {
		return &Error{param, err.Error()}
	}
	b, err := json.Marshal(shaped)
	if err != nil {
		return &Error{param, err.Error()}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &Error{param, err.Error()}
	}
	return nil
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if n == "" {
		return f.Name
	}
	return n
}

// shape converts the parsed tree to the JSON types of t, checking member names.
func shape(v any, t reflect.Type, where string) (any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil, nil
	}
	if t.Implements(reflect.TypeFor[json.Unmarshaler]()) || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return v, nil // e.g. api.Time: its own decoder checks the value
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s must be a structure (Key=Value,… or {…}), not %s", orInput(where), describe(v))
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.IsExported() && jsonName(f) != "-" {
				fields[jsonName(f)] = f
				names = append(names, jsonName(f))
			}
		}
		out := map[string]any{}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				return nil, fmt.Errorf("Unknown parameter in %s: %q, must be one of: %s", orInput(where), k, strings.Join(names, ", "))
			}
			sv, err := shape(m[k], f.Type, join(where, k))
			if err != nil {
				return nil, err
			}
			out[k] = sv
		}
		return out, nil
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			l = []any{v} // "Values=fs-1" means ["fs-1"]
		}
		out := make([]any, len(l))
		for i, e := range l {
			sv, err := shape(e, t.Elem(), fmt.Sprintf("%s[%d]", where, i))
			if err != nil {
				return nil, err
			}
			out[i] = sv
		}
		return out, nil
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(x) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, fmt.Errorf("invalid value for %s: %s: use true or false", orInput(where), describe(v))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		switch x := v.(type) {
		case float64:
			if x != float64(int64(x)) {
				return nil, fmt.Errorf("invalid value for %s: %v: give a whole number", orInput(where), x)
			}
			return int64(x), nil
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("invalid value for %s: %q: give a whole number", orInput(where), x)
			}
			return n, nil
		}
		return nil, fmt.Errorf("invalid value for %s: %s: give a whole number", orInput(where), describe(v))
	case reflect.String:
		if s, ok := v.(string); ok {
			return s, nil
		}
		if _, ok := v.(float64); ok {
			return nil, fmt.Errorf("invalid type for %s: %s: give a string", orInput(where), describe(v))
		}
		return nil, fmt.Errorf("invalid type for %s: %s: give a single value", orInput(where), describe(v))
	}
	return v, nil
}

func orInput(where string) string {
	if where == "" {
		return "input"
	}
	return where
}

func join(where, k string) string {
	if where == "" {
		return k
	}
	return where + "." + k
}

func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "a structure"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

// Parse parses shorthand syntax into map[string]any, []any and string
// values, exactly as awscli's ShorthandParser does (no typing).
func Parse(s string) (map[string]any, error) {
	p := &parser{in: []rune(s)}
	return p.parameter()
}

type parser struct {
	in []rune
	i  int
}

// SyntaxError points at the place the parser stopped.
type SyntaxError struct {
	Input    string
	Index    int // in runes
	Expected string
	Actual   string
	Msg      string
}

func (e *SyntaxError) Error() string {
	in := []rune(e.Input)
	consumed, remaining, spaces := string(in), "", e.Index
	if j := strings.LastIndex(string(in[:e.Index]), "\n"); j >= 0 {
		spaces = e.Index - len([]rune(string(in[:e.Index])[:j])) - 1
	}
	if j := strings.Index(string(in[e.Index:]), "\n"); j >= 0 {
		consumed = string(in[:e.Index]) + string(in[e.Index:])[:j]
		remaining = string(in[e.Index:])[j:]
	}
	loc := consumed + "\n" + strings.Repeat(" ", spaces) + "^" + remaining
	if e.Msg != "" {
		return strings.ReplaceAll(e.Msg, "%LOC%", loc)
	}
	return fmt.Sprintf("Expected: '%s', received: '%s' for input:\n%s", e.Expected, e.Actual, loc)
}

func (p *parser) eof() bool { return p.i >= len(p.in) }

func (p *parser) cur() rune {
	if p.eof() {
		return -1
	}
	return p.in[p.i]
}

func (p *parser) errAt(expected string) *SyntaxError {
	actual := "EOF"
	if !p.eof() {
		actual = string(p.in[p.i])
	}
	return &SyntaxError{Input: string(p.in), Index: p.i, Expected: expected, Actual: actual}
}

func (p *parser) skipSpace() {
	for !p.eof() && unicode.IsSpace(p.in[p.i]) {
		p.i++
	}
}

func (p *parser) expect(c rune, space bool) error {
	if space {
		p.skipSpace()
	}
	if p.eof() || p.in[p.i] != c {
		return p.errAt(string(c))
	}
	p.i++
	if space {
		p.skipSpace()
	}
	return nil
}

func (p *parser) parameter() (map[string]any, error) {
	params := map[string]any{}
	k, v, err := p.keyval()
	if err != nil {
		return nil, err
	}
	params[k] = v
	last := p.i
	for !p.eof() {
		if err := p.expect(',', true); err != nil {
			return nil, err
		}
		k, v, err := p.keyval()
		if err != nil {
			return nil, err
		}
		if _, dup := params[k]; dup {
			return nil, &SyntaxError{Input: string(p.in), Index: last + 1, Msg: "Second instance of key \"" + k + "\" encountered for input:\n%LOC%\nThis is often because there is a preceding \",\" instead of a space."}
		}
		params[k] = v
		last = p.i
	}
	return params, nil
}

func isKeyChar(r rune) bool {
	return r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.#/:", r))
}

func (p *parser) key() string {
	start := p.i
	for !p.eof() && isKeyChar(p.in[p.i]) {
		p.i++
	}
	return string(p.in[start:p.i])
}

func (p *parser) keyval() (string, any, error) {
	k := p.key()
	if err := p.expect('=', true); err != nil {
		return "", nil, err
	}
	v, err := p.values()
	return k, v, err
}

func (p *parser) values() (any, error) {
	switch {
	case p.eof():
		return "", nil
	case p.cur() == '[':
		return p.explicitList()
	case p.cur() == '{':
		return p.hashLiteral()
	}
	return p.csvValue()
}

func (p *parser) csvValue() (any, error) {
	first, err := p.firstValue()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.eof() || p.cur() != ',' {
		return first, nil
	}
	if err := p.expect(',', true); err != nil {
		return nil, err
	}
	list := []any{first}
	for {
		v, err := p.secondValue()
		if err == nil {
			p.skipSpace()
			if p.eof() {
				list = append(list, v)
				break
			}
			err = p.expect(',', true)
			if err == nil {
				list = append(list, v)
				continue
			}
		}
		if p.eof() {
			return nil, err
		}
		for p.i >= 0 && p.in[p.i] != ',' { // back to the comma before "key="
			p.i--
		}
		break
	}
	if len(list) == 1 {
		return first, nil
	}
	return list, nil
}

// Character classes of awscli's value regexes (_START_WORD,
// _FIRST_FOLLOW_CHARS, _SECOND_FOLLOW_CHARS), extended past U+FFFF.
func startWord(r rune) bool {
	return r == '!' || r >= '#' && r <= '&' || r >= '(' && r <= '+' || r >= '-' && r <= '<' ||
		r >= '>' && r <= 'Z' || r >= '\\' && r <= 'z' || r >= '|'
}

func firstFollow(r rune) bool {
	return unicode.IsSpace(r) || r == '!' || r >= '#' && r <= '&' || r >= '(' && r <= '+' ||
		r >= '-' && r <= '\\' || r >= '^' && r <= '|' || r >= '~'
}

func secondFollow(r rune) bool {
	return unicode.IsSpace(r) || r == '!' || r >= '#' && r <= '&' || r >= '(' && r <= '+' ||
		r >= '-' && r <= '<' || r >= '>'
}

// word consumes (escaped-comma | start)(escaped-comma | follow)*.
func (p *parser) word(follow func(rune) bool) (string, bool) {
	start := p.i
	esc := func() bool { return p.i+1 < len(p.in) && p.in[p.i] == '\\' && p.in[p.i+1] == ',' }
	switch {
	case esc():
		p.i += 2
	case !p.eof() && startWord(p.in[p.i]):
		p.i++
	default:
		return "", false
	}
	for !p.eof() {
		if esc() {
			p.i += 2
		} else if follow(p.in[p.i]) {
			p.i++
		} else {
			break
		}
	}
	s := strings.ReplaceAll(string(p.in[start:p.i]), `\,`, ",")
	return strings.TrimRightFunc(s, unicode.IsSpace), true
}

func (p *parser) firstValue() (string, error) {
	switch p.cur() {
	case '\'', '"':
		return p.quoted(p.cur())
	}
	s, _ := p.word(firstFollow)
	return s, nil
}

func (p *parser) secondValue() (string, error) {
	switch p.cur() {
	case '\'', '"':
		return p.quoted(p.cur())
	}
	s, ok := p.word(secondFollow)
	if !ok {
		return "", &SyntaxError{Input: string(p.in), Index: p.i, Expected: "<second>", Actual: "<none>"}
	}
	return s, nil
}

func (p *parser) quoted(q rune) (string, error) {
	j := p.i + 1
	for j < len(p.in) && p.in[j] != q {
		if p.in[j] == '\\' && j+1 < len(p.in) && p.in[j+1] == q {
			j++
		}
		j++
	}
	if j >= len(p.in) {
		name := "double quoted"
		if q == '\'' {
			name = "singled quoted"
		}
		return "", &SyntaxError{Input: string(p.in), Index: p.i, Expected: "<" + name + ">", Actual: "<none>"}
	}
	s := string(p.in[p.i+1 : j])
	p.i = j + 1
	s = strings.ReplaceAll(s, `\`+string(q), string(q))
	return strings.ReplaceAll(s, `\\`, `\`), nil
}

func (p *parser) explicitList() ([]any, error) {
	if err := p.expect('[', true); err != nil {
		return nil, err
	}
	list := []any{}
	for p.cur() != ']' {
		if p.eof() {
			return nil, p.errAt("]")
		}
		v, err := p.explicitValue()
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		p.skipSpace()
		if p.cur() != ']' {
			if err := p.expect(',', false); err != nil {
				return nil, err
			}
			p.skipSpace()
		}
	}
	p.i++
	return list, nil
}

func (p *parser) explicitValue() (any, error) {
	switch p.cur() {
	case '[':
		return p.explicitList()
	case '{':
		return p.hashLiteral()
	}
	return p.firstValue()
}

func (p *parser) hashLiteral() (map[string]any, error) {
	if err := p.expect('{', true); err != nil {
		return nil, err
	}
	m := map[string]any{}
	for p.cur() != '}' {
		if p.eof() {
			return nil, p.errAt("}")
		}
		k := p.key()
		if err := p.expect('=', true); err != nil {
			return nil, err
		}
		v, err := p.explicitValue()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.cur() != '}' {
			if err := p.expect(',', false); err != nil {
				return nil, err
			}
			p.skipSpace()
		}
		m[k] = v
	}
	p.i++
	return m, nil
}
