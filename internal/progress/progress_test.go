package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the reporter's goroutines and the
// test reading it at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// closeWithin calls r.Close and fails the test if it does not return.
func closeWithin(t *testing.T, r Reporter) Summary {
	t.Helper()
	ch := make(chan Summary, 1)
	go func() { ch <- r.Close() }()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
		return Summary{}
	}
}

func TestHumanSize(t *testing.T) {
	// Expected values are the output of awscli's human_readable_size.
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 Bytes"},
		{1, "1 Byte"},
		{2, "2 Bytes"},
		{12, "12 Bytes"},
		{1023, "1023 Bytes"},
		{1024, "1.0 KiB"},
		{1025, "1.0 KiB"},
		{1126, "1.1 KiB"},
		{1280, "1.2 KiB"}, // 1.25 rounds half to even
		{1331, "1.3 KiB"},
		{1536, "1.5 KiB"},
		{1792, "1.8 KiB"},
		{10239, "10.0 KiB"},
		{1048063, "1023.5 KiB"},
		{1048064, "1.0 MiB"}, // 1023.5 KiB rounds to 1024: next unit
		{1048575, "1.0 MiB"},
		{1048576, "1.0 MiB"},
		{1048577, "1.0 MiB"},
		{3565158, "3.4 MiB"},
		{1073741823, "1.0 GiB"},
		{1073741824, "1.0 GiB"},
		{1288490188, "1.2 GiB"},
		{1 << 40, "1.0 TiB"},
		{1<<50 - 1, "1.0 PiB"},
		{1 << 50, "1.0 PiB"},
		{1 << 60, "1.0 EiB"},
		{1<<63 - 1, "8.0 EiB"},
		{-5, "-5 Bytes"},
	}
	for _, tt := range tests {
		if got := HumanSize(tt.n); got != tt.want {
			t.Errorf("HumanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestFormatSummary(t *testing.T) {
	tests := []struct {
		s    Summary
		want string
	}{
		{Summary{12, 1288490188, 3400 * time.Millisecond}, "Completed 12 files, 1.2 GiB in 3.4s (379.0 MB/s)"},
		{Summary{12, 1288490188, 3449 * time.Millisecond}, "Completed 12 files, 1.2 GiB in 3.4s (373.6 MB/s)"},
		{Summary{1, 1, 2 * time.Second}, "Completed 1 file, 1 Byte in 2s (0.0 MB/s)"},
		{Summary{5, 5 << 30, 62300 * time.Millisecond}, "Completed 5 files, 5.0 GiB in 1m2.3s (86.2 MB/s)"},
		{Summary{2, 100_000_000, 42 * time.Millisecond}, "Completed 2 files, 95.4 MiB in 42ms (2381.0 MB/s)"},
		{Summary{0, 0, 0}, "Completed 0 files, 0 Bytes in 0s"},
		{Summary{3, 1_000_000_000, 0}, "Completed 3 files, 953.7 MiB in 0s"},
		{Summary{0, 0, 500 * time.Microsecond}, "Completed 0 files, 0 Bytes in 500µs (0.0 MB/s)"},
	}
	for _, tt := range tests {
		if got := FormatSummary(tt.s); got != tt.want {
			t.Errorf("FormatSummary(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestResolveMode(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		w    io.Writer
		m    Mode
		want Mode
	}{
		{&bytes.Buffer{}, Auto, Plain},
		{f, Auto, Plain}, // a file, not a terminal
		{&bytes.Buffer{}, Bar, Bar},
		{&bytes.Buffer{}, None, None},
		{f, Plain, Plain},
	}
	for _, tt := range tests {
		if got := ResolveMode(tt.w, tt.m); got != tt.want {
			t.Errorf("ResolveMode(%T, %v) = %v, want %v", tt.w, tt.m, got, tt.want)
		}
	}
}

func TestPlainLine(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Mode: Plain, Interval: 5 * time.Millisecond, Label: "sync"})
	r.AddTotal(400, 3650722201) // 3.4 GiB
	r.Add(1288490188)           // 1.2 GiB, 35%
	for range 120 {
		r.FileDone()
	}
	want := regexp.MustCompile(`(?m)^sync: 1\.2 GiB / 3\.4 GiB \(35%\), 120/400 files, [0-9]+\.[0-9] MB/s, ETA (-|[0-9hms.]+)$`)
	waitFor(t, "a progress line", func() bool { return want.MatchString(out.String()) })
	s := closeWithin(t, r)
	if s.Files != 120 || s.Bytes != 1288490188 {
		t.Errorf("Close = %+v, want 120 files, 1288490188 bytes", s)
	}
	if s.Elapsed <= 0 {
		t.Errorf("Elapsed = %v, want > 0", s.Elapsed)
	}
}

// TestAutoIsPlainOffTerminal: Auto on a buffer behaves as Plain.
func TestAutoIsPlainOffTerminal(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Interval: time.Millisecond})
	r.AddTotal(1, 10)
	waitFor(t, "a progress line", func() bool {
		return strings.Contains(out.String(), "0 Bytes / 10 Bytes (0%), 0/1 files, 0.0 MB/s, ETA -\n")
	})
	closeWithin(t, r)
}

