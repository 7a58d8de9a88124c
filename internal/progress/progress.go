// Package progress shows how a long transfer goes: a live bar on a terminal
// (bytes, files, rate, ETA), a plain line every few seconds when output is not
// a terminal, and always a final summary.
//
// The package owns the display only. Counting is lock-free: AddTotal, Add and
// FileDone are single atomic adds, safe on the per-chunk hot path of many
// goroutines. One sampler goroutine per Reporter reads the counters on a tick,
// keeps the moving-average rate, and draws; it is stopped by Close.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// Mode selects how progress is shown.
type Mode int

const (
	Auto  Mode = iota // Bar on a terminal, Plain otherwise
	Bar               // live bar (mpb)
	Plain             // a plain line every Interval
	None              // no progress, only Println lines and nothing else
)

// String names the mode as a flag value would.
func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Bar:
		return "bar"
	case Plain:
		return "plain"
	case None:
		return "none"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// DefaultInterval is the Plain mode interval when Options.Interval is zero.
const DefaultInterval = 5 * time.Second

// Options configures a Reporter.
type Options struct {
	Mode     Mode
	Interval time.Duration // Plain mode; default 5s
	// Label prefixes progress lines, e.g. "sync".
	Label string
}

// Summary is what a finished run did.
type Summary struct {
	Files   int64
	Bytes   int64
	Elapsed time.Duration
}

// Reporter tracks progress. All methods are safe for concurrent use.
type Reporter interface {
	// AddTotal adds discovered work (the total grows while planning streams).
	AddTotal(files int64, bytes int64)
	// Add counts transferred bytes.
	Add(bytes int64)
	// FileDone counts one finished file.
	FileDone()
	// Println prints a line (e.g. "upload: a to s3://b/a") above the bar
	// without tearing it.
	Println(line string)
	// Close stops the display and returns the summary; it does not print it.
	// Close is idempotent; Println after Close writes straight to w.
	Close() Summary
}

// New returns a Reporter writing to w.
//
// Auto resolves to Bar when w is an *os.File on a terminal and to Plain
// otherwise. Bar forced on a writer that is not a terminal still works: the
// bar is redrawn as plain rows on every refresh.
func New(w io.Writer, opts Options) Reporter {
	if w == nil {
		w = io.Discard
	}
	mode := ResolveMode(w, opts.Mode)
	if mode == Bar {
		return newBarReporter(w, opts)
	}
	return newPlainReporter(w, mode, opts)
}

// ResolveMode returns the mode New uses for w: Auto becomes Bar on a
// terminal and Plain otherwise; other modes are returned unchanged.
func ResolveMode(w io.Writer, m Mode) Mode {
	if m != Auto {
		return m
	}
	if IsTerminal(w) {
		return Bar
	}
	return Plain
}

// IsTerminal reports whether w is an *os.File connected to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
}

// FormatSummary renders a summary line:
// "Completed 12 files, 1.2 GiB in 3.4s (352.1 MB/s)".
//
// Bytes use IEC units (HumanSize); the rate is in decimal megabytes per
// second. With a zero (or negative) Elapsed there is no rate to give, and
// the parenthesis is left out: "Completed 0 files, 0 Bytes in 0s".
func FormatSummary(s Summary) string {
	files := "files"
	if s.Files == 1 {
		files = "file"
	}
	out := fmt.Sprintf("Completed %d %s, %s in %s", s.Files, files, HumanSize(s.Bytes), formatElapsed(s.Elapsed))
	if s.Elapsed > 0 {
		out += fmt.Sprintf(" (%s)", formatRate(float64(s.Bytes)/s.Elapsed.Seconds()))
	}
	return out
}

// formatElapsed rounds a duration for people: tenths of a second from one
// second up ("3.4s", "1m2.3s"), milliseconds below ("42ms").
func formatElapsed(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.String()
	}
}

// formatRate renders bytes per second as decimal megabytes per second.
func formatRate(bytesPerSec float64) string {
	return fmt.Sprintf("%.1f MB/s", bytesPerSec/1e6)
}
