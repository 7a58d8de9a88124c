package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"golang.org/x/sys/unix"
)

// StateXattr is the extended attribute holding a file's state record. It is
// one attribute, so a state is read and replaced in one setxattr(2): a
// reader sees the old or the new record, never a mix. It moves with the file
// on rename, disappears with its last link, and is seen by every node of a
// shared store.
//
// Record layout, format version 1. uvarint is encoding/binary's unsigned
// varint; the CRC is little-endian.
//
//	u8       format version = 1
//	u8       kinds: bits 0-1 chunk map kind, bits 2-3 ETag encoding
//	uvarint  HSM flags (internal/hsm Flags)
//	uvarint  size of the object the stub was made from
//	uvarint  content version (hsm.Version), bumped by local modifications
//	uvarint  chunk size in bytes            (map kinds 1 and 2 only)
//	ETag     encoding 0: uvarint length, bytes verbatim
//	         encoding 1: `"<32 hex>"` (single-part MD5) as 16 bytes
//	         encoding 2: `"<32 hex>-<N>"` (multipart) as 16 bytes, uvarint N
//	map      kind 0: nothing
//	         kind 1: uvarint length L, L bytes of Bitmap.Bytes (inline)
//	         kind 2: 16-byte MapID (the map is in the MapStore, the catalog)
//	origin   format versions 2 and 3: uvarint length L, L bytes (State.Origin;
//	         L may be 0 in version 3 only)
//	stale    format version 3 only: uvarint length L (> 0), L bytes
//	         (State.Stale), then uvarint length M, M bytes (State.StaleETag)
//	u32      CRC-32C (Castagnoli) of everything before it
//
// Format version 2 is version 1 plus the origin: it is written only for a
// record with an Origin (a file renamed before its object moved), version 3
// only for a record with a Stale object (a move whose old object is not yet
// removed), so every other record stays byte-for-byte version 1, and all
// three are read.
//
// Map kind 0 means "no chunk map": every byte is local (a file that is not
// released). A released file always has kind 1 or 2, since its map carries
// the chunk size. The record is kept small on purpose: ext4 stores an
// inode's xattrs inside a 256-byte inode only up to about 90 bytes in all;
// beyond that it allocates a block, and a stub would no longer be free of
// blocks. A fresh stub of a 1 GiB object with an MD5 ETag is 33 bytes.
//
// Symlinks carry no state: Linux refuses user.* attributes on symlinks
// (EPERM), so state operations on a symlink fail with ErrSymlinkState. A
// symlink's repository identity is kept in the catalog.
const StateXattr = "user.ferry.state"

const (
	stateVersion       = 1
	stateVersionOrigin = 2 // version 1 + origin
	stateVersionStale  = 3 // version 2 + stale object
	maxOriginLen       = 4096
	mapNone            = 0
	mapInline          = 1
	mapExternal        = 2
	etagRaw            = 0
	etagMD5            = 1
	etagMultiMD5       = 2
	maxETagLen         = 1024
)

