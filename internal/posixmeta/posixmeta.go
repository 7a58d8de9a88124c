// Package posixmeta owns the encoding of POSIX file attributes in S3 user
// metadata, in the format FSx for Lustre, DataSync and Storage Gateway
// share (docs/semantics.md §3), and the separation of those keys from any
// other user metadata an object carries.
//
// Keys are the AWS SDK's user-metadata map keys: without the "x-amz-meta-"
// prefix, lower case. Values:
//
//	file-permissions  st_mode in octal with the type bits, "0100664"
//	                  (setuid and setgid are dropped, both ways)
//	file-owner        decimal uid
//	file-group        decimal gid
//	file-mtime        "<n>ns": nanoseconds since the epoch; without the
//	file-atime        "ns" suffix the number is milliseconds
//	user-agent        "ferry/<version>" on export, ignored on import
//
// Only regular files (0100000), directories (0040000) and symbolic links
// (0120000) are accepted; a symlink object's body is its target.
//
// Defaults for missing or invalid headers: uid 0, gid 0 (root:root), mode
// 0644 for files and 0755 for directories, mtime = the object's
// LastModified, atime = mtime. FSx uses 0755 for files as well; ferry picks
// 0644 because an object carries no sign of being executable and a data
// file with the x bit set is a surprise (a script needs chmod +x, as it
// would after any download). docs/semantics.md §3 tells users so.
//
// Decoding never fails as a whole: it reports, header by header, whether the
// header was missing, valid or invalid (with the reason), so the importer can
// keep a file's current metadata when a changed object has none, and can
// count and report nonsense instead of silently accepting it.
package posixmeta

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"
)

// User-metadata keys (x-amz-meta-<key>), as the AWS SDK for Go v2 presents them.
const (
	KeyPermissions = "file-permissions"
	KeyOwner       = "file-owner"
	KeyGroup       = "file-group"
	KeyMtime       = "file-mtime"
	KeyAtime       = "file-atime"
	KeyUserAgent   = "user-agent"
)

// ownKeys are the keys ferry writes; everything else is foreign.
var ownKeys = [...]string{KeyPermissions, KeyOwner, KeyGroup, KeyMtime, KeyAtime, KeyUserAgent}

// st_mode bits.
const (
	TypeMask    uint32 = 0o170000
	TypeRegular uint32 = 0o100000
	TypeDir     uint32 = 0o040000
	TypeSymlink uint32 = 0o120000

	// PermMask is what ferry keeps of the permission bits: rwx for user,
	// group and others, and the sticky bit. Setuid (04000) and setgid
	// (02000) are never exported nor imported.
	PermMask  uint32 = 0o1777
	setIDBits uint32 = 0o6000
	maxMode   uint32 = 0o177777
)

// Defaults for objects without (valid) POSIX metadata.
const (
	DefaultUID      uint32 = 0
	DefaultGID      uint32 = 0
	DefaultFileMode        = TypeRegular | 0o644
	DefaultDirMode         = TypeDir | 0o755
)

// Limits.
const (
	// MaxMetadataSize is S3's limit on user metadata: the sum of the UTF-8
	// bytes of every key and value.
	MaxMetadataSize = 2048
	// MaxSymlinkTarget is the longest symlink target (PATH_MAX - 1).
	MaxSymlinkTarget = 4095
	// invalidID is (uid_t)-1, which chown reads as "leave unchanged".
	invalidID = math.MaxUint32
)

// Error codes carried by HeaderError.
const (
	// CodeTypeMismatch: file-permissions names a type the key contradicts
	// (a directory mode on a key without "/", a file mode on "dir/"). FSx
	// reports S3ObjectTypeMismatch for such objects.
	CodeTypeMismatch = "S3ObjectTypeMismatch"
	// CodeInvalid: a header that is present but not in the format above.
	CodeInvalid = "InvalidPosixMetadata"
)

// Attrs are the POSIX attributes stored in an object's metadata.
type Attrs struct {
	Mode  uint32 // st_mode, with the type bits (TypeRegular, TypeDir, TypeSymlink)
	UID   uint32
	GID   uint32
	Mtime time.Time
	Atime time.Time
}

// Type returns the type bits of a.Mode.
func (a Attrs) Type() uint32 { return a.Mode & TypeMask }

// IsDir, IsSymlink and IsRegular report the type of a.Mode.
func (a Attrs) IsDir() bool     { return a.Type() == TypeDir }
func (a Attrs) IsSymlink() bool { return a.Type() == TypeSymlink }
func (a Attrs) IsRegular() bool { return a.Type() == TypeRegular }

// Perm returns the permission bits ferry keeps (PermMask).
func (a Attrs) Perm() uint32 { return a.Mode & PermMask }

