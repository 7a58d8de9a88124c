package syncplan

import (
	"context"
	"testing"
)

// BenchmarkPlan merges two synthetic listings of b.N entries with a filter
// and reports the heap allocated per planned entry.
func BenchmarkPlan(b *testing.B) {
	b.ReportAllocs()
	src := &genIter{n: b.N, every: 7, size: 1}
	dst := &genIter{n: b.N, every: 5, size: 2}
	err := Plan(context.Background(), src, dst, Options{Delete: true, Filters: Filters{{Pattern: "*9"}, {Include: true, Pattern: "d00*/f*99"}}}, func(Action) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkMatch(b *testing.B) {
	p := compilePattern("*/logs/*.[!t]x?")
	for i := 0; i < b.N; i++ {
		p.match("data/2024/05/01/host-17/logs/app.lxz")
	}
}
