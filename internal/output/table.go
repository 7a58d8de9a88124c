package output

import (
	"bytes"
	"math"
	"sort"
	"strings"
)

// The table format follows awscli's TableFormatter (formatter.py) and
// MultiTable (table.py) without colours.

type section struct {
	title     string
	headers   []string
	rows      [][]string
	indent    int
	maxWidths []int
}

func (s *section) updateWidths(row []string) {
	if s.maxWidths == nil {
		for _, c := range row {
			s.maxWidths = append(s.maxWidths, textWidth(c))
		}
		return
	}
	for i, c := range row {
		if i < len(s.maxWidths) {
			s.maxWidths[i] = max(s.maxWidths[i], textWidth(c))
		}
	}
}

func (s *section) columnWidths(padding, maxWidth int) []int {
	w := make([]int, len(s.maxWidths))
	sum := 0
	for i, m := range s.maxWidths {
		w[i] = m + padding
		sum += w[i]
	}
	if maxWidth < 0 || len(w) == 0 {
		return w
	}
	scale := float64(maxWidth) / float64(sum)
	total := 0
	for i := range w {
		w[i] = int(math.RoundToEven(scale * float64(w[i])))
		total += w[i]
	}
	off := total - maxWidth
	for off != 0 {
		if off > 0 {
			for i := 0; i < len(w) && off != 0; i++ {
				w[i]--
				off--
			}
		} else {
			for i := len(w) - 1; i >= 0 && off != 0; i-- {
				w[i]++
				off++
			}
		}
	}
	return w
}

func (s *section) totalWidth(padding int, outer int) int {
	total := 0
	for _, w := range s.columnWidths(0, -1) {
		total += w + padding
	}
	total += 2 + 2*outer
	return max(textWidth(s.title)+2+2*outer, total)
}

type table struct {
	sections []*section
	cur      *section
}

func (t *table) newSection(title string, indent int) {
	t.cur = &section{title: title, indent: indent}
	t.sections = append(t.sections, t.cur)
}

func (t *table) addHeader(h []string) {
	t.cur.updateWidths(h)
	t.cur.headers = h
}

func (t *table) addRow(r []string) {
	t.cur.rows = append(t.cur.rows, r)
	t.cur.updateWidths(r)
}

func renderTable(b *bytes.Buffer, title string, v any, width int) {
	t := &table{}
	if !t.build(title, v, 0, true) {
		return
	}
	maxW := t.maxWidth()
	if maxW > width {
		for i, s := range t.sections {
			if len(s.rows) == 1 && len(s.headers) > 0 {
				ns := &section{title: s.title, indent: s.indent}
				for j, h := range s.headers {
					r := []string{h, s.rows[0][j]}
					ns.rows = append(ns.rows, r)
					ns.updateWidths(r)
				}
				t.sections[i] = ns
			}
		}
		maxW = t.maxWidth()
	}
	b.WriteString(strings.Repeat("-", maxW) + "\n")
	for _, s := range t.sections {
		renderSection(b, s, maxW)
	}
}

func (t *table) maxWidth() int {
	m := 0
	for _, s := range t.sections {
		m = max(m, s.totalWidth(4, s.indent))
	}
	return m
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case *object:
		return len(x.keys) > 0
	case []any:
		return len(x) > 0
	case string:
		return x != ""
	case bool:
		return x
	}
	return str(v) != "0" && str(v) != "0.0"
}

// build is TableFormatter._build_table; hasTitle distinguishes Python's
// title None from "".
func (t *table) build(title string, v any, indent int, hasTitle bool) bool {
	if !truthy(v) {
		return false
	}
	if hasTitle {
		t.newSection(title, indent)
	}
	switch x := v.(type) {
	case []any:
		if _, ok := x[0].(*object); ok {
			t.subTableFromList(x, indent, title)
		} else {
			for _, item := range x {
				if isScalar(item) {
					t.addRow([]string{str(item)})
				} else if l, ok := item.([]any); ok && allScalar(l) {
					row := make([]string, len(l))
					for i, e := range l {
						row[i] = str(e)
					}
					t.addRow(row)
				} else {
					t.build("", item, 0, false)
				}
			}
		}
	case *object:
		t.subTableFromDict(x, indent)
	}
	return true
}

func allScalar(l []any) bool {
	for _, e := range l {
		if !isScalar(e) {
			return false
		}
	}
	return true
}