// Defaults returns the attributes of an object without POSIX metadata.
func Defaults(dir bool, lastModified time.Time) Attrs {
	a := Attrs{Mode: DefaultFileMode, UID: DefaultUID, GID: DefaultGID, Mtime: lastModified, Atime: lastModified}
	if dir {
		a.Mode = DefaultDirMode
	}
	return a
}

// Validate reports why a cannot be encoded, or nil. Setuid and setgid are
// not errors: Encode drops them.
func (a Attrs) Validate() error {
	if a.Mode > maxMode {
		return fmt.Errorf("posixmeta: mode %#o has bits outside st_mode", a.Mode)
	}
	switch a.Type() {
	case TypeRegular, TypeDir, TypeSymlink:
	case 0:
		return fmt.Errorf("posixmeta: mode %#o has no file type bits", a.Mode)
	default:
		return fmt.Errorf("posixmeta: mode %#o: only regular files, directories and symlinks can be stored in S3", a.Mode)
	}
	if a.UID == invalidID || a.GID == invalidID {
		return fmt.Errorf("posixmeta: uid/gid %d:%d: 4294967295 is not a valid id", a.UID, a.GID)
	}
	if err := checkTime("mtime", a.Mtime); err != nil {
		return err
	}
	return checkTime("atime", a.Atime)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func checkTime(name string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("posixmeta: %s is not set", name)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("posixmeta: %s %s cannot be written in nanoseconds since 1970 (years 1678-2262)", name, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// UserAgent is the value of the user-agent key for a ferry version.
func UserAgent(version string) string {
	if version == "" {
		version = "dev"
	}
	return "ferry/" + version
}

// Encode returns the user metadata that stores a, with ferry's user agent
// for version. Setuid and setgid are dropped; anything Validate refuses is an
// error.
func Encode(a Attrs, version string) (map[string]string, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ua := UserAgent(version)
	for i := 0; i < len(ua); i++ {
		if ua[i] < 0x20 || ua[i] > 0x7e {
			return nil, fmt.Errorf("posixmeta: version %q: a metadata value must be printable ASCII", version)
		}
	}
	mode := a.Type() | a.Mode&07777&^setIDBits
	return map[string]string{
		KeyPermissions: fmt.Sprintf("%07o", mode),
		KeyOwner:       strconv.FormatUint(uint64(a.UID), 10),
		KeyGroup:       strconv.FormatUint(uint64(a.GID), 10),
		KeyMtime:       strconv.FormatInt(a.Mtime.UnixNano(), 10) + "ns",
		KeyAtime:       strconv.FormatInt(a.Atime.UnixNano(), 10) + "ns",
		KeyUserAgent:   ua,
	}, nil
}

// IsOwnKey reports whether a user-metadata key is one ferry writes (compared
// without regard to case: HTTP header names are case-insensitive).
func IsOwnKey(key string) bool {
	for _, k := range ownKeys {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// Foreign returns a copy of meta without ferry's own keys: the user metadata
// another tool put on an object, which ferry keeps when it exports the file
// again (docs/semantics.md §4; FSx drops it). Never nil.
func Foreign(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if !IsOwnKey(k) {
			out[k] = v
		}
	}
	return out
}

// ErrMetadataTooLarge is returned when user metadata would exceed S3's 2 KB.
var ErrMetadataTooLarge = errors.New("user metadata exceeds S3's 2 KB limit")

// ForExport returns the user metadata to put on the object a file is
// exported to: the foreign metadata of the object it was imported from
// (previous, may be nil) and a encoded for version, ferry's keys replacing
// any of the same name. It fails with ErrMetadataTooLarge when the result
// does not fit S3's limit.
func ForExport(a Attrs, version string, previous map[string]string) (map[string]string, error) {
	own, err := Encode(a, version)
	if err != nil {
		return nil, err
	}
	out := Foreign(previous)
	maps.Copy(out, own)
	if n := Size(out); n > MaxMetadataSize {
		return nil, fmt.Errorf("posixmeta: %d bytes of user metadata (%d of them kept from the imported object): %w", n, n-Size(own), ErrMetadataTooLarge)
	}
	return out, nil
}

// Size is the size of user metadata as S3 counts it against its 2 KB limit.
func Size(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// CheckSymlinkTarget reports why the body of a symlink object cannot be a
// symlink target, or nil. Where the target points is not checked: the store
// resolves nothing through symlinks it holds (invariant 4 in
// docs/invariants.md is kept there).
func CheckSymlinkTarget(target []byte) error {
	switch {
	case len(target) == 0:
		return fmt.Errorf("posixmeta: symlink object has an empty body; a symlink needs a target")
	case len(target) > MaxSymlinkTarget:
		return fmt.Errorf("posixmeta: symlink target of %d bytes; at most %d", len(target), MaxSymlinkTarget)
	case strings.IndexByte(string(target), 0) >= 0:
		return fmt.Errorf("posixmeta: symlink target contains a NUL byte")
	}
	return nil
}