var (
	// ErrNoState: the file carries no state record (a local file never
	// exported). It wraps ENODATA.
	ErrNoState = errors.New("no ferry state on file")
	// ErrCorruptState: the record fails its checksum or does not parse.
	ErrCorruptState = errors.New("corrupt ferry state record")
	// ErrSymlinkState: symlinks cannot carry user.* extended attributes.
	ErrSymlinkState = errors.New("symlinks carry no ferry state in the store (Linux refuses user.* xattrs on symlinks); it is kept in the catalog")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// State is what the store keeps about one file.
type State struct {
	Flags   hsm.Flags
	Size    int64       // size of the object the stub came from
	ETag    string      // ETag of that object (If-Match for ranged GETs)
	Version hsm.Version // content version for export
	// Chunks is the chunk map of a released file, persisted with its
	// chunk size; nil for a file whose data is all local. (A released
	// file read with State.Has and no map counts as wholly missing.)
	Chunks *Bitmap
	// MapID is set when the map lives in the store's MapStore.
	MapID *MapID
	// Origin says where the file's object is: the store-relative path
	// whose key (in the association holding that path) holds the object
	// with ETag; "" means the current path's key. The object key is never
	// derived from a name that a rename may have changed since: the mount
	// records the old path here before it renames a file the repository
	// knows (flag Exists) and keeps an Origin already set, and the exporter,
	// when it has written the object under a new key, records that key's
	// path (or "" if the file is still there) in the same update that takes
	// the new ETag (see exporter "Renames"). Readers of released files and
	// the exporter's copies use it; a chain of renames therefore ends with
	// every object moved from wherever it is to the file's final name.
	Origin string
	// Stale is the path of an object the file's content left (its old
	// key after a move), with the ETag it had: the exporter records it
	// in the update that moves Origin away from it, removes the object
	// (only if it still has StaleETag and no local file has it as its own)
	// and then clears it. A daemon killed in between finds it at the next
	// export of the file. "" when there is none.
	Stale     string
	StaleETag string
}

// splitETag recognises the usual S3 ETag shapes so they can be stored in
// binary: `"<32 lowercase hex>"` and `"<32 lowercase hex>-<N>"`. Anything
// else (and any shape that would not round-trip exactly) is stored verbatim.
func splitETag(e string) (enc byte, md5 []byte, parts uint64) {
	if len(e) < 34 || e[0] != '"' || e[len(e)-1] != '"' {
		return etagRaw, nil, 0
	}
	h := e[1:33]
	for _, c := range []byte(h) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return etagRaw, nil, 0
		}
	}
	sum, err := hex.DecodeString(h)
	if err != nil {
		return etagRaw, nil, 0
	}
	switch tail := e[33 : len(e)-1]; {
	case tail == "":
		return etagMD5, sum, 0
	case tail[0] == '-' && len(tail) > 1 && tail[1] != '0':
		n, err := strconv.ParseUint(tail[1:], 10, 64)
		if err == nil && strconv.FormatUint(n, 10) == tail[1:] {
			return etagMultiMD5, sum, n
		}
	}
	return etagRaw, nil, 0
}

// Encode returns the record of st (format version 1, or 2 with an Origin). A map with more than
// MaxInlineChunks chunks must have a MapID; its bits are then not encoded.
func (st *State) Encode() ([]byte, error) {
	if len(st.ETag) > maxETagLen {
		return nil, fmt.Errorf("ETag of %d bytes; at most %d", len(st.ETag), maxETagLen)
	}
	if len(st.Origin) > maxOriginLen || len(st.Stale) > maxOriginLen {
		return nil, fmt.Errorf("origin or stale path of %d bytes; at most %d", max(len(st.Origin), len(st.Stale)), maxOriginLen)
	}
	if len(st.StaleETag) > maxETagLen || (st.Stale == "" && st.StaleETag != "") {
		return nil, fmt.Errorf("stale ETag %q for stale path %q", st.StaleETag, st.Stale)
	}
	if st.Size < 0 {
		return nil, fmt.Errorf("negative size %d", st.Size)
	}
	var mapKind byte
	switch {
	case st.MapID != nil:
		if st.Chunks == nil {
			return nil, errors.New("external chunk map without its chunk size")
		}
		mapKind = mapExternal
	case st.Chunks != nil:
		if st.Chunks.Len() > MaxInlineChunks {
			return nil, fmt.Errorf("%d chunks: %w", st.Chunks.Len(), ErrMapTooLarge)
		}
		mapKind = mapInline
	}
	if st.Chunks != nil && st.Chunks.Size() != st.Size {
		return nil, fmt.Errorf("chunk map of a %d-byte file in the state of a %d-byte file", st.Chunks.Size(), st.Size)
	}
	enc, md5, parts := splitETag(st.ETag)
	buf := make([]byte, 2, 48+len(st.ETag)+len(st.Origin)+len(st.Stale)+len(st.StaleETag))
	buf[0], buf[1] = stateVersion, mapKind|enc<<2
	switch {
	case st.Stale != "":
		buf[0] = stateVersionStale
	case st.Origin != "":
		buf[0] = stateVersionOrigin
	}
	buf = binary.AppendUvarint(buf, uint64(st.Flags))
	buf = binary.AppendUvarint(buf, uint64(st.Size))
	buf = binary.AppendUvarint(buf, uint64(st.Version))
	if mapKind != mapNone {
		buf = binary.AppendUvarint(buf, uint64(st.Chunks.ChunkSize()))
	}
	switch enc {
	case etagRaw:
		buf = binary.AppendUvarint(buf, uint64(len(st.ETag)))
		buf = append(buf, st.ETag...)
	case etagMD5:
		buf = append(buf, md5...)
	case etagMultiMD5:
		buf = append(buf, md5...)
		buf = binary.AppendUvarint(buf, parts)
	}
	switch mapKind {
	case mapInline:
		p := st.Chunks.Bytes()
		buf = binary.AppendUvarint(buf, uint64(len(p)))
		buf = append(buf, p...)
	case mapExternal:
		buf = append(buf, st.MapID[:]...)
	}
	if buf[0] >= stateVersionOrigin {
		buf = binary.AppendUvarint(buf, uint64(len(st.Origin)))
		buf = append(buf, st.Origin...)
	}
	if buf[0] == stateVersionStale {
		buf = binary.AppendUvarint(buf, uint64(len(st.Stale)))
		buf = append(buf, st.Stale...)
		buf = binary.AppendUvarint(buf, uint64(len(st.StaleETag)))
		buf = append(buf, st.StaleETag...)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli)), nil
}

