package keypath

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestToPath(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen)
	tests := []struct {
		prefix, key string
		rel         string
		kind        Kind
	}{
		{"", "a", "a", File},
		{"", "a/b/c.nc", "a/b/c.nc", File},
		{"", "dir/", "dir", Dir},
		{"", "a/b/", "a/b", Dir},
		{"p/", "p/", ".", Dir},
		{"p/", "p/x", "x", File},
		{"p/q/", "p/q/x/y/", "x/y", Dir},
		{"", "a..b", "a..b", File},           // ".." inside a name is a name
		{"", "...", "...", File},             // so is "..."
		{"", ".hidden/x", ".hidden/x", File}, // dot files are fine
		{"", "back\\slash", "back\\slash", File},
		{"", "sp ace/ünï/日本", "sp ace/ünï/日本", File},
		{"", long, long, File},
		{"", "a/" + long + "/", "a/" + long, Dir},
	}
	for _, tt := range tests {
		rel, kind, err := ToPath(tt.prefix, tt.key)
		if err != nil {
			t.Errorf("ToPath(%q, %q): %v", tt.prefix, tt.key, err)
			continue
		}
		if rel != tt.rel || kind != tt.kind {
			t.Errorf("ToPath(%q, %q) = %q, %v; want %q, %v", tt.prefix, tt.key, rel, kind, tt.rel, tt.kind)
		}
		back, err := ToKey(tt.prefix, rel, kind)
		if err != nil || back != tt.key {
			t.Errorf("ToKey(%q, %q, %v) = %q, %v; want %q", tt.prefix, rel, kind, back, err, tt.key)
		}
	}
}

func TestToPathRefuses(t *testing.T) {
	tests := []struct {
		name, prefix, key, code string
	}{
		{"dotdot", "", "..", CodeNotPOSIXCompliant},
		{"dotdot dir", "", "../", CodeNotPOSIXCompliant},
		{"dotdot inside", "", "a/../b", CodeNotPOSIXCompliant},
		{"dotdot escape after prefix", "p/", "p/../etc/passwd", CodeNotPOSIXCompliant},
		{"dotdot last", "", "a/..", CodeNotPOSIXCompliant},
		{"dot", "", ".", CodeNotPOSIXCompliant},
		{"dot inside", "", "a/./b", CodeNotPOSIXCompliant},
		{"dot dir", "", "a/./", CodeNotPOSIXCompliant},
		{"empty component", "", "a//b", CodeNotPOSIXCompliant},
		{"double trailing slash", "", "a//", CodeNotPOSIXCompliant},
		{"absolute", "", "/etc/passwd", CodeNotPOSIXCompliant},
		{"absolute after prefix", "p/", "p//etc/passwd", CodeNotPOSIXCompliant},
		{"slash after prefix", "p/", "p//", CodeNotPOSIXCompliant},
		{"root slash", "", "/", CodeNotPOSIXCompliant},
		{"empty key", "", "", CodeNotPOSIXCompliant},
		{"long component", "", "a/" + strings.Repeat("y", MaxNameLen+1), CodeNotPOSIXCompliant},
		{"NUL", "", "a\x00b", CodeNotPOSIXCompliant},
		{"NUL component", "", "a/\x00/b", CodeNotPOSIXCompliant},
		{"non-UTF-8", "", "a/\xff\xfe", CodeNotPOSIXCompliant},
		{"truncated UTF-8", "", "caf\xc3", CodeNotPOSIXCompliant},
		{"key too long", "", strings.Repeat("a/", 600), CodeNotPOSIXCompliant},
		{"other prefix", "p/", "q/x", CodeOutsideAssociation},
		{"prefix without slash boundary", "p/", "px", CodeOutsideAssociation},
		{"prefix no slash", "p", "p/x", CodeInvalidPrefix},
		{"prefix dotdot", "../", "../x", CodeInvalidPrefix},
		{"prefix empty component", "p//", "p//x", CodeInvalidPrefix},
		{"prefix absolute", "/", "/x", CodeInvalidPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel, kind, err := ToPath(tt.prefix, tt.key)
			if err == nil {
				t.Fatalf("ToPath(%q, %q) = %q, %v; want error %s", tt.prefix, tt.key, rel, kind, tt.code)
			}
			if got := CodeOf(err); got != tt.code {
				t.Fatalf("ToPath(%q, %q) error %v has code %q, want %q", tt.prefix, tt.key, err, got, tt.code)
			}
			if rel != "" || kind != 0 {
				t.Errorf("refused key still returned %q, %v", rel, kind)
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Reason == "" || !strings.Contains(err.Error(), tt.code) {
				t.Errorf("error %q should be an *Error naming the code and a reason", err)
			}
		})
	}
}

func TestErrorsIs(t *testing.T) {
	_, _, err := ToPath("", "a/../b")
	if !errors.Is(err, ErrNotPOSIXCompliant) {
		t.Errorf("errors.Is(%v, ErrNotPOSIXCompliant) = false", err)
	}
	if errors.Is(err, ErrPathSizeTooLong) {
		t.Errorf("errors.Is(%v, ErrPathSizeTooLong) = true", err)
	}
	_, err = ToKey("", strings.Repeat("a/", 512)+"b", File)
	if !errors.Is(err, ErrPathSizeTooLong) {
		t.Errorf("errors.Is(%v, ErrPathSizeTooLong) = false", err)
	}
}

