package syncplan

import (
	"testing"
	"time"
)

// TestLocalMicros checks the emulation of CPython's
// datetime.fromtimestamp(os.stat(p).st_mtime) against values computed with
// CPython 3.11: datetime.fromtimestamp(sec + nsec*1e-9, timezone.utc).
func TestLocalMicros(t *testing.T) {
	cases := []struct {
		sec, nsec int64
		want      int64
	}{
		{1700000000, 0, 1700000000000000},
		{1700000000, 1, 1700000000000000},
		{1700000000, 499, 1700000000000000},
		{1700000000, 500, 1700000000000000},
		{1700000000, 501, 1700000000000000}, // float error: 501ns is below 500ns after the add
		{1700000000, 999, 1700000000000001},
		{1700000000, 1000, 1700000000000001},
		{1700000000, 1499, 1700000000000001},
		{1700000000, 1500, 1700000000000001},
		{1700000000, 2500, 1700000000000002},
		{1700000000, 999999500, 1700000001000000},
		{1700000000, 999999900, 1700000001000000},
		{1700000000, 999999999, 1700000001000000},
		{0, 500, 1},
		{0, 1500, 2},
		{0, 2500, 2}, // half to even
		{1, 999999999, 2000000},
		{-1, 500, -1000000},
		{-2, 999999999, -1000000},
		{4102444800, 123456789, 4102444800123457},
		{1390851128, 161973069, 1390851128161973},
		{1695753998, 698935572, 1695753998698936},
		{207388624, 77777868, 207388624077778},
		{3527346212, 575398922, 3527346212575399},
		{404285457, 392655486, 404285457392655},
		{2503055453, 62275869, 2503055453062276},
		{3907149204, 544854973, 3907149204544855},
		{922121676, 40260662, 922121676040261},
		{369140570, 465623510, 369140570465623},
		{1796035739, 75006691, 1796035739075007},
		{1033639716, 97402358, 1033639716097402},
		{2366729934, 455824009, 2366729934455824},
	}
	for _, c := range cases {
		if got := localMicros(time.Unix(c.sec, c.nsec)); got != c.want {
			t.Errorf("localMicros(%d.%09d) = %d, want %d (CPython)", c.sec, c.nsec, got, c.want)
		}
	}
}