// DecodeState parses a record. An external map comes back with an empty
// Chunks of the right geometry; Store loads its bits from the MapStore.
// It reads the record's fields in the order of the layout above (see
// StateXattr), one step each.
func DecodeState(p []byte) (State, error) {
	body, err := checkRecord(p)
	if err != nil {
		return State{}, err
	}
	mapKind, enc := body[1]&3, body[1]>>2
	r := &recordReader{rest: body[2:]}
	var st State
	chunk, err := r.numbers(&st, mapKind)
	if err != nil {
		return State{}, err
	}
	if err := r.etag(&st, enc); err != nil {
		return State{}, err
	}
	if err := r.chunkMap(&st, mapKind, chunk); err != nil {
		return State{}, err
	}
	if err := r.paths(&st, p[0]); err != nil {
		return State{}, err
	}
	if len(r.rest) != 0 {
		return State{}, corrupt("trailing bytes")
	}
	return st, nil
}

// corrupt is the error of a record that does not parse: ErrCorruptState,
// saying why.
func corrupt(why string) error { return fmt.Errorf("%w: %s", ErrCorruptState, why) }

// checkRecord checks a record's format version, length, checksum and kind
// bits, and returns its body: the record without its CRC.
func checkRecord(p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, corrupt("empty")
	}
	if p[0] < stateVersion || p[0] > stateVersionStale {
		return nil, corrupt(fmt.Sprintf("unknown format version %d (this ferry reads %d to %d)", p[0], stateVersion, stateVersionStale))
	}
	if len(p) < 2+3+4 {
		return nil, corrupt("short record")
	}
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, corrupt("checksum mismatch")
	}
	if body[1]>>4 != 0 {
		return nil, corrupt("unknown kind bits")
	}
	return body, nil
}

// recordReader reads the fields of a record's body in order; rest is what
// is still unread.
type recordReader struct{ rest []byte }

// uvarint reads an unsigned varint of at most limit; the error names what.
func (r *recordReader) uvarint(what string, limit uint64) (uint64, error) {
	v, n := binary.Uvarint(r.rest)
	if n <= 0 || v > limit {
		return 0, fmt.Errorf("%s", what)
	}
	r.rest = r.rest[n:]
	return v, nil
}

