package store

import (
	"math/rand/v2"
	"testing"
)

func TestBitmapHas(t *testing.T) {
	// 10 chunks of 10 bytes, the last one 5 bytes: size 95.
	const size, chunk = 95, 10
	tests := []struct {
		name   string
		marked []Range // Mark calls
		query  Range
		want   []Range
	}{
		{"empty map, whole file", nil, Range{0, 95}, []Range{{0, 95}}},
		{"empty map, one byte", nil, Range{37, 1}, []Range{{30, 10}}},
		{"empty map, across a boundary", nil, Range{39, 2}, []Range{{30, 20}}},
		{"empty map, last short chunk", nil, Range{92, 3}, []Range{{90, 5}}},
		{"query past EOF is clipped", nil, Range{90, 100}, []Range{{90, 5}}},
		{"query wholly past EOF", nil, Range{95, 10}, nil},
		{"zero length", nil, Range{10, 0}, nil},
		{"negative offset clipped", nil, Range{-5, 10}, []Range{{0, 10}}},
		{"all marked", []Range{{0, 95}}, Range{0, 95}, nil},
		{"exact chunk marked", []Range{{30, 10}}, Range{30, 10}, nil},
		{"neighbours missing", []Range{{30, 10}}, Range{25, 20}, []Range{{20, 10}, {40, 10}}},
		{"partial chunk not marked", []Range{{31, 10}}, Range{30, 20}, []Range{{30, 20}}},
		{"range covering one of two chunks", []Range{{25, 20}}, Range{20, 30}, []Range{{20, 10}, {40, 10}}},
		{"range to EOF marks the short chunk", []Range{{90, 5}}, Range{85, 10}, []Range{{80, 10}}},
		{"range past EOF marks the short chunk", []Range{{90, 50}}, Range{90, 5}, nil},
		{"short chunk partly covered is not marked", []Range{{90, 4}}, Range{90, 5}, []Range{{90, 5}}},
		{"holes merged into runs", []Range{{0, 10}, {50, 10}, {90, 5}}, Range{0, 95}, []Range{{10, 40}, {60, 30}}},
		{"alternating", []Range{{0, 10}, {20, 10}, {40, 10}}, Range{0, 50}, []Range{{10, 10}, {30, 10}}},
		{"query inside a marked run", []Range{{0, 80}}, Range{5, 70}, nil},
		{"first byte", []Range{{10, 85}}, Range{0, 1}, []Range{{0, 10}}},
		{"last byte", []Range{{0, 90}}, Range{94, 1}, []Range{{90, 5}}},
		{"empty mark", []Range{{40, 0}}, Range{40, 10}, []Range{{40, 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustBitmap(t, size, chunk)
			if b.Len() != 10 {
				t.Fatalf("%d chunks", b.Len())
			}
			for _, r := range tt.marked {
				b.Mark(r)
			}
			if got := b.Has(tt.query); !equalRanges(got, tt.want) {
				t.Errorf("Has(%v) = %v; want %v", tt.query, got, tt.want)
			}
			// Round trip through the persisted form.
			c, err := BitmapFromBytes(size, chunk, b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Has(tt.query); !equalRanges(got, tt.want) || c.Count() != b.Count() {
				t.Errorf("after reload Has(%v) = %v; want %v", tt.query, got, tt.want)
			}
		})
	}
}

func TestBitmapEdges(t *testing.T) {
	b := mustBitmap(t, 0, 10)
	if !b.Complete() || b.Has(Range{0, 10}) != nil || len(b.Bytes()) != 0 {
		t.Fatal("an empty file is complete")
	}
	if _, err := NewBitmap(10, 0); err == nil {
		t.Fatal("chunk size 0 accepted")
	}
	// Exactly one chunk; exact multiple of the chunk size.
	b = mustBitmap(t, 64*10, 10)
	b.Mark(Range{0, 640})
	if !b.Complete() || b.Count() != 64 {
		t.Fatalf("count %d", b.Count())
	}
	b.Mark(Range{0, 640}) // idempotent
	if b.Count() != 64 {
		t.Fatalf("count after re-mark %d", b.Count())
	}
	if _, err := BitmapFromBytes(15, 10, []byte{0x04}); err == nil {
		t.Fatal("bit beyond the last chunk accepted")
	}
	if _, err := BitmapFromBytes(15, 10, []byte{0x03, 0}); err == nil {
		t.Fatal("too many bytes accepted")
	}
	b = mustBitmap(t, 1000, 10)
	b.MarkChunks(0, 3)
	if got := len(b.Bytes()); got != 1 {
		t.Fatalf("trailing zeros not trimmed: %d bytes", got)
	}
}

// Against a model: one bool per chunk.
func TestBitmapModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200 {
		chunk := int64(1 + rng.IntN(16))
		size := int64(rng.IntN(300 * 16))
		b := mustBitmap(t, size, chunk)
		n := int((size + chunk - 1) / chunk)
		model := make([]bool, n)
		for range 20 {
			off := int64(rng.IntN(int(size)+20)) - 10
			r := Range{off, int64(rng.IntN(int(size)/2 + 2))}
			if rng.IntN(2) == 0 {
				b.Mark(r)
				for i := range model {
					lo, hi := int64(i)*chunk, min(int64(i+1)*chunk, size)
					if r.Len > 0 && r.Off <= lo && (r.End() >= hi || r.End() >= size) {
						model[i] = true
					}
				}
				continue
			}
			var want []Range
			lo, hi := max(r.Off, 0), min(r.End(), size)
			for i := range model {
				clo, chi := int64(i)*chunk, min(int64(i+1)*chunk, size)
				if r.Len <= 0 || lo >= hi || chi <= lo || clo >= hi || model[i] {
					continue
				}
				if k := len(want); k > 0 && want[k-1].End() == clo {
					want[k-1].Len += chi - clo
				} else {
					want = append(want, Range{clo, chi - clo})
				}
			}
			if got := b.Has(r); !equalRanges(got, want) {
				t.Fatalf("iter %d size %d chunk %d: Has(%v) = %v; want %v", iter, size, chunk, r, got, want)
			}
		}
		complete := true
		for _, m := range model {
			complete = complete && m
		}
		if b.Complete() != complete {
			t.Fatalf("iter %d: Complete %v; model %v", iter, b.Complete(), complete)
		}
	}
}
