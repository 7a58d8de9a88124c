// Package syncplan decides what `ferry s3 sync` does, the way `aws s3 sync`
// does: it walks the source and destination in sorted order of the relative
// path, merges the two streams, applies --exclude/--include filters and the
// compare rules, and emits one Action per file to copy or delete. Nothing is
// held in memory but the current directory of each walk, so a sync over
// millions of files runs in bounded memory, and planning itself sends no
// request beyond the listings.
package syncplan

import "time"

// Entry is one file on either side.
type Entry struct {
	// Rel is the path relative to the side's root, "/"-separated; entries
	// of a side come in strictly increasing byte order of Rel (S3 key order).
	Rel     string
	Size    int64
	ModTime time.Time // local mtime, or the object's LastModified
	// Local: the file's path on disk. S3: the object's full key.
	Path string
	ETag string // S3 only
	// Skipped marks a local entry the walk warned about and could not read
	// (unreadable, special file, loop); Rel ends in "/" for a directory.
	// Plan never copies it and never deletes what the destination holds
	// under that name: ferry does better than aws here, which deletes the
	// remote copies of an unreadable directory with --delete.
	Skipped bool
}

// Iterator yields entries in increasing Rel order. Next returns ok=false at
// the end; err reports a failure that ends the walk.
type Iterator interface {
	Next() (e Entry, ok bool, err error)
}

// Warning is a file skipped while walking (special file, unreadable, broken
// symlink); aws prints these as "warning: Skipping file …" and exits with 2.
type Warning struct {
	Path    string
	Message string
}

// LocalOptions controls WalkLocal.
type LocalOptions struct {
	FollowSymlinks bool
	// Warn receives files that are skipped; may be nil.
	Warn func(Warning)
}

// Filter is one --exclude or --include in command-line order.
type Filter struct {
	Include bool
	Pattern string
}

// Filters applies aws's rules: in order, the last matching filter wins,
// everything is included by default; patterns are fnmatch-style where "*"
// also matches "/", matched against the path relative to the side's root.
type Filters []Filter

// CompareMode selects when a file present on both sides is copied.
type CompareMode int

const (
	// CompareDefault copies when sizes differ; for uploads and S3→S3 also
	// when the source is newer than the destination; for downloads also when
	// the local file (destination) is newer than the object (aws's rule: a
	// same-size object newer than the local file is not downloaded).
	CompareDefault         CompareMode = iota
	CompareSizeOnly                    // --size-only: sizes alone
	CompareExactTimestamps             // --exact-timestamps: downloads copy unless times are equal
)

// Direction of a sync, which changes the time rule.
type Direction int

const (
	Upload   Direction = iota // local → S3
	Download                  // S3 → local
	Copy                      // S3 → S3
)

// ActionKind is what to do with one file.
type ActionKind int

const (
	ActCopy   ActionKind = iota // copy Src to the destination (Dst set if it existed)
	ActDelete                   // delete Dst (only with Options.Delete)
)

// Action is one step of the plan.
type Action struct {
	Kind ActionKind
	Src  Entry // set for ActCopy
	Dst  Entry // set for ActDelete, and for ActCopy of an existing file
	// Exists is true when Dst is set.
	Exists bool
}

// Options configures Plan.
type Options struct {
	Direction Direction
	Compare   CompareMode
	Delete    bool
	Filters   Filters
}
