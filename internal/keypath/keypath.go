// Package keypath owns the mapping between S3 object keys under a data
// repository association and relative POSIX paths below the association's
// directory, in both directions (docs/semantics.md §2 and §4).
//
// It enforces invariant 4 (docs/invariants.md): an S3 key never maps
// outside its association. A key is accepted only if every component of
// what follows the association's prefix is a name a POSIX file system can
// hold without interpretation: not empty, not "." or "..", at most 255 bytes, valid UTF-8,
// no NUL. Everything else is refused with the FSx error code
// S3ObjectPathNotPosixCompliant, never "cleaned" into some other path.
//
// Paths are always slash-separated and relative ("a/b/c"); the association's
// own directory is ".". The package is pure: it never touches a file system.
package keypath

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error codes, as FSx reports them in task failure reports and events.
const (
	// CodeNotPOSIXCompliant: the key cannot be a POSIX path (".", "..",
	// empty or over-long components, NUL, non-UTF-8, absolute).
	CodeNotPOSIXCompliant = "S3ObjectPathNotPosixCompliant"
	// CodePathSizeTooLong: the key a path would be exported to exceeds
	// S3's 1024-byte limit.
	CodePathSizeTooLong = "PathSizeTooLong"
	// CodeOutsideAssociation: the key does not start with the association's
	// prefix. This is a caller error (a listing or event for another
	// association), not an FSx code.
	CodeOutsideAssociation = "KeyOutsideAssociation"
	// CodeInvalidPrefix: the association prefix itself is malformed.
	CodeInvalidPrefix = "InvalidDataRepositoryPrefix"
)

// Limits.
const (
	// MaxNameLen is the longest path component, in bytes (NAME_MAX).
	MaxNameLen = 255
	// MaxKeyLen is the longest S3 object key, in bytes.
	MaxKeyLen = 1024
)

// Kind says what an object key stands for.
type Kind uint8

const (
	// File is an object whose key does not end in "/": a regular file, or a
	// symlink when its metadata says so (see package posixmeta).
	File Kind = iota + 1
	// Dir is a directory object: a key ending in "/".
	Dir
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "directory"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Error is a refused key or path. Code is one of the Code* constants; Key
// (or Path, for the reverse mapping) names what was refused and Reason says
// why, so the message can be reported as it is.
type Error struct {
	Code   string
	Key    string // the object key, when mapping key → path
	Path   string // the relative path, when mapping path → key
	Reason string
}

func (e *Error) Error() string {
	what := fmt.Sprintf("key %q", e.Key)
	if e.Key == "" && e.Path != "" {
		what = fmt.Sprintf("path %q", e.Path)
	}
	return fmt.Sprintf("%s: %s: %s", e.Code, what, e.Reason)
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, keypath.ErrNotPOSIXCompliant) works for any key.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Key == "" && t.Path == "" && t.Reason == ""
}

// Sentinels for errors.Is; they match any *Error with the same code.
var (
	ErrNotPOSIXCompliant  = &Error{Code: CodeNotPOSIXCompliant}
	ErrPathSizeTooLong    = &Error{Code: CodePathSizeTooLong}
	ErrOutsideAssociation = &Error{Code: CodeOutsideAssociation}
	ErrInvalidPrefix      = &Error{Code: CodeInvalidPrefix}
)

// CodeOf returns the code of the *Error in err's chain, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CheckPrefix validates an association's key prefix: "" (the whole bucket)
// or a key prefix ending in "/" whose components are themselves valid names
// (so that the prefix can also be written back as a directory object).
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	bad := func(reason string) error {
		return &Error{Code: CodeInvalidPrefix, Key: prefix, Reason: reason}
	}
	if !strings.HasSuffix(prefix, "/") {
		return bad(`an association prefix must end in "/" (DataRepositoryPath s3://bucket/prefix/)`)
	}
	if len(prefix) > MaxKeyLen {
		return bad(fmt.Sprintf("prefix is %d bytes; S3 keys are at most %d", len(prefix), MaxKeyLen))
	}
	for _, c := range strings.Split(prefix[:len(prefix)-1], "/") {
		if r := checkName(c); r != "" {
			return bad(r)
		}
	}
	return nil
}

