package dra

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalizeFileSystemPath: an accepted path is clean, idempotent, within
// limits, and never has a component that could leave its directory.
func FuzzNormalizeFileSystemPath(f *testing.F) {
	for _, s := range []string{"/ExtData", "/a/../b", "//x//", "/", "rel", "/a\u2028", "/./", "/ü/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := NormalizeFileSystemPath(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") || utf8.RuneCountInString(got) > MaxFileSystemPathLen || !utf8.ValidString(got) {
			t.Fatalf("%q → %q", p, got)
		}
		if got != "/" && (strings.HasSuffix(got, "/") || strings.Contains(got, "//")) {
			t.Fatalf("%q → unclean %q", p, got)
		}
		for _, c := range strings.Split(got[1:], "/") {
			if c == "." || c == ".." || strings.ContainsAny(c, "\x00\r\n") {
				t.Fatalf("%q → %q has component %q", p, got, c)
			}
		}
		if again, err := NormalizeFileSystemPath(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", p, got, again, err)
		}
	})
}

// FuzzNormalizeDataRepositoryPath: an accepted path ends in "/", is
// idempotent and has no "." or ".." key components.
func FuzzNormalizeDataRepositoryPath(f *testing.F) {
	for _, s := range []string{"s3://bucket/p", "s3://b", "s3://bucket/a/../b", "s3://bucket//", "s3://bucket/a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := NormalizeDataRepositoryPath(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "s3://") || !strings.HasSuffix(got, "/") {
			t.Fatalf("%q → %q", p, got)
		}
		for _, c := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(got, "s3://"), "/"), "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("%q → %q has component %q", p, got, c)
			}
		}
		if again, err := NormalizeDataRepositoryPath(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", p, got, again, err)
		}
	})
}
