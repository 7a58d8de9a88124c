package hsm

import (
	"errors"
	"strings"
	"testing"
)

func TestFormatState(t *testing.T) {
	tests := []struct {
		f    Flags
		id   uint32
		want string
	}{
		{None, 0, "F: (0x00000000)"},
		{Imported(), 0, "F: (0x0000000d) released exists archived"},
		{Exists | Archived, 0, "F: (0x00000009) exists archived"},
		{Exists | Dirty | Archived, 0, "F: (0x0000000b) exists dirty archived"},
		{Known, 0, "F: (0x0000007f) released exists dirty archived never_release never_archive lost_from_hsm"},
		{Imported() | Lost, 0, "F: (0x0000004d) released exists archived lost_from_hsm"},
		{NoRelease | NoArchive, 0, "F: (0x00000030) never_release never_archive"},
		{Imported(), 1, "F: (0x0000000d) released exists archived, archive_id:1"},
		{Flags(0x80) | Exists, 0, "F: (0x00000081) exists"},
		{Flags(0xffffffff), 0, "F: (0xffffffff) released exists dirty archived never_release never_archive lost_from_hsm"},
	}
	for _, tt := range tests {
		if got := FormatState("F", tt.f, tt.id); got != tt.want {
			t.Errorf("FormatState(%#x, %d) = %q; want %q", uint32(tt.f), tt.id, got, tt.want)
		}
	}
	if got := FormatState("/mnt/a b/c", Exists, 0); got != "/mnt/a b/c: (0x00000001) exists" {
		t.Errorf("path with spaces: %q", got)
	}
}

// TestLifecycle follows the states docs/semantics.md §6 lists, as lfs prints
// them.
func TestLifecycle(t *testing.T) {
	step := func(name string, f Flags, err error, want string) Flags {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := f.String(); got != want {
			t.Fatalf("%s: %s; want %s", name, got, want)
		}
		if err := f.Check(); err != nil {
			t.Fatalf("%s: inconsistent result: %v", name, err)
		}
		return f
	}
	f := step("import", Imported(), nil, "(0x0000000d) released exists archived")
	g, err := Fetched("F", f)
	f = step("full read", g, err, "(0x00000009) exists archived")
	g, err = LocalWrite("F", f)
	f = step("write", g, err, "(0x0000000b) exists dirty archived")
	g, err = Exported("F", f, 7, 7)
	f = step("export", g, err, "(0x00000009) exists archived")
	g, err = Release("F", f, false)
	step("release", g, err, "(0x0000000d) released exists archived")

	n, err := LocalWrite("N", None)
	n = step("new local file, written", n, err, "(0x00000000)")
	if !NeedsExport(n) || !Unexported(n) {
		t.Fatal("a new local file must need export")
	}
	n, err = Exported("N", n, 1, 1)
	step("new local file, exported", n, err, "(0x00000009) exists archived")
}