// ToPath maps an object key listed or announced under an association whose
// key prefix is prefix ("" or ending in "/") to the relative path the object
// has below the association's directory, and says whether it is a file or a
// directory object.
//
// The key equal to prefix itself is the association's own directory object:
// it maps to ".", Dir. Every other key maps to a path without "." or ".."
// components and without empty components.
//
// Invariant 4: an S3 key never maps outside its association. It is
// enforced here and only here: this function returns a path only when
// every component of the key below the prefix is a plain name (checkName),
// so joining the result onto the association's directory can never climb
// out of it, be absolute, or alias another name. Refused keys get
// S3ObjectPathNotPosixCompliant and must be counted and reported by the
// caller, never repaired. TestToPathRefuses and FuzzToPath break this if the
// check is weakened.
func ToPath(prefix, key string) (string, Kind, error) {
	if err := CheckPrefix(prefix); err != nil {
		return "", 0, err
	}
	if !strings.HasPrefix(key, prefix) {
		return "", 0, &Error{Code: CodeOutsideAssociation, Key: key,
			Reason: fmt.Sprintf("key is not under the association prefix %q", prefix)}
	}
	refuse := func(reason string) (string, Kind, error) {
		return "", 0, &Error{Code: CodeNotPOSIXCompliant, Key: key, Reason: reason}
	}
	if len(key) > MaxKeyLen {
		// S3 cannot hold such a key; refuse rather than trust the lister.
		return refuse(fmt.Sprintf("key is %d bytes; S3 keys are at most %d", len(key), MaxKeyLen))
	}
	rest := key[len(prefix):]
	if rest == "" {
		if prefix == "" {
			return refuse("empty key")
		}
		return ".", Dir, nil
	}
	kind := File
	if strings.HasSuffix(rest, "/") {
		kind = Dir
		rest = rest[:len(rest)-1]
	}
	if rest == "" {
		// The key was prefix + "/": an empty component at the top, which is
		// what an absolute path looks like after the prefix.
		return refuse(`empty path component (key has "//" after the association prefix, or is absolute)`)
	}
	for c := range strings.SplitSeq(rest, "/") {
		if r := checkName(c); r != "" {
			return refuse(r)
		}
	}
	return rest, kind, nil
}

// ToKey maps a relative path below an association's directory to the object
// key it is exported to. rel is slash-separated and must be "." (only with
// Dir: the association's own directory object) or a path of plain names as
// ToPath returns them; a Dir gets a trailing "/". It is the inverse of
// ToPath: ToPath(prefix, k) returns (rel, kind) for every k = ToKey(prefix,
// rel, kind) that is not an error.
//
// Errors: S3ObjectPathNotPosixCompliant for a path that is not a plain
// relative path (including a local name that is not valid UTF-8, which S3
// cannot store), PathSizeTooLong when the key would exceed 1024 bytes.
func ToKey(prefix, rel string, kind Kind) (string, error) {
	if err := CheckPrefix(prefix); err != nil {
		return "", err
	}
	refuse := func(code, reason string) (string, error) {
		return "", &Error{Code: code, Path: rel, Reason: reason}
	}
	if kind != File && kind != Dir {
		return refuse(CodeNotPOSIXCompliant, fmt.Sprintf("unknown kind %v", kind))
	}
	var key string
	switch {
	case rel == ".":
		if kind != Dir {
			return refuse(CodeNotPOSIXCompliant, `"." is the association's directory; it cannot be a file`)
		}
		if prefix == "" {
			return refuse(CodeNotPOSIXCompliant, "the root of a whole-bucket association has no directory object")
		}
		key = prefix
	case rel == "":
		return refuse(CodeNotPOSIXCompliant, "empty path")
	default:
		for c := range strings.SplitSeq(rel, "/") {
			if r := checkName(c); r != "" {
				return refuse(CodeNotPOSIXCompliant, r)
			}
		}
		key = prefix + rel
		if kind == Dir {
			key += "/"
		}
	}
	if len(key) > MaxKeyLen {
		return refuse(CodePathSizeTooLong, fmt.Sprintf("the object key would be %d bytes; S3 keys are at most %d", len(key), MaxKeyLen))
	}
	return key, nil
}

// checkName returns why c cannot be a path component, or "" if it can.
func checkName(c string) string {
	switch {
	case c == "":
		return `empty path component ("//" in the key, or an absolute path)`
	case c == ".":
		return `path component "." is not allowed`
	case c == "..":
		return `path component ".." is not allowed`
	case len(c) > MaxNameLen:
		return fmt.Sprintf("path component of %d bytes; names are at most %d bytes", len(c), MaxNameLen)
	case strings.IndexByte(c, 0) >= 0:
		return "path component contains a NUL byte"
	case !utf8.ValidString(c):
		return "path component is not valid UTF-8"
	}
	return ""
}