func TestShouldCopy(t *testing.T) {
	// T is an S3 LastModified: whole seconds, as AWS lists them.
	T := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	ent := func(size int64, mt time.Time) Entry { return Entry{Rel: "f", Size: size, ModTime: mt} }
	ns, us, s := time.Nanosecond, time.Microsecond, time.Second
	cases := []struct {
		name     string
		dir      Direction
		mode     CompareMode
		src, dst Entry
		want     bool
	}{
		// Sizes differ: always copied, whatever the times and the mode.
		{"upload size differs, dst newer", Upload, CompareDefault, ent(1, T), ent(2, T.Add(s)), true},
		{"download size differs, same time", Download, CompareDefault, ent(1, T), ent(2, T), true},
		{"copy size differs", Copy, CompareDefault, ent(1, T), ent(2, T), true},
		{"size-only size differs", Upload, CompareSizeOnly, ent(0, T), ent(1, T), true},
		{"exact download size differs", Download, CompareExactTimestamps, ent(3, T), ent(4, T), true},

		// Upload: copy when the local file (src) is newer than the object.
		{"upload equal", Upload, CompareDefault, ent(5, T), ent(5, T), false},
		{"upload src +1ns (same µs for aws)", Upload, CompareDefault, ent(5, T.Add(ns)), ent(5, T), false},
		{"upload src +400ns rounds down", Upload, CompareDefault, ent(5, T.Add(400*ns)), ent(5, T), false},
		{"upload src +900ns rounds up", Upload, CompareDefault, ent(5, T.Add(900*ns)), ent(5, T), true},
		{"upload src +1µs", Upload, CompareDefault, ent(5, T.Add(us)), ent(5, T), true},
		{"upload src +1s", Upload, CompareDefault, ent(5, T.Add(s)), ent(5, T), true},
		{"upload src +0.5s", Upload, CompareDefault, ent(5, T.Add(s/2)), ent(5, T), true},
		{"upload src -1ns", Upload, CompareDefault, ent(5, T.Add(-ns)), ent(5, T), false},
		{"upload src -1s", Upload, CompareDefault, ent(5, T.Add(-s)), ent(5, T), false},
		{"upload src 0.9999999s before next second", Upload, CompareDefault, ent(5, T.Add(999999900*ns)), ent(5, T.Add(s)), false},
		{"upload exact-timestamps is the default rule", Upload, CompareExactTimestamps, ent(5, T.Add(-s)), ent(5, T), false},
		{"upload exact-timestamps newer src", Upload, CompareExactTimestamps, ent(5, T.Add(s)), ent(5, T), true},
		{"upload size-only newer src", Upload, CompareSizeOnly, ent(5, T.Add(s)), ent(5, T), false},

		// Copy (S3→S3): same rule as upload, both sides S3 times.
		{"copy equal", Copy, CompareDefault, ent(5, T), ent(5, T), false},
		{"copy src +1ms", Copy, CompareDefault, ent(5, T.Add(time.Millisecond)), ent(5, T), true},
		{"copy src +1s", Copy, CompareDefault, ent(5, T.Add(s)), ent(5, T), true},
		{"copy src -1s", Copy, CompareDefault, ent(5, T.Add(-s)), ent(5, T), false},
		{"copy exact-timestamps older src", Copy, CompareExactTimestamps, ent(5, T.Add(-s)), ent(5, T), false},
		{"copy size-only", Copy, CompareSizeOnly, ent(5, T.Add(s)), ent(5, T), false},

		// Download: copy when the local file (dst) is newer than the object.
		{"download equal", Download, CompareDefault, ent(5, T), ent(5, T), false},
		{"download object newer by 1s: not copied (aws)", Download, CompareDefault, ent(5, T.Add(s)), ent(5, T), false},
		{"download object newer by 1h: not copied (aws)", Download, CompareDefault, ent(5, T.Add(time.Hour)), ent(5, T), false},
		{"download local newer by 1s", Download, CompareDefault, ent(5, T), ent(5, T.Add(s)), true},
		{"download local newer by 1ns (same µs)", Download, CompareDefault, ent(5, T), ent(5, T.Add(ns)), false},
		{"download local newer by 400ns", Download, CompareDefault, ent(5, T), ent(5, T.Add(400*ns)), false},
		{"download local newer by 900ns", Download, CompareDefault, ent(5, T), ent(5, T.Add(900*ns)), true},
		{"download local newer by 1µs", Download, CompareDefault, ent(5, T), ent(5, T.Add(us)), true},
		{"download local older by 1ns", Download, CompareDefault, ent(5, T), ent(5, T.Add(-ns)), false},
		// MinIO lists milliseconds; aws sets a downloaded file's mtime to
		// the whole second, so the local file is older: not copied again.
		{"download after aws download from ms object", Download, CompareDefault, ent(5, T.Add(345*time.Millisecond)), ent(5, T), false},

		// Download --exact-timestamps: copy unless equal.
		{"exact equal", Download, CompareExactTimestamps, ent(5, T), ent(5, T), false},
		{"exact local +1ns (same µs)", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(ns)), false},
		{"exact local -1ns (same µs)", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(-ns)), false},
		{"exact local +1µs", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(us)), true},
		{"exact local -1µs", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(-us)), true},
		{"exact local +1s", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(s)), true},
		{"exact local -1s (object newer)", Download, CompareExactTimestamps, ent(5, T), ent(5, T.Add(-s)), true},
		{"exact ms object vs whole-second local", Download, CompareExactTimestamps, ent(5, T.Add(345*time.Millisecond)), ent(5, T), true},
		{"exact local 0.9999999s equals next second", Download, CompareExactTimestamps, ent(5, T.Add(s)), ent(5, T.Add(999999900*ns)), false},

		// --size-only: never by time.
		{"size-only download local newer", Download, CompareSizeOnly, ent(5, T), ent(5, T.Add(time.Hour)), false},
		{"size-only download object newer", Download, CompareSizeOnly, ent(5, T.Add(time.Hour)), ent(5, T), false},

		// Time zones do not matter, only instants.
		{"upload same instant other zone", Upload, CompareDefault, ent(5, T.In(time.FixedZone("X", 3600))), ent(5, T), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ShouldCopy(c.src, c.dst, c.dir, c.mode); got != c.want {
				t.Errorf("ShouldCopy(src %v size %d, dst %v size %d, dir %d, mode %d) = %v, want %v",
					c.src.ModTime, c.src.Size, c.dst.ModTime, c.dst.Size, c.dir, c.mode, got, c.want)
			}
		})
	}
}