// numbers reads the flags, size and version into st and, with a chunk map
// (mapKind not mapNone), returns its chunk size.
func (r *recordReader) numbers(st *State, mapKind byte) (chunk uint64, err error) {
	flags, err := r.uvarint("flags", 1<<32-1)
	if err != nil {
		return 0, corrupt(err.Error())
	}
	size, err := r.uvarint("size", 1<<62)
	if err != nil {
		return 0, corrupt(err.Error())
	}
	version, err := r.uvarint("version", 1<<64-1)
	if err != nil {
		return 0, corrupt(err.Error())
	}
	st.Flags, st.Size, st.Version = hsm.Flags(flags), int64(size), hsm.Version(version)
	if mapKind != mapNone {
		if chunk, err = r.uvarint("chunk size", 1<<62); err != nil || chunk == 0 {
			return 0, corrupt("chunk size")
		}
	}
	return chunk, nil
}

// etag reads st.ETag in encoding enc.
func (r *recordReader) etag(st *State, enc byte) error {
	switch enc {
	case etagRaw:
		n, err := r.uvarint("ETag length", maxETagLen)
		if err != nil || uint64(len(r.rest)) < n {
			return corrupt("ETag")
		}
		st.ETag, r.rest = string(r.rest[:n]), r.rest[n:]
	case etagMD5, etagMultiMD5:
		if len(r.rest) < 16 {
			return corrupt("ETag")
		}
		st.ETag = `"` + hex.EncodeToString(r.rest[:16])
		r.rest = r.rest[16:]
		if enc == etagMultiMD5 {
			n, err := r.uvarint("ETag parts", 1<<64-1)
			if err != nil || n == 0 {
				return corrupt("ETag parts")
			}
			st.ETag += "-" + strconv.FormatUint(n, 10)
		}
		st.ETag += `"`
	default:
		return corrupt(fmt.Sprintf("unknown ETag encoding %d", enc))
	}
	return nil
}

// chunkMap reads st's chunk map of kind mapKind and chunk size chunk: its
// bits when inline, its MapID (and an empty map) when external.
func (r *recordReader) chunkMap(st *State, mapKind byte, chunk uint64) error {
	switch mapKind {
	case mapNone:
	case mapInline:
		n, err := r.uvarint("inline map length", MaxInlineChunks/8)
		if err != nil || uint64(len(r.rest)) < n {
			return corrupt("inline map")
		}
		b, err := BitmapFromBytes(st.Size, int64(chunk), r.rest[:n])
		if err != nil {
			return corrupt(err.Error())
		}
		st.Chunks, r.rest = b, r.rest[n:]
	case mapExternal:
		if len(r.rest) < len(MapID{}) {
			return corrupt("external map id")
		}
		var id MapID
		copy(id[:], r.rest)
		r.rest = r.rest[len(id):]
		b, err := NewBitmap(st.Size, int64(chunk))
		if err != nil {
			return corrupt(err.Error())
		}
		st.Chunks, st.MapID = b, &id
	default:
		return corrupt(fmt.Sprintf("unknown map kind %d", mapKind))
	}
	return nil
}

// paths reads what format version adds to version 1: st.Origin (versions
// 2 and 3), st.Stale and st.StaleETag (version 3).
func (r *recordReader) paths(st *State, version byte) error {
	if version >= stateVersionOrigin {
		n, err := r.uvarint("origin length", maxOriginLen)
		if err != nil || (n == 0 && version == stateVersionOrigin) || uint64(len(r.rest)) < n {
			return corrupt("origin")
		}
		st.Origin, r.rest = string(r.rest[:n]), r.rest[n:]
	}
	if version == stateVersionStale {
		n, err := r.uvarint("stale length", maxOriginLen)
		if err != nil || n == 0 || uint64(len(r.rest)) < n {
			return corrupt("stale path")
		}
		st.Stale, r.rest = string(r.rest[:n]), r.rest[n:]
		if n, err = r.uvarint("stale ETag length", maxETagLen); err != nil || uint64(len(r.rest)) < n {
			return corrupt("stale ETag")
		}
		st.StaleETag, r.rest = string(r.rest[:n]), r.rest[n:]
	}
	return nil
}

