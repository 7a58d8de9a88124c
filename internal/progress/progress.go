// Package progress shows how a long transfer goes: a live bar on a terminal
// (bytes, files, rate, ETA), a plain line every few seconds when output is not
// a terminal, and always a final summary.
package progress

import (
	"io"
	"time"
)

// Mode selects how progress is shown.
type Mode int

const (
	Auto  Mode = iota // Bar on a terminal, Plain otherwise
	Bar               // live bar (mpb)
	Plain             // a plain line every Interval
	None              // no progress, only Println lines and nothing else
)

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
	Close() Summary
}

// New returns a Reporter writing to w.
func New(w io.Writer, opts Options) Reporter {
	panic("todo")
}

// FormatSummary renders a summary line:
// "Completed 12 files, 1.2 GiB in 3.4s (352.1 MB/s)".
func FormatSummary(s Summary) string {
	panic("todo")
}