func TestPlainNoLineUntilTracked(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Mode: Plain, Interval: time.Millisecond, Label: "sync"})
	pr := r.(*plainReporter)
	waitFor(t, "ticks", func() bool { return pr.ticks.Load() >= 5 })
	if got := out.String(); got != "" {
		t.Fatalf("output before anything was tracked: %q", got)
	}
	r.Println("hello")
	r.AddTotal(1, 0)
	waitFor(t, "a progress line", func() bool { return strings.Contains(out.String(), "sync: ") })
	if got := out.String(); !strings.HasPrefix(got, "hello\nsync: 0 Bytes / 0 Bytes (0%), 0/1 files") {
		t.Errorf("output = %q", got)
	}
	closeWithin(t, r)
}

// TestNoneMode runs a None and a Plain reporter side by side: once the
// Plain one has written three progress lines, the None one must still have
// written only its Println lines.
func TestNoneMode(t *testing.T) {
	var none, plain syncBuffer
	rn := New(&none, Options{Mode: None, Interval: time.Millisecond, Label: "sync"})
	rp := New(&plain, Options{Mode: Plain, Interval: time.Millisecond, Label: "sync"})
	for _, r := range []Reporter{rn, rp} {
		r.AddTotal(2, 2048)
		r.Println("upload: a to s3://b/a")
		r.Add(1024)
		r.FileDone()
	}
	waitFor(t, "plain lines", func() bool { return strings.Count(plain.String(), "sync: ") >= 3 })
	rn.Println("upload: c to s3://b/c")
	sn := closeWithin(t, rn)
	closeWithin(t, rp)
	if got, want := none.String(), "upload: a to s3://b/a\nupload: c to s3://b/c\n"; got != want {
		t.Errorf("None output = %q, want %q", got, want)
	}
	if sn.Files != 1 || sn.Bytes != 1024 {
		t.Errorf("None Close = %+v, want 1 file, 1024 bytes", sn)
	}
}

var lineRE = regexp.MustCompile(`^upload: g([0-9]+) n([0-9]+) to s3://bucket/prefix/with/some/length$`)