// readXattr reads the state record of the file open as fd (a real, not
// O_PATH, descriptor) or, when path is set, of path (a /proc/self/fd link).
func readXattr(fd int, path string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		var n int
		var err error
		if path != "" {
			n, err = unix.Getxattr(path, StateXattr, buf)
		} else {
			n, err = unix.Fgetxattr(fd, StateXattr, buf)
		}
		switch {
		case err == unix.ERANGE:
			buf = make([]byte, len(buf)*4)
			if len(buf) > 1<<20 {
				return nil, err
			}
			continue
		case err == unix.ENODATA:
			return nil, withErrno(ErrNoState, unix.ENODATA)
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}

// writeXattr writes the state record p of the file open as fd or, when
// path is set, of path (a /proc/self/fd link). A file whose mode denies its
// owner writing (an object imported 0444) refuses user xattrs to a daemon
// without CAP_DAC_OVERRIDE: withOwnerWrite.
func writeXattr(fd int, path string, p []byte) error {
	if path != "" {
		return withOwnerWrite(path, func() error { return unix.Setxattr(path, StateXattr, p, 0) })
	}
	return withOwnerWrite(procFd(fd), func() error { return unix.Fsetxattr(fd, StateXattr, p, 0) })
}

// decode parses p and, for an external map, loads its bits.
func (s *Store) decode(p []byte) (State, error) {
	st, err := DecodeState(p)
	if err != nil || st.MapID == nil {
		return st, err
	}
	if s.maps == nil {
		return st, fmt.Errorf("file's chunk map is in the catalog: %w", ErrMapTooLarge)
	}
	bits, err := s.maps.LoadChunkMap(*st.MapID)
	if err != nil {
		return st, fmt.Errorf("load chunk map: %w", err)
	}
	b, err := BitmapFromBytes(st.Size, st.Chunks.ChunkSize(), bits)
	if err != nil {
		return st, fmt.Errorf("%w: catalog chunk map: %v", ErrCorruptState, err)
	}
	st.Chunks = b
	return st, nil
}

// encode prepares st for writing: a map over the inline limit moves to the
// MapStore (saved there first, so the record never names a map that is not
// stored).
func (s *Store) encode(st *State) ([]byte, error) {
	if st.Chunks != nil && st.Chunks.Len() > MaxInlineChunks {
		if s.maps == nil {
			return nil, fmt.Errorf("%d chunks: %w", st.Chunks.Len(), ErrMapTooLarge)
		}
		if st.MapID == nil {
			var id MapID
			if _, err := rand.Read(id[:]); err != nil {
				return nil, err
			}
			st.MapID = &id
		}
		if err := s.maps.SaveChunkMap(*st.MapID, st.Chunks.Bytes()); err != nil {
			return nil, fmt.Errorf("save chunk map: %w", err)
		}
	} else if st.MapID != nil {
		// The map shrank away (file fetched or re-stubbed): drop the
		// catalog copy after the record stops naming it.
		st.MapID = nil
	}
	return st.Encode()
}

// pathState opens rel O_PATH, refuses symlinks and non-regular, non-directory
// files, and calls fn with a /proc/self/fd path to the inode and its stat.
func (s *Store) pathState(op, rel string, fn func(proc string, st *unix.Stat_t) error) error {
	return s.withPathFd(rel, op, func(fd int, st *unix.Stat_t) error {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return withErrno(ErrSymlinkState, unix.EPERM)
		case unix.S_IFREG, unix.S_IFDIR:
		default:
			return unix.EOPNOTSUPP
		}
		return fn(procFd(fd), st)
	})
}

// GetState returns the state of rel (a regular file or directory).
func (s *Store) GetState(rel string) (State, error) {
	var st State
	err := s.pathState("get state", rel, func(proc string, _ *unix.Stat_t) error {
		p, err := readXattr(-1, proc)
		if err != nil {
			return err
		}
		st, err = s.decode(p)
		return err
	})
	return st, err
}

