// Package hsm owns the HSM state of files under an association, as Lustre's
// `lfs hsm_*` commands show and change it (docs/semantics.md §6): the state
// flags, the rules that move a file from one state to another (pure
// functions, see transition.go), the text `lfs hsm_state` and
// `lfs hsm_action` print, and the parsing of flag names for
// `ferry hsm set|clear`.
//
// Formats were checked against Lustre's own source (lustre/lustre-release,
// lustre/utils/lfs.c at commit 00141b1a746d4733c2f52c7a7edec36da4cedcac,
// functions lfs_hsm_state, lfs_hsm_change_flags and lfs_hsm_action; names
// of actions and progress states from hsm_user_action2name and
// hsm_progress_state2name in lustre_user.h):
//
//	lfs hsm_state:  "%s: (0x%08x)" then, for each set flag in this order,
//	                " released", " exists", " dirty", " archived",
//	                " never_release", " never_archive", " lost_from_hsm";
//	                then ", archive_id:%d" if the archive id is not 0.
//	lfs hsm_action: "%s: %s" with NOOP/ARCHIVE/RESTORE/RELEASE/REMOVE/CANCEL;
//	                for anything but NOOP " %s " with waiting/running/done,
//	                then "(%llu bytes moved)" for a running ARCHIVE or
//	                RESTORE, else "(from %llu to EOF)" or "(from %llu to %llu)".
//	lfs hsm_set/hsm_clear options: --exists --archived --dirty --lost
//	                --norelease --noarchive (released cannot be set).
//
// The flag order differs from the bit order (released 0x04 comes first) and
// matches docs/semantics.md §6 ("released exists archived").
package hsm

import (
	"fmt"
	"strconv"
	"strings"
)

// Flags is a file's HSM state, with Lustre's bit values (enum hsm_states).
type Flags uint32

const (
	Exists    Flags = 0x01 // the repository knows the file (it was archived once)
	Dirty     Flags = 0x02 // local content differs from the archived copy
	Released  Flags = 0x04 // data not local: a stub (possibly partly fetched)
	Archived  Flags = 0x08 // the repository holds a copy of the content
	NoRelease Flags = 0x10 // never_release: data is never dropped
	NoArchive Flags = 0x20 // never_archive: the file is never exported
	Lost      Flags = 0x40 // lost_from_hsm: the object vanished while released

	// None is the state of a file created locally and never exported.
	None Flags = 0
	// Known is every flag this package knows.
	Known = Exists | Dirty | Released | Archived | NoRelease | NoArchive | Lost
	// UserSettable is what `lfs hsm_set`/`hsm_clear` can change: every flag
	// but released, which only a release or a fetch changes.
	UserSettable = Known &^ Released
)

// flagNames lists the flags in the order lfs hsm_state prints them (see the
// package comment), with the name it prints.
var flagNames = [...]struct {
	f    Flags
	name string
}{
	{Released, "released"},
	{Exists, "exists"},
	{Dirty, "dirty"},
	{Archived, "archived"},
	{NoRelease, "never_release"},
	{NoArchive, "never_archive"},
	{Lost, "lost_from_hsm"},
}

// Has reports whether every flag of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Names returns the names of the known flags set in f, in lfs's order.
func (f Flags) Names() []string {
	var names []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	return names
}

// String returns f as lfs hsm_state prints it after the path:
// "(0x0000000d) released exists archived".
func (f Flags) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "(0x%08x)", uint32(f))
	for _, n := range f.Names() {
		b.WriteByte(' ')
		b.WriteString(n)
	}
	return b.String()
}

// FormatState returns the line `lfs hsm_state PATH` prints for a file (without
// the newline): "PATH: (0x0000000d) released exists archived", followed by
// ", archive_id:N" when archiveID is not 0. Unknown bits show in the hex
// value only, as in lfs.
func FormatState(path string, f Flags, archiveID uint32) string {
	s := path + ": " + f.String()
	if archiveID != 0 {
		s += ", archive_id:" + strconv.FormatUint(uint64(archiveID), 10)
	}
	return s
}

