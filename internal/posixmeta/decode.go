package posixmeta

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Status says what Decode made of one header.
type Status uint8

const (
	// Missing: the header is absent; the default was used.
	Missing Status = iota
	// Valid: the header was present and its value is in Attrs.
	Valid
	// Invalid: the header was present but refused (see Decoded.Problems);
	// the default was used.
	Invalid
)

func (s Status) String() string {
	switch s {
	case Missing:
		return "missing"
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// HeaderError is one refused header.
type HeaderError struct {
	Code   string // CodeInvalid or CodeTypeMismatch
	Key    string // user-metadata key, e.g. "file-permissions"
	Value  string
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%s: x-amz-meta-%s %q: %s", e.Code, e.Key, e.Value, e.Reason)
}

// Decoded is what Decode found in an object's metadata.
type Decoded struct {
	// Attrs holds the decoded value of every Valid header and the default of
	// every other one (see the package comment).
	Attrs Attrs

	Mode, UID, GID, Mtime, Atime Status

	// Problems lists one error per Invalid header, in key order.
	Problems []*HeaderError
}

// Err joins Problems into one error, or returns nil.
func (d Decoded) Err() error {
	errs := make([]error, len(d.Problems))
	for i, p := range d.Problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// HasPOSIX reports whether any POSIX header was valid.
func (d Decoded) HasPOSIX() bool {
	for _, s := range [...]Status{d.Mode, d.UID, d.GID, d.Mtime, d.Atime} {
		if s == Valid {
			return true
		}
	}
	return false
}

// Merge returns the attributes a file that already exists with current
// attributes gets when its object changed: each Valid header wins, every
// other attribute keeps its current value (docs/semantics.md §2: a changed
// object without POSIX metadata keeps the file's current metadata) — except
// mtime, which without a valid header becomes the object's LastModified,
// because the content did change and tools that compare mtimes (make, rsync,
// aws s3 sync) must see that. The file type always comes from the object
// (Attrs), never from current.
func (d Decoded) Merge(current Attrs) Attrs {
	a := d.Attrs
	if d.Mode != Valid && current.Type() == a.Type() {
		a.Mode = current.Mode
	}
	if d.UID != Valid {
		a.UID = current.UID
	}
	if d.GID != Valid {
		a.GID = current.GID
	}
	if d.Atime != Valid && !current.Atime.IsZero() {
		a.Atime = current.Atime
	}
	return a
}

// Decode reads POSIX attributes from an object's user metadata. dir says
// whether the object is a directory object (its key ends in "/");
// lastModified is the object's LastModified, the default mtime. Keys are
// matched without regard to case; surrounding spaces and tabs of a value are
// ignored, as HTTP ignores them. Decode never panics and never fails as a
// whole: see Decoded.
func Decode(meta map[string]string, dir bool, lastModified time.Time) Decoded {
	d := Decoded{Attrs: Defaults(dir, lastModified)}
	vals, dup := lookup(meta)
	problem := func(code, key, reason string) {
		d.Problems = append(d.Problems, &HeaderError{Code: code, Key: key, Value: vals[key], Reason: reason})
	}
	// field runs parse on the value of key and records the outcome.
	field := func(key string, st *Status, parse func(v string) (code, reason string)) {
		v, ok := vals[key]
		switch {
		case !ok:
			*st = Missing
		case dup[key]:
			*st = Invalid
			problem(CodeInvalid, key, "given more than once with different values")
		default:
			if code, reason := parse(strings.Trim(v, " \t")); reason != "" {
				*st = Invalid
				problem(code, key, reason)
			} else {
				*st = Valid
			}
		}
	}

	field(KeyPermissions, &d.Mode, func(v string) (string, string) {
		mode, reason := parseMode(v)
		if reason != "" {
			return CodeInvalid, reason
		}
		switch t := mode & TypeMask; {
		case t == 0:
			// Permissions only: the key says what the object is.
			mode |= d.Attrs.Type()
		case dir && t != TypeDir:
			return CodeTypeMismatch, "mode is not a directory's but the key ends in \"/\" (a directory object)"
		case !dir && t == TypeDir:
			return CodeTypeMismatch, "mode is a directory's but the key does not end in \"/\""
		}
		d.Attrs.Mode = mode
		return "", ""
	})
	field(KeyOwner, &d.UID, func(v string) (string, string) {
		id, reason := parseID(v)
		if reason == "" {
			d.Attrs.UID = id
		}
		return CodeInvalid, reason
	})
	field(KeyGroup, &d.GID, func(v string) (string, string) {
		id, reason := parseID(v)
		if reason == "" {
			d.Attrs.GID = id
		}
		return CodeInvalid, reason
	})
	field(KeyMtime, &d.Mtime, func(v string) (string, string) {
		t, reason := parseTime(v)
		if reason == "" {
			d.Attrs.Mtime = t
		}
		return CodeInvalid, reason
	})
	// The default atime is the mtime just decoded (or LastModified).
	d.Attrs.Atime = d.Attrs.Mtime
	field(KeyAtime, &d.Atime, func(v string) (string, string) {
		t, reason := parseTime(v)
		if reason == "" {
			d.Attrs.Atime = t
		}
		return CodeInvalid, reason
	})
	return d
}

// lookup finds ferry's keys in meta regardless of case. dup marks a key
// present under several spellings with different values.
func lookup(meta map[string]string) (vals map[string]string, dup map[string]bool) {
	vals = make(map[string]string, len(ownKeys))
	for k, v := range meta {
		for _, own := range ownKeys {
			if !strings.EqualFold(k, own) {
				continue
			}
			if old, seen := vals[own]; seen && old != v {
				if dup == nil {
					dup = make(map[string]bool)
				}
				dup[own] = true
				// Keep the smaller value so the report does not depend on
				// map order.
				if v < old {
					vals[own] = v
				}
			} else {
				vals[own] = v
			}
		}
	}
	return vals, dup
}

func isDigits(s string, max byte) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > max {
			return false
		}
	}
	return true
}

// parseMode parses an octal st_mode. Setuid and setgid are dropped.
func parseMode(v string) (uint32, string) {
	if !isDigits(v, '7') {
		return 0, "not an octal number"
	}
	if len(v) > 12 {
		return 0, "too many digits for a mode"
	}
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || uint32(m) > maxMode {
		return 0, "has bits outside st_mode"
	}
	mode := uint32(m)
	switch mode & TypeMask {
	case 0, TypeRegular, TypeDir, TypeSymlink:
	default:
		return 0, fmt.Sprintf("file type %#o: only regular files, directories and symlinks are imported", mode&TypeMask)
	}
	return mode &^ setIDBits, ""
}

// parseID parses a decimal uid or gid.
func parseID(v string) (uint32, string) {
	if !isDigits(v, '9') {
		return 0, "not a decimal number"
	}
	id, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, "out of range for a uid/gid"
	}
	if id == invalidID {
		return 0, "4294967295 is not a valid id"
	}
	return uint32(id), ""
}

// parseTime parses "<n>ns" (nanoseconds) or "<n>" (milliseconds) since the
// epoch; n may be negative. Times that nanoseconds in an int64 cannot hold
// are refused, so that every decoded time can be encoded again.
func parseTime(v string) (time.Time, string) {
	num, ns := strings.CutSuffix(v, "ns")
	digits := strings.TrimPrefix(num, "-")
	if !isDigits(digits, '9') {
		return time.Time{}, `not a number of milliseconds, or of nanoseconds followed by "ns"`
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return time.Time{}, "out of range"
	}
	if ns {
		return time.Unix(0, n), ""
	}
	const perMilli = int64(time.Millisecond)
	if n > math.MaxInt64/perMilli || n < math.MinInt64/perMilli {
		return time.Time{}, "milliseconds out of range (years 1678-2262)"
	}
	return time.Unix(0, n*perMilli), ""
}
