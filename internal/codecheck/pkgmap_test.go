package codecheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackageMap fails when the package map of docs/architecture.md (the
// code block under "## Packages") and the module's packages (directories
// holding .go files) differ: a newcomer finds every package there, and
// nothing that is gone (directories of scripts may be named as well).
func TestPackageMap(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "## Packages")
	if start < 0 {
		t.Fatal(`docs/architecture.md has no "## Packages" section`)
	}
	block := text[start:]
	if i := strings.Index(block, "```"); i >= 0 {
		block = block[i+3:]
	}
	if i := strings.Index(block, "```"); i >= 0 {
		block = block[:i]
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:^|[\s;:(])((?:cmd|internal|bench)/[a-z0-9_/-]*[a-z0-9_])`).FindAllStringSubmatch(block, -1) {
		named[m[1]] = true
	}
	var pkgs []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skipDir(path, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			if rel != "." && !slices.Contains(pkgs, rel) {
				pkgs = append(pkgs, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if !named[p] {
			t.Errorf("package %s is missing from the package map in docs/architecture.md", p)
		}
	}
	for p := range named {
		// A directory of scripts (bench/mount) may be named too.
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || !fi.IsDir() {
			t.Errorf("the package map in docs/architecture.md names %s, which does not exist", p)
		}
	}
}