func TestToKey(t *testing.T) {
	atLimit := strings.Repeat(strings.Repeat("k", 254)+"/", 4) + strings.Repeat("k", 1024-4*255-2) // 1022 bytes
	tests := []struct {
		name, prefix, rel string
		kind              Kind
		key, code         string
	}{
		{"file", "", "a/b", File, "a/b", ""},
		{"dir", "", "a/b", Dir, "a/b/", ""},
		{"under prefix", "p/", "x", File, "p/x", ""},
		{"root dir object", "p/", ".", Dir, "p/", ""},
		{"root of bucket", "", ".", Dir, "", CodeNotPOSIXCompliant},
		{"root as file", "p/", ".", File, "", CodeNotPOSIXCompliant},
		{"empty", "p/", "", File, "", CodeNotPOSIXCompliant},
		{"absolute", "", "/a", File, "", CodeNotPOSIXCompliant},
		{"trailing slash", "", "a/", File, "", CodeNotPOSIXCompliant},
		{"dotdot", "", "a/../b", File, "", CodeNotPOSIXCompliant},
		{"dot", "", "./a", File, "", CodeNotPOSIXCompliant},
		{"non-UTF-8 local name", "", "caf\xe9", File, "", CodeNotPOSIXCompliant},
		{"bad kind", "", "a", 0, "", CodeNotPOSIXCompliant},
		{"1022 bytes file", "", atLimit, File, atLimit, ""},
		{"1023 bytes with prefix", "x/", atLimit[:1021], File, "x/" + atLimit[:1021], ""},
		{"1024 bytes dir", "", atLimit + "k", Dir, atLimit + "k/", ""},
		{"1025 bytes dir", "", atLimit + "kk", Dir, "", CodePathSizeTooLong},
		{"1025 bytes with prefix", "xy/", atLimit, File, "", CodePathSizeTooLong},
		{"bad prefix", "p", "a", File, "", CodeInvalidPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ToKey(tt.prefix, tt.rel, tt.kind)
			if tt.code != "" {
				if err == nil || CodeOf(err) != tt.code {
					t.Fatalf("ToKey(%q, %q, %v) = %q, %v; want code %s", tt.prefix, tt.rel, tt.kind, key, err, tt.code)
				}
				return
			}
			if err != nil || key != tt.key {
				t.Fatalf("ToKey(%q, %q, %v) = %q, %v; want %q", tt.prefix, tt.rel, tt.kind, key, err, tt.key)
			}
			rel, kind, err := ToPath(tt.prefix, key)
			if err != nil || rel != tt.rel || kind != tt.kind {
				t.Errorf("ToPath(%q, %q) = %q, %v, %v; want %q, %v", tt.prefix, key, rel, kind, err, tt.rel, tt.kind)
			}
		})
	}
}

// checkLocal fails t if rel could name anything outside the directory it is
// joined onto. It is written independently of checkName so that a bug in one
// is not mirrored in the other.
func checkLocal(t *testing.T, key, rel string) {
	t.Helper()
	if rel == "." {
		return
	}
	if !filepath.IsLocal(rel) {
		t.Fatalf("key %q mapped to non-local path %q", key, rel)
	}
	if path.Clean(rel) != rel {
		t.Fatalf("key %q mapped to unclean path %q (Clean: %q)", key, rel, path.Clean(rel))
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." || c == "." || c == "" {
			t.Fatalf("key %q mapped to path %q with component %q", key, rel, c)
		}
	}
	joined := path.Join("/assoc", rel)
	if !strings.HasPrefix(joined, "/assoc/") {
		t.Fatalf("key %q: /assoc joined with %q is %q, outside /assoc", key, rel, joined)
	}
}

func FuzzToPath(f *testing.F) {
	for _, s := range []struct{ prefix, key string }{
		{"", "a/b"}, {"", "a/"}, {"p/", "p/"}, {"p/", "p/../x"}, {"", "/abs"},
		{"", "a//b"}, {"", "a/./b"}, {"", "\x00"}, {"", "\xff"}, {"p/", "p//"},
		{"", strings.Repeat("x", 256)}, {"", "a..b/..c/"}, {"", "..."}, {"", "./"},
	} {
		f.Add(s.prefix, s.key)
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		rel, kind, err := ToPath(prefix, key)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Invariant 4 (docs/invariants.md): an accepted key stays inside
		// its association.
		checkLocal(t, key, rel)
		if !strings.HasPrefix(key, prefix) {
			t.Fatalf("accepted key %q outside prefix %q", key, prefix)
		}
		back, err := ToKey(prefix, rel, kind)
		if err != nil || back != key {
			t.Fatalf("ToKey(%q, %q, %v) = %q, %v; want %q", prefix, rel, kind, back, err, key)
		}
	})
}

func FuzzToKey(f *testing.F) {
	f.Add("", "a/b", true)
	f.Add("p/", ".", true)
	f.Add("p/", "../x", false)
	f.Add("", "a/", false)
	f.Fuzz(func(t *testing.T, prefix, rel string, dir bool) {
		kind := File
		if dir {
			kind = Dir
		}
		key, err := ToKey(prefix, rel, kind)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		checkLocal(t, key, rel)
		if len(key) > MaxKeyLen {
			t.Fatalf("key of %d bytes accepted", len(key))
		}
		r, k, err := ToPath(prefix, key)
		if err != nil || r != rel || k != kind {
			t.Fatalf("ToPath(%q, %q) = %q, %v, %v; want %q, %v", prefix, key, r, k, err, rel, kind)
		}
	})
}
