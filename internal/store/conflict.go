package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ConflictXattr marks a conflict copy: a file auto-import made by moving
// aside the local content of a file whose object changed under it (see
// internal/importer, "conflict"). Its value is one line,
//
//	<kind> <UTC time, RFC 3339> <store path of the original file>
//
// with kind CHANGED. It is a separate attribute, not part of the state
// record (which stays small, and is rewritten by every export): it moves
// with the file on rename, disappears with its last link and is not
// carried to a new inode (a copy whose own object later changes is
// re-imported as a new stub, which is the repository's version and no
// longer the kept local content).
const ConflictXattr = "user.ferry.conflict"

// ConflictMark is what ConflictXattr records.
type ConflictMark struct {
	Kind string    // "CHANGED": the object changed under local changes
	Time time.Time // when the copy was made
	Of   string    // store path of the file the copy was made from
}

func (m ConflictMark) encode() ([]byte, error) {
	if m.Kind == "" || strings.ContainsAny(m.Kind, " \n") {
		return nil, fmt.Errorf("conflict kind %q: one word", m.Kind)
	}
	if m.Of == "" || len(m.Of) > maxOriginLen {
		return nil, fmt.Errorf("conflict original path of %d bytes: 1 to %d", len(m.Of), maxOriginLen)
	}
	return []byte(m.Kind + " " + m.Time.UTC().Format(time.RFC3339) + " " + m.Of), nil
}

func decodeConflict(p []byte) (ConflictMark, error) {
	parts := strings.SplitN(string(p), " ", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return ConflictMark{}, fmt.Errorf("%w: conflict mark %q", ErrCorruptState, p)
	}
	at, err := time.Parse(time.RFC3339, parts[1])
	if err != nil {
		return ConflictMark{}, fmt.Errorf("%w: conflict mark time %q", ErrCorruptState, parts[1])
	}
	return ConflictMark{Kind: parts[0], Time: at, Of: parts[2]}, nil
}

// SetConflict marks rel (a regular file) as a conflict copy.
func (s *Store) SetConflict(rel string, m ConflictMark) error {
	p, err := m.encode()
	if err != nil {
		return pathErr("mark conflict copy", rel, err)
	}
	return s.pathState("mark conflict copy", rel, func(proc string, _ *unix.Stat_t) error {
		return withOwnerWrite(proc, func() error { return unix.Setxattr(proc, ConflictXattr, p, 0) })
	})
}

// Conflict returns the conflict mark of rel; ok is false when rel is not
// a conflict copy (symlinks and special files never are).
func (s *Store) Conflict(rel string) (m ConflictMark, ok bool, err error) {
	err = s.pathState("get conflict mark", rel, func(proc string, _ *unix.Stat_t) error {
		buf := make([]byte, maxOriginLen+64)
		n, err := unix.Getxattr(proc, ConflictXattr, buf)
		switch {
		case err == unix.ENODATA:
			return nil
		case err != nil:
			return err
		}
		m, err = decodeConflict(buf[:n])
		ok = err == nil
		return err
	})
	if errors.Is(err, ErrSymlinkState) || errors.Is(err, unix.EOPNOTSUPP) {
		return ConflictMark{}, false, nil
	}
	return m, ok, err
}