func TestExported(t *testing.T) {
	tests := []struct {
		name              string
		f                 Flags
		exported, current Version
		want              Flags
		err               error
	}{
		{"current version", Exists | Dirty | Archived, 3, 3, Exists | Archived, nil},
		{"changed meanwhile stays dirty", Exists | Dirty | Archived, 3, 4, Exists | Dirty | Archived, nil},
		{"new file, current", None, 1, 1, Exists | Archived, nil},
		{"new file, changed meanwhile becomes dirty", None, 1, 2, Exists | Dirty | Archived, nil},
		{"user flags kept", NoRelease | Exists | Dirty | Archived, 5, 5, NoRelease | Exists | Archived, nil},
		{"vanished local file re-exported", Vanished(Exists | Archived), 9, 9, Exists | Archived, nil},
		{"released: nothing to do", Imported(), 1, 1, Imported(), nil},
		{"never_archive refused", NoArchive | Exists | Dirty | Archived, 1, 1, NoArchive | Exists | Dirty | Archived, ErrNoArchive},
		{"lost refused", Imported() | Lost, 1, 1, Imported() | Lost, ErrLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Exported("F", tt.f, tt.exported, tt.current)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("err = %v; want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Exported(%s) = %s; want %s", tt.f, got, tt.want)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	ea := Exists | Archived
	tests := []struct {
		name string
		f    Flags
		open bool
		want Flags
		err  error
		msg  string
	}{
		{"archived clean", ea, false, Imported(), nil, ""},
		{"already released", Imported(), true, Imported(), nil, ""},
		{"keeps never_archive", ea | NoArchive, false, Imported() | NoArchive, nil, ""},
		{"new file", None, false, None, ErrNotArchived,
			"cannot release F: file is not archived (the repository has no copy of it yet); run ferry hsm archive F first"},
		{"exists, not archived", Exists, false, Exists, ErrNotArchived, ""},
		{"dirty", ea | Dirty, false, ea | Dirty, ErrDirty,
			"cannot release F: file has changes not yet exported (dirty); run ferry hsm archive F or wait for export"},
		{"dirty and open: dirty first", ea | Dirty, true, ea | Dirty, ErrDirty, ""},
		{"never_release", ea | NoRelease, false, ea | NoRelease, ErrNoRelease,
			"cannot release F: file is marked never_release; run ferry hsm clear --norelease F to allow it"},
		{"open", ea, true, ea, ErrBusy, "cannot release F: file is open; close it and retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Release("F", tt.f, tt.open)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("err = %v; want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("Release(%s) = %s; want %s", tt.f, got, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message %q\nwant    %q", err, tt.msg)
			}
			var he *Error
			if err != nil && (!errors.As(err, &he) || he.Op != "release" || he.Path != "F" || he.Flags != tt.f) {
				t.Errorf("error %#v is not a release *Error for F", err)
			}
			if Releasable(tt.f, tt.open) != (tt.err == nil && tt.want != tt.f) {
				t.Errorf("Releasable disagrees with Release")
			}
		})
	}
}

func TestOtherTransitions(t *testing.T) {
	ea := Exists | Archived
	tests := []struct {
		name string
		fn   func(Flags) (Flags, error)
		f    Flags
		want Flags
		err  error
	}{
		{"fetch released", func(f Flags) (Flags, error) { return Fetched("F", f) }, Imported() | NoArchive, ea | NoArchive, nil},
		{"fetch local: no-op", func(f Flags) (Flags, error) { return Fetched("F", f) }, ea | Dirty, ea | Dirty, nil},
		{"fetch lost", func(f Flags) (Flags, error) { return Fetched("F", f) }, Imported() | Lost, Imported() | Lost, ErrLost},
		{"write archived", func(f Flags) (Flags, error) { return LocalWrite("F", f) }, ea, ea | Dirty, nil},
		{"write dirty", func(f Flags) (Flags, error) { return LocalWrite("F", f) }, ea | Dirty, ea | Dirty, nil},
		{"write new file", func(f Flags) (Flags, error) { return LocalWrite("F", f) }, NoRelease, NoRelease, nil},
		{"write released", func(f Flags) (Flags, error) { return LocalWrite("F", f) }, Imported(), Imported(), ErrReleased},
		{"truncate released", func(f Flags) (Flags, error) { return Truncated(f), nil }, Imported(), ea | Dirty, nil},
		{"truncate lost", func(f Flags) (Flags, error) { return Truncated(f), nil }, Imported() | Lost, ea | Dirty, nil},
		{"truncate new", func(f Flags) (Flags, error) { return Truncated(f), nil }, None, None, nil},
		{"reimport clean", func(f Flags) (Flags, error) { return Reimport("F", f) }, ea | NoRelease, Imported() | NoRelease, nil},
		{"reimport released", func(f Flags) (Flags, error) { return Reimport("F", f) }, Imported(), Imported(), nil},
		{"reimport lost", func(f Flags) (Flags, error) { return Reimport("F", f) }, Imported() | Lost, Imported(), nil},
		{"reimport dirty refused", func(f Flags) (Flags, error) { return Reimport("F", f) }, ea | Dirty, ea | Dirty, ErrDirty},
		{"reimport local-only refused", func(f Flags) (Flags, error) { return Reimport("F", f) }, None, None, ErrLocalOnly},
		{"vanished released", func(f Flags) (Flags, error) { return Vanished(f), nil }, Imported(), Imported() | Lost, nil},
		{"vanished local", func(f Flags) (Flags, error) { return Vanished(f), nil }, ea | Dirty | NoRelease, NoRelease, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fn(tt.f)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("err = %v; want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("%s → %s; want %s", tt.f, got, tt.want)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	if err := CheckRestore("F", Imported()|Lost); !errors.Is(err, ErrLost) ||
		err.Error() != "cannot restore F: its object is gone from the repository (lost_from_hsm); its data cannot be fetched; restore the object in the repository, or delete the file" {
		t.Errorf("CheckRestore lost: %v", err)
	}
	if err := CheckRestore("F", Imported()); err != nil {
		t.Errorf("CheckRestore: %v", err)
	}
	if err := CheckArchive("F", Exists|Archived|Dirty|NoArchive); !errors.Is(err, ErrNoArchive) ||
		!strings.Contains(err.Error(), "ferry hsm clear --noarchive F") {
		t.Errorf("CheckArchive never_archive: %v", err)
	}
	if err := CheckArchive("F", None); err != nil {
		t.Errorf("CheckArchive new file: %v", err)
	}
	_, err := LocalWrite("F", Imported())
	if err == nil || err.Error() != "cannot write F: its data is not local (released); restore it first (ferry hsm restore F)" {
		t.Errorf("LocalWrite released: %v", err)
	}
	_, err = Reimport("F", Exists|Archived|Dirty)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot import F: file has changes not yet exported (dirty); the local changes are kept") {
		t.Errorf("Reimport dirty: %v", err)
	}
}

// TestInvariant6 (docs/invariants.md) breaks if an import can ever replace
// unexported content: for every consistent state, Reimport succeeds only when
// Unexported is false.
func TestInvariant6(t *testing.T) {
	for f := Flags(0); f <= Known; f++ {
		if f.Check() != nil {
			continue
		}
		_, err := Reimport("F", f)
		if Unexported(f) && err == nil {
			t.Errorf("Reimport accepted %s, which holds unexported content", f)
		}
		if !Unexported(f) && err != nil {
			t.Errorf("Reimport refused clean %s: %v", f, err)
		}
	}
}

// TestTransitionsKeepConsistency: from every consistent state every
// transition yields a consistent state (or refuses and returns the input).
func TestTransitionsKeepConsistency(t *testing.T) {
	trans := map[string]func(Flags) (Flags, error){
		"fetched":         func(f Flags) (Flags, error) { return Fetched("F", f) },
		"write":           func(f Flags) (Flags, error) { return LocalWrite("F", f) },
		"truncate":        func(f Flags) (Flags, error) { return Truncated(f), nil },
		"exported":        func(f Flags) (Flags, error) { return Exported("F", f, 1, 1) },
		"exported stale":  func(f Flags) (Flags, error) { return Exported("F", f, 1, 2) },
		"release":         func(f Flags) (Flags, error) { return Release("F", f, false) },
		"release open":    func(f Flags) (Flags, error) { return Release("F", f, true) },
		"reimport":        func(f Flags) (Flags, error) { return Reimport("F", f) },
		"vanished":        func(f Flags) (Flags, error) { return Vanished(f), nil },
		"set dirty":       func(f Flags) (Flags, error) { return Set(f, Dirty, 0) },
		"clear exists":    func(f Flags) (Flags, error) { return Set(f, 0, Exists) },
		"set lost":        func(f Flags) (Flags, error) { return Set(f, Lost, 0) },
		"set norelease":   func(f Flags) (Flags, error) { return Set(f, NoRelease, 0) },
		"clear noarchive": func(f Flags) (Flags, error) { return Set(f, 0, NoArchive) },
	}
	consistent := 0
	for f := Flags(0); f <= Known; f++ {
		if f.Check() != nil {
			continue
		}
		consistent++
		for name, fn := range trans {
			g, err := fn(f)
			if err != nil && g != f {
				t.Errorf("%s(%s) refused (%v) but changed the state to %s", name, f, err, g)
			}
			if cerr := g.Check(); cerr != nil {
				t.Errorf("%s(%s) = %s: %v", name, f, g, cerr)
			}
		}
	}
	if consistent < 10 {
		t.Fatalf("only %d consistent states: Check is too strict", consistent)
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		f  Flags
		ok bool
	}{
		{None, true}, {Imported(), true}, {Exists | Archived | Dirty, true}, {Imported() | Lost, true},
		{NoRelease | NoArchive, true}, {Exists, true},
		{Dirty, false}, {Archived, false}, {Released | Exists, false}, {Imported() | Dirty, false},
		{Exists | Archived | Lost, false}, {Flags(0x80), false}, {Lost, false},
	} {
		if err := tt.f.Check(); (err == nil) != tt.ok {
			t.Errorf("Check(%s) = %v; want ok=%v", tt.f, err, tt.ok)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		in   string
		want Flags
		ok   bool
	}{
		{"exists", Exists, true},
		{"released exists archived", Imported(), true},
		{"exists,archived", Exists | Archived, true},
		{"--norelease --noarchive", NoRelease | NoArchive, true},
		{"never_release,never_archive,lost_from_hsm", NoRelease | NoArchive | Lost, true},
		{"lost", Lost, true},
		{"DIRTY", Dirty, true},
		{"0x0000000d", Imported(), true},
		{"0X7F", Known, true},
		{" exists ,\tdirty ", Exists | Dirty, true},
		{"", 0, false},
		{" , ", 0, false},
		{"exist", 0, false},
		{"0x80", 0, false},
		{"0xzz", 0, false},
		{"exists bogus", 0, false},
		{"---exists", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseFlags(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseFlags(%q) = %s, %v; want %s ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	// Every name lfs prints parses back.
	for _, n := range Known.Names() {
		if f, err := ParseFlag(n); err != nil || f.Names()[0] != n {
			t.Errorf("ParseFlag(%q) = %s, %v", n, f, err)
		}
	}
}

func TestSet(t *testing.T) {
	ea := Exists | Archived
	tests := []struct {
		name           string
		f, set, clear  Flags
		want           Flags
		ok             bool
		errContainsAny string
	}{
		{"set norelease", ea, NoRelease, 0, ea | NoRelease, true, ""},
		{"clear noarchive", NoArchive, 0, NoArchive, None, true, ""},
		{"set exists archived on new file", None, ea, 0, ea, true, ""},
		{"set dirty", ea, Dirty, 0, ea | Dirty, true, ""},
		{"released cannot be set", ea, Released, 0, ea, false, "released"},
		{"released cannot be cleared", Imported(), 0, Released, Imported(), false, "released"},
		{"unknown bits", ea, Flags(0x100), 0, ea, false, "0x100"},
		{"set and clear", ea, Dirty, Dirty, ea, false, "both"},
		{"dirty without exists", None, Dirty, 0, None, false, "inconsistent"},
		{"clear exists under archived", ea, 0, Exists, ea, false, "inconsistent"},
		{"dirty on released", Imported(), Dirty, 0, Imported(), false, "inconsistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Set(tt.f, tt.set, tt.clear)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("Set(%s, %s, %s) = %s, %v; want %s ok=%v", tt.f, tt.set, tt.clear, got, err, tt.want, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errContainsAny) {
				t.Errorf("error %q should mention %q", err, tt.errContainsAny)
			}
		})
	}
}

func TestFormatAction(t *testing.T) {
	tests := []struct {
		c    CurrentAction
		want string
	}{
		{Noop, "F: NOOP"},
		{Running(ActionRestore, 1048576), "F: RESTORE running (1048576 bytes moved)"},
		{Running(ActionArchive, 0), "F: ARCHIVE running (0 bytes moved)"},
		{Waiting(ActionRestore), "F: RESTORE waiting (from 0 to EOF)"},
		{Waiting(ActionArchive), "F: ARCHIVE waiting (from 0 to EOF)"},
		{CurrentAction{Action: ActionRelease, State: ProgressRunning, Length: EOF}, "F: RELEASE running (from 0 to EOF)"},
		{CurrentAction{Action: ActionRestore, State: ProgressWaiting, Offset: 4096, Length: 8192}, "F: RESTORE waiting (from 4096 to 12288)"},
		{CurrentAction{Action: ActionRestore, State: ProgressWaiting, Offset: 4096, Length: EOF - 4096}, "F: RESTORE waiting (from 4096 to EOF)"},
		// lfs adds in wrapping 64-bit arithmetic: offset 1 + all ones = 0.
		{CurrentAction{Action: ActionRestore, State: ProgressWaiting, Offset: 1, Length: EOF}, "F: RESTORE waiting (from 1 to 0)"},
		{CurrentAction{Action: ActionArchive, State: ProgressDone, Length: EOF}, "F: ARCHIVE done (from 0 to EOF)"},
		{CurrentAction{Action: ActionRemove, State: ProgressNone, Length: EOF}, "F: REMOVE unknown (from 0 to EOF)"},
		{CurrentAction{Action: Action(99), State: ProgressWaiting, Length: EOF}, "F: UNKNOWN waiting (from 0 to EOF)"},
		{CurrentAction{Action: ActionCancel, State: Progress(9), Offset: 0, Length: 10}, "F: CANCEL unknown (from 0 to 10)"},
	}
	for _, tt := range tests {
		if got := FormatAction("F", tt.c); got != tt.want {
			t.Errorf("FormatAction(%+v) = %q; want %q", tt.c, got, tt.want)
		}
	}
}

func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"exists", "released exists archived", "--norelease,--noarchive", "0x0000000d", "0x", ",", "lost_from_hsm"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFlags(s)
		if err != nil {
			return
		}
		if got&^Known != 0 {
			t.Fatalf("ParseFlags(%q) = %#x with unknown bits", s, uint32(got))
		}
		// What lfs prints for the flags parses back to the same flags.
		if names := got.Names(); len(names) > 0 {
			back, err := ParseFlags(strings.Join(names, " "))
			if err != nil || back != got {
				t.Fatalf("ParseFlags(%q) = %s; names %v parse to %s, %v", s, got, names, back, err)
			}
		}
	})
}