// TestPrintlnOrdering prints from many goroutines, enough to pass the Bar
// queue bound, and checks that every line arrives whole, once, and in each
// goroutine's order.
func TestPrintlnOrdering(t *testing.T) {
	const goroutines, perG = 8, 2000
	for _, mode := range []Mode{Plain, None, Bar} {
		t.Run(mode.String(), func(t *testing.T) {
			var out syncBuffer
			r := New(&out, Options{Mode: mode, Interval: time.Millisecond, Label: "sync"})
			r.AddTotal(goroutines*perG, 0)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for n := range perG {
						r.Println(fmt.Sprintf("upload: g%d n%d to s3://bucket/prefix/with/some/length", g, n))
						r.FileDone()
					}
				})
			}
			wg.Wait()
			r.Println("last")
			closeWithin(t, r)

			next := make([]int, goroutines)
			lines := strings.Split(out.String(), "\n")
			last := -1
			for i, l := range lines {
				if strings.HasPrefix(l, "upload") {
					m := lineRE.FindStringSubmatch(l)
					if m == nil {
						t.Fatalf("torn line %q", l)
					}
					var g, n int
					fmt.Sscan(m[1], &g)
					fmt.Sscan(m[2], &n)
					if n != next[g] {
						t.Fatalf("goroutine %d: line %d, want %d", g, n, next[g])
					}
					next[g]++
				}
				if l == "last" {
					last = i
				}
			}
			for g, n := range next {
				if n != perG {
					t.Errorf("goroutine %d: %d lines, want %d", g, n, perG)
				}
			}
			if last < 0 {
				t.Fatal(`"last" line missing`)
			}
			for _, l := range lines[last+1:] {
				if strings.HasPrefix(l, "upload") {
					t.Fatalf("line %q after the last Println", l)
				}
			}
		})
	}
}

func TestConcurrentAdd(t *testing.T) {
	const goroutines, perG, chunk = 32, 1000, 256 << 10
	for _, mode := range []Mode{Plain, None, Bar} {
		t.Run(mode.String(), func(t *testing.T) {
			r := New(io.Discard, Options{Mode: mode, Interval: time.Millisecond})
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range perG {
						r.AddTotal(1, chunk)
						r.Add(chunk / 2)
						r.Add(chunk - chunk/2)
						r.FileDone()
					}
				})
			}
			wg.Wait()
			s := closeWithin(t, r)
			if want := int64(goroutines * perG); s.Files != want {
				t.Errorf("Files = %d, want %d", s.Files, want)
			}
			if want := int64(goroutines * perG * chunk); s.Bytes != want {
				t.Errorf("Bytes = %d, want %d", s.Bytes, want)
			}
			if br, ok := r.(*barReporter); ok {
				snap := br.snap.Load()
				if snap.totalFiles != goroutines*perG || snap.totalBytes != goroutines*perG*chunk {
					t.Errorf("final totals = %d files, %d bytes", snap.totalFiles, snap.totalBytes)
				}
			}
		})
	}
}

// TestBarForced draws the bar on a writer that is not a terminal.
func TestBarForced(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Mode: Bar, Label: "sync"})
	if _, ok := r.(*barReporter); !ok {
		t.Fatalf("New(Mode: Bar) = %T, want *barReporter", r)
	}
	r.Println("upload: a to s3://b/a")
	r.AddTotal(2, 3<<20)
	r.Add(1 << 20)
	r.FileDone()
	waitFor(t, "a bar row", func() bool {
		return strings.Contains(out.String(), "1.0 MiB / 3.0 MiB  1/2 files")
	})
	r.AddTotal(1, 1<<20) // the total grows after the bar exists
	r.Add(3 << 20)
	r.FileDone()
	r.FileDone()
	r.Println("upload: c to s3://b/c")
	s := closeWithin(t, r)
	if s.Files != 3 || s.Bytes != 4<<20 {
		t.Errorf("Close = %+v, want 3 files, 4 MiB", s)
	}
	got := out.String()
	if !strings.HasPrefix(got, "upload: a to s3://b/a\n") {
		t.Errorf("output does not start with the first line: %q", got)
	}
	if !strings.Contains(got, "upload: c to s3://b/c\n") {
		t.Errorf("second line missing: %q", got)
	}
	if !strings.Contains(got, "4.0 MiB / 4.0 MiB  3/3 files") {
		t.Errorf("final bar row missing: %q", got)
	}
	// Close is idempotent, and lines after it go straight to w.
	if s2 := r.Close(); s2 != s {
		t.Errorf("second Close = %+v, want %+v", s2, s)
	}
	r.Println("after")
	if got := out.String(); !strings.HasSuffix(got, "\nafter\n") {
		t.Errorf("output does not end with the line printed after Close: %q", got)
	}
}