// SetState replaces the state of rel.
func (s *Store) SetState(rel string, st State) error {
	return s.pathState("set state", rel, func(proc string, _ *unix.Stat_t) error {
		p, err := s.encode(&st)
		if err != nil {
			return err
		}
		return writeXattr(-1, proc, p)
	})
}

// UpdateState reads the state of rel, lets fn change it and writes it back,
// serialised with every other update of the same inode in this process. A
// file without state starts from the zero State. If fn fails, nothing is
// written.
func (s *Store) UpdateState(rel string, fn func(*State) error) (State, error) {
	var out State
	err := s.pathState("update state", rel, func(proc string, sta *unix.Stat_t) error {
		mu := s.lockFor(sta.Ino)
		mu.Lock()
		defer mu.Unlock()
		var err error
		out, err = s.update(-1, proc, fn)
		return err
	})
	return out, err
}

func (s *Store) update(fd int, proc string, fn func(*State) error) (State, error) {
	var st State
	p, err := readXattr(fd, proc)
	switch {
	case errors.Is(err, ErrNoState):
	case err != nil:
		return st, err
	default:
		if st, err = s.decode(p); err != nil {
			return st, err
		}
	}
	oldID := st.MapID
	if err := fn(&st); err != nil {
		return st, err
	}
	q, err := s.encode(&st)
	if err != nil {
		return st, err
	}
	if err := writeXattr(fd, proc, q); err != nil {
		return st, err
	}
	if oldID != nil && (st.MapID == nil || *st.MapID != *oldID) && s.maps != nil {
		// The record no longer names the old map; a failure here only
		// leaves an orphan row for the catalog's own cleanup.
		_ = s.maps.DeleteChunkMap(*oldID)
	}
	return st, nil
}

// ClearState removes the state record of rel (ENODATA wrapped in
// ErrNoState if there is none).
func (s *Store) ClearState(rel string) error {
	return s.pathState("clear state", rel, func(proc string, _ *unix.Stat_t) error {
		err := withOwnerWrite(proc, func() error { return unix.Removexattr(proc, StateXattr) })
		if err == unix.ENODATA {
			return withErrno(ErrNoState, unix.ENODATA)
		}
		return err
	})
}

// FileState returns the state of an open file.
func (s *Store) FileState(f *os.File) (State, error) {
	var st State
	err := WithFd(f, func(fd int) error {
		p, err := readXattr(fd, "")
		if err != nil {
			return err
		}
		st, err = s.decode(p)
		return err
	})
	return st, pathErr("get state", f.Name(), err)
}

// SetFileState replaces the state of an open file.
func (s *Store) SetFileState(f *os.File, st State) error {
	return pathErr("set state", f.Name(), WithFd(f, func(fd int) error {
		p, err := s.encode(&st)
		if err != nil {
			return err
		}
		return writeXattr(fd, "", p)
	}))
}

// UpdateFileState is UpdateState for an open file.
func (s *Store) UpdateFileState(f *os.File, fn func(*State) error) (State, error) {
	var out State
	err := WithFd(f, func(fd int) error {
		var sta unix.Stat_t
		if err := unix.Fstat(fd, &sta); err != nil {
			return err
		}
		mu := s.lockFor(sta.Ino)
		mu.Lock()
		defer mu.Unlock()
		var err error
		out, err = s.update(fd, "", fn)
		return err
	})
	return out, pathErr("update state", f.Name(), err)
}