// Check reports whether f is a consistent state, or why not. These are
// ferry's rules (Lustre's MDT applies similar ones to hsm_set):
//   - only known bits;
//   - dirty, archived, released and lost_from_hsm need exists;
//   - released needs archived (the only copy of the data is the archived
//     one) and excludes dirty (dirty content is local content);
//   - lost_from_hsm needs released (a local file whose object vanished is
//     simply not archived any more, see Vanished).
func (f Flags) Check() error {
	switch {
	case f&^Known != 0:
		return fmt.Errorf("unknown HSM flag bits %#x", uint32(f&^Known))
	case f&(Dirty|Archived|Released|Lost) != 0 && f&Exists == 0:
		return fmt.Errorf("%s: dirty, archived, released and lost_from_hsm need exists", f)
	case f.Has(Released) && !f.Has(Archived):
		return fmt.Errorf("%s: a released file must be archived", f)
	case f.Has(Released | Dirty):
		return fmt.Errorf("%s: a released file cannot be dirty", f)
	case f.Has(Lost) && !f.Has(Released):
		return fmt.Errorf("%s: lost_from_hsm needs released", f)
	}
	return nil
}

// ParseFlag parses one flag name. It accepts the names lfs hsm_state prints
// (exists, dirty, released, archived, never_release, never_archive,
// lost_from_hsm) and the option names of lfs hsm_set (norelease, noarchive,
// lost), with or without a leading "--", in any case.
func ParseFlag(name string) (Flags, error) {
	n := strings.ToLower(strings.TrimPrefix(name, "--"))
	switch n {
	case "norelease", "no_release", "no-release", "never-release":
		return NoRelease, nil
	case "noarchive", "no_archive", "no-archive", "never-archive":
		return NoArchive, nil
	case "lost", "lost-from-hsm":
		return Lost, nil
	}
	for _, fn := range flagNames {
		if n == fn.name {
			return fn.f, nil
		}
	}
	return 0, fmt.Errorf("unknown HSM flag %q: use exists, archived, dirty, released, norelease, noarchive or lost", name)
}

// ParseFlags parses a list of flag names separated by commas or white space
// ("exists,archived", "--norelease --noarchive"), or a number in the hex
// form lfs prints ("0x0000000d"). Unknown names or bits and an empty list
// are errors.
func ParseFlags(s string) (Flags, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return 0, fmt.Errorf("no HSM flags given")
	}
	var f Flags
	for _, w := range fields {
		if h, ok := strings.CutPrefix(strings.ToLower(w), "0x"); ok {
			v, err := strconv.ParseUint(h, 16, 32)
			if err != nil || Flags(v)&^Known != 0 {
				return 0, fmt.Errorf("HSM flags %q: not a combination of known flags (%#x)", w, uint32(Known))
			}
			f |= Flags(v)
			continue
		}
		g, err := ParseFlag(w)
		if err != nil {
			return 0, err
		}
		f |= g
	}
	return f, nil
}

// Set applies a `ferry hsm set`/`clear` request to f, like
// llapi_hsm_state_set: the flags in set are added, those in clear removed.
// Only UserSettable flags may be named, and the result must pass Check.
func Set(f, set, clear Flags) (Flags, error) {
	if bad := (set | clear) &^ UserSettable; bad != 0 {
		return f, fmt.Errorf("cannot set or clear %s: only exists, archived, dirty, norelease, noarchive and lost can be changed by hand", strings.Join(bad.Names(), " ")+unknownSuffix(bad))
	}
	if set&clear != 0 {
		return f, fmt.Errorf("cannot both set and clear %s", strings.Join((set&clear).Names(), " "))
	}
	g := (f | set) &^ clear
	if err := g.Check(); err != nil {
		return f, fmt.Errorf("the result would be inconsistent: %w", err)
	}
	return g, nil
}

func unknownSuffix(f Flags) string {
	if u := f &^ Known; u != 0 {
		return fmt.Sprintf(" %#x", uint32(u))
	}
	return ""
}