// TestBarUnfinished closes a bar whose work is not all done.
func TestBarUnfinished(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Mode: Bar})
	r.AddTotal(10, 10<<20)
	r.Add(1 << 20)
	s := closeWithin(t, r)
	if s.Bytes != 1<<20 || s.Files != 0 {
		t.Errorf("Close = %+v", s)
	}
	if !strings.Contains(out.String(), "1.0 MiB / 10.0 MiB  0/10 files") {
		t.Errorf("bar row missing: %q", out.String())
	}
}

// TestBarNothingTracked: with no work there is no bar, only the lines.
func TestBarNothingTracked(t *testing.T) {
	var out syncBuffer
	r := New(&out, Options{Mode: Bar})
	r.Println("only line")
	closeWithin(t, r)
	if got := out.String(); got != "only line\n" {
		t.Errorf("output = %q, want only the line", got)
	}
}

func TestRateMeter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newRateMeter(t0)
	steps := []struct {
		at   time.Duration
		done int64
		want float64
	}{
		{1 * time.Second, 0, 0},                  // planning, nothing yet
		{2 * time.Second, 100e6, 100e6},          // first bytes seed the average
		{3 * time.Second, 200e6, 100e6},          // steady
		{6 * time.Second, 200e6, 100e6 * 0.3679}, // stalled for one tau: 1/e left
	}
	for _, s := range steps {
		got := m.update(s.done, t0.Add(s.at))
		if diff := got - s.want; diff > 1e4 || diff < -1e4 {
			t.Errorf("at %v: rate = %.0f, want %.0f", s.at, got, s.want)
		}
	}
	if got := m.update(200e6, t0.Add(6*time.Second)); got != m.rate {
		t.Errorf("zero dt changed the rate to %v", got)
	}
}

func TestSnapshot(t *testing.T) {
	tests := []struct {
		s    snapshot
		line string
	}{
		{snapshot{doneBytes: 1288490188, totalBytes: 3650722201, doneFiles: 120, totalFiles: 400, rate: 350.2e6},
			"sync: 1.2 GiB / 3.4 GiB (35%), 120/400 files, 350.2 MB/s, ETA 7s"},
		{snapshot{doneBytes: 10, totalBytes: 10, doneFiles: 1, totalFiles: 1},
			"sync: 10 Bytes / 10 Bytes (100%), 1/1 files, 0.0 MB/s, ETA 0s"},
		{snapshot{doneBytes: 20, totalBytes: 10, doneFiles: 1, totalFiles: 1}, // more than known: capped
			"sync: 20 Bytes / 10 Bytes (100%), 1/1 files, 0.0 MB/s, ETA 0s"},
		{snapshot{doneFiles: 1, totalFiles: 4}, // empty files only: percent of files
			"sync: 0 Bytes / 0 Bytes (25%), 1/4 files, 0.0 MB/s, ETA 0s"},
		{snapshot{doneBytes: 5}, // nothing planned yet
			"sync: 5 Bytes / 0 Bytes, 0/0 files, 0.0 MB/s, ETA 0s"},
		{snapshot{totalBytes: 1 << 40, rate: 1e6},
			"sync: 0 Bytes / 1.0 TiB (0%), 0/0 files, 1.0 MB/s, ETA 305h25m12s"},
		{snapshot{totalBytes: 1 << 62, rate: 1e-9}, // ETA past time.Duration
			"sync: 0 Bytes / 4.0 EiB (0%), 0/0 files, 0.0 MB/s, ETA -"},
	}
	for _, tt := range tests {
		if got := tt.s.plainLine("sync"); got != tt.line {
			t.Errorf("plainLine(%+v) = %q, want %q", tt.s, got, tt.line)
		}
	}
	if got := (snapshot{}).plainLine(""); !strings.HasPrefix(got, "0 Bytes / 0 Bytes,") {
		t.Errorf("no label: %q", got)
	}
}