// BumpVersion records a local modification of an open file: the content
// version goes up by one and hsm.LocalWrite applies to the flags (a released
// file is refused). The exporter compares versions around an upload, so
// every modification after an exporter read the version must bump it: the
// mount calls BumpVersion before the first write after an open and again
// before the first write after each such read (its per-file object keeps a
// "bumped" bit the exporter clears). The xattr is not fsynced here; the
// user's fsync of the file makes it durable with the data (ext4 and XFS
// journal an inode's xattrs with it), and the export journal entry written
// at close/fsync is the durable record invariant 1 relies on.
func (s *Store) BumpVersion(f *os.File) (State, error) {
	return s.UpdateFileState(f, func(st *State) error {
		g, err := hsm.LocalWrite(f.Name(), st.Flags)
		if err != nil {
			return err
		}
		st.Flags = g
		st.Version++
		return nil
	})
}

// CommitChunks records that the chunks of released file f inside r are
// local, after the caller wrote their bytes into f. When every chunk is
// local the file stops being released (hsm.Fetched) and its map is dropped.
// It returns the new state.
//
// A read never returns zeros from a hole as data (invariant 3): that rule
// is kept by this order, and only by it:
//
//  1. the caller writes the chunk's bytes into the store file;
//  2. CommitChunks fdatasyncs the file: the bytes are durable;
//  3. then marks the chunks in the map and replaces the state xattr.
//
// A crash before 3 leaves the chunks unmarked: they are fetched again, which
// is harmless. The mark can never be durable while the data is not, because
// it is written only after the data's fdatasync returned. If the sync fails
// nothing is marked. TestCommitChunksOrder and TestCommitChunksSyncFailure
// break this if the order changes.
func (s *Store) CommitChunks(f *os.File, r Range) (State, error) {
	return s.CommitRanges(f, []Range{r})
}

// CommitRanges is CommitChunks for several ranges at once: one fdatasync
// for all of them, then one state update that marks them all. The
// importer batches the ranges that concurrent fetches of one file landed
// while a previous commit was syncing, so a file being fetched in parallel
// costs one fdatasync per batch rather than one per chunk. The order of
// invariant 3 is the same: every range's bytes were written before this
// call, so the fdatasync covers them before any is marked.
func (s *Store) CommitRanges(f *os.File, rs []Range) (State, error) {
	var out State
	err := WithFd(f, func(fd int) error {
		if err := s.syncData(fd); err != nil {
			return fmt.Errorf("fdatasync before marking %v local: %w", rs, err)
		}
		if s.hooks.afterSync != nil {
			s.hooks.afterSync()
		}
		var sta unix.Stat_t
		if err := unix.Fstat(fd, &sta); err != nil {
			return err
		}
		mu := s.lockFor(sta.Ino)
		mu.Lock()
		defer mu.Unlock()
		var err error
		out, err = s.update(fd, "", func(st *State) error {
			if !st.Flags.Has(hsm.Released) {
				return nil // already whole; nothing to record
			}
			if st.Chunks == nil {
				return fmt.Errorf("released file without chunk size: %w", ErrCorruptState)
			}
			for _, r := range rs {
				st.Chunks.Mark(r)
			}
			if st.Chunks.Complete() {
				g, err := hsm.Fetched(f.Name(), st.Flags)
				if err != nil {
					return err
				}
				st.Flags, st.Chunks = g, nil
			}
			return nil
		})
		if err == nil && s.hooks.afterXattr != nil {
			s.hooks.afterXattr()
		}
		return err
	})
	return out, pathErr("commit chunks", f.Name(), err)
}

// syncData is CommitRanges' fdatasync of fd (testHooks.syncData when set).
func (s *Store) syncData(fd int) error {
	if s.hooks.syncData != nil {
		return s.hooks.syncData(fd)
	}
	return unix.Fdatasync(fd)
}

// Has returns the missing parts of r for a file in state st: none when the
// file is not released.
func (st *State) Has(r Range) []Range {
	if !st.Flags.Has(hsm.Released) {
		return nil
	}
	if st.Chunks == nil {
		b, _ := NewBitmap(st.Size, max(st.Size, 1))
		return b.Has(r)
	}
	return st.Chunks.Has(r)
}

// WithFd calls fn with f's descriptor, kept open meanwhile (f's
// SyscallConn): the descriptor cannot be closed and reused under fn.
func WithFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