func groupKeys(o *object) (headers, more []string) {
	for _, k := range o.keys {
		if isScalar(o.vals[k]) {
			headers = append(headers, k)
		} else {
			more = append(more, k)
		}
	}
	sort.Strings(headers)
	sort.Strings(more)
	return
}

func (t *table) subTableFromDict(o *object, indent int) {
	headers, more := groupKeys(o)
	if len(headers) == 1 {
		t.addRow([]string{headers[0], str(o.vals[headers[0]])})
	} else if len(headers) > 0 {
		t.addHeader(headers)
		row := make([]string, len(headers))
		for i, h := range headers {
			row[i] = str(o.vals[h])
		}
		t.addRow(row)
	}
	for _, k := range more {
		t.build(k, o.vals[k], indent+1, true)
	}
}

func (t *table) subTableFromList(l []any, indent int, title string) {
	hs, ms := map[string]bool{}, map[string]bool{}
	for _, e := range l {
		if o, ok := e.(*object); ok {
			h, m := groupKeys(o)
			for _, k := range h {
				hs[k] = true
			}
			for _, k := range m {
				ms[k] = true
			}
		}
	}
	headers, more := sortedKeys(hs), sortedKeys(ms)
	t.addHeader(headers)
	for i, e := range l {
		o, _ := e.(*object)
		if o == nil {
			o = &object{vals: map[string]any{}}
		}
		if i > 0 && len(more) > 0 {
			t.newSection(title, indent)
			t.addHeader(headers)
		}
		row := make([]string, len(headers))
		for j, h := range headers {
			if v, ok := o.get(h); ok {
				row[j] = str(v)
			}
		}
		t.addRow(row)
		for _, k := range more {
			if v, ok := o.get(k); ok {
				t.build(k, v, indent+1, true)
			}
		}
	}
}

func centerText(text string, length int, left, right string) string {
	tl := textWidth(text)
	start := length/2 - tl/2 - 1
	var b strings.Builder
	b.WriteString(left + strings.Repeat(" ", max(start, 0)) + text)
	soFar := textWidth(left) + start + tl
	b.WriteString(strings.Repeat(" ", max(length-textWidth(right)-soFar, 0)))
	b.WriteString(right)
	return b.String()
}

func alignLeft(text string, length int, left, right string) string {
	tl := textWidth(text)
	pad := 2
	if length-(tl+2+textWidth(left)+textWidth(right)) < 0 {
		pad = 0
	}
	soFar := len(left) + pad + tl
	return left + strings.Repeat(" ", pad) + text + strings.Repeat(" ", max(length-soFar-len(right), 0)) + right
}

func renderSection(b *bytes.Buffer, s *section, maxW int) {
	write := func(line string) {
		b.WriteString(strings.Repeat("|", s.indent) + line + strings.Repeat("|", s.indent) + "\n")
	}
	maxW -= 2 * s.indent
	if s.title != "" {
		write(centerText(s.title, maxW, "|", "|"))
		if len(s.headers) == 0 && len(s.rows) == 0 {
			write("+" + strings.Repeat("-", maxW-2) + "+")
		}
	}
	lineBreak := func(widths []int) {
		var p strings.Builder
		for i, w := range widths {
			if i == 0 {
				p.WriteString("+" + strings.Repeat("-", max(w-2, 0)) + "+")
			} else {
				p.WriteString(strings.Repeat("-", max(w-1, 0)) + "+")
			}
		}
		write(p.String())
	}
	if len(s.headers) > 0 {
		widths := s.columnWidths(4, maxW)
		var cur strings.Builder
		for i, h := range s.headers {
			if i >= len(widths) {
				break
			}
			left := ""
			if i == 0 {
				left = "|"
			}
			cur.WriteString(centerText(h, widths[i], left, "|"))
		}
		lineBreak(widths)
		write(cur.String())
	}
	if len(s.rows) > 0 {
		widths := s.columnWidths(4, maxW)
		if len(widths) == 0 {
			return
		}
		lineBreak(widths)
		for _, r := range s.rows {
			var cur strings.Builder
			for i, c := range r {
				if i >= len(widths) {
					break
				}
				left := ""
				if i == 0 {
					left = "|"
				}
				cur.WriteString(alignLeft(c, widths[i], left, "|"))
			}
			write(cur.String())
		}
		lineBreak(widths)
	}
}
