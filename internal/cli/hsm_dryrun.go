package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-hpc/ferry/internal/mounts"
)

// The input lists of `ferry hsm restore --from-dryrun LOG` and
// `--files-from FILE`, and how their paths are mapped onto a mount.

// extData is the directory component under which GEOS-Chem's input data
// lives; its parent is the model's root_data_dir.
const extData = "ExtData"

// maxListLine bounds one line of a dry-run log or a file list.
const maxListLine = 1 << 20

// dryrunList is what a GEOS-Chem dry-run log names.
type dryrunList struct {
	Paths   []string // unique ExtData paths, in order of first appearance
	Lines   int      // lines naming a file (found or missing)
	Ignored int      // of them, lines whose path has no ExtData component
}

// parseDryrunLog reads a GEOS-Chem dry-run log (gcclassic --dryrun >
// log.dryrun) the way the model's download_data.py does:
//   - a line naming a file the run reads contains ": Opening" or ": Reading"
//     ("HEMCO: Opening /data/ExtData/HEMCO/…nc", "FAST-JX (RD_AOD): Opening
//     …dat"), and a line naming one the dry run did not find contains
//     "FILE NOT FOUND" ("HEMCO: REQUIRED FILE NOT FOUND /data/ExtData/…"),
//     both matched without regard to case;
//   - the path is the line's last whitespace-separated field, taken
//     literally (no glob or template expansion: download_data.py fetches
//     the name as printed);
//   - doubled slashes are folded ("ExtData/CHEM_INPUTS//FAST_JX" is
//     "ExtData/CHEM_INPUTS/FAST_JX");
//   - a path with no ExtData component (the restart file in the run
//     directory, HEMCO's own restart) is ignored.
//
// Found and missing files are both listed: a file the dry run did not find
// on its own disk may well be in the repository.
func parseDryrunLog(r io.Reader) (dryrunList, error) {
	var out dryrunList
	seen := map[string]bool{}
	err := eachLine(r, func(line string) {
		up := strings.ToUpper(line)
		if !strings.Contains(up, ": OPENING") && !strings.Contains(up, ": READING") && !strings.Contains(up, "FILE NOT FOUND") {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			return
		}
		out.Lines++
		p := foldSlashes(f[len(f)-1])
		if extDataIndex(p) < 0 {
			out.Ignored++
			return
		}
		if !seen[p] {
			seen[p] = true
			out.Paths = append(out.Paths, p)
		}
	})
	return out, err
}

// parseFileList reads a plain list of paths, one a line: surrounding
// blanks are trimmed, and blank lines and lines starting with # are
// skipped. Duplicates are dropped (the first one counts).
func parseFileList(r io.Reader) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	err := eachLine(r, func(line string) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return
		}
		p := foldSlashes(line)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	})
	return out, err
}

// eachLine calls fn for each line of r, without its line ending.
func eachLine(r io.Reader, fn func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxListLine)
	for sc.Scan() {
		fn(strings.TrimRight(sc.Text(), "\r"))
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("a line is longer than %d bytes: is this a text file?", maxListLine)
	}
	return sc.Err()
}

// foldSlashes folds each run of slashes into one.
func foldSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// extDataIndex returns the byte offset of the first ExtData component of p
// that has something below it, or -1.
func extDataIndex(p string) int {
	off := 0
	for {
		i := strings.Index(p[off:], extData+"/")
		if i < 0 {
			return -1
		}
		at := off + i
		if (at == 0 || p[at-1] == '/') && len(p) > at+len(extData)+1 {
			return at
		}
		off = at + len(extData)
	}
}

// pathMapper maps the paths of a list onto ferry mounts.
type pathMapper struct {
	regs []mounts.Registration
	// root is --root as an absolute path with symlinks resolved ("" when
	// not given); it is under a running mount.
	root, rootFlag string
}

// newPathMapper checks --root: it must exist and be under a running mount.
func newPathMapper(regs []mounts.Registration, root string) (*pathMapper, error) {
	m := &pathMapper{regs: regs, rootFlag: root}
	if root == "" {
		return m, nil
	}
	abs, err := filepath.Abs(root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("--root %s: %w: give the directory of the mount that holds ExtData/ (e.g. --root /fsx)", root, err)
	}
	if _, ok := byMount(regs, abs); !ok {
		return nil, fmt.Errorf("--root %s is not under a running ferry mount (looked in %s): give the directory of the mount that holds ExtData/ (e.g. --root /fsx), or mount it first with `ferry mount --store DIR MOUNTPOINT`", root, mounts.RuntimeDir())
	}
	m.root = abs
	return m, nil
}

// mapPath returns where p is on a mount. A path already under a mount
// (itself, or once its symlinks are resolved) is taken as it is. Any other
// path has its part before the ExtData component replaced by --root.
func (m *pathMapper) mapPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if _, ok := byMount(m.regs, abs); ok {
		return abs, nil
	}
	if real, ok := resolveExisting(abs); ok {
		if _, ok := byMount(m.regs, real); ok {
			return real, nil
		}
	}
	i := extDataIndex(abs)
	switch {
	case i < 0:
		return "", fmt.Errorf("%s is not under a running ferry mount and has no ExtData/ component for --root to map", p)
	case m.root == "":
		return "", fmt.Errorf("%s is not under a running ferry mount: give --root DIR to read it as DIR/%s (e.g. --root /fsx)", p, abs[i:])
	}
	return filepath.Join(m.root, abs[i:]), nil
}

// resolveExisting resolves the symlinks of the longest existing leading
// part of abs and appends the rest, so a file not yet looked at below a
// symlink to a mount is found.
func resolveExisting(abs string) (string, bool) {
	dir, rest := abs, ""
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest), true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// mapPaths maps every path and drops duplicates (two spellings of one
// file). Paths that map nowhere make it fail, naming at most a few.
func (m *pathMapper) mapPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	seen := make(map[string]bool, len(paths))
	var bad []string
	nbad := 0
	for _, p := range paths {
		mp, err := m.mapPath(p)
		if err != nil {
			if nbad++; nbad <= 3 {
				bad = append(bad, err.Error())
			}
			continue
		}
		if !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	}
	if nbad > 0 {
		msg := strings.Join(bad, "\n  ")
		if nbad > len(bad) {
			msg += fmt.Sprintf("\n  (and %d more)", nbad-len(bad))
		}
		return nil, fmt.Errorf("%d of %d paths map to no ferry mount; nothing was restored:\n  %s", nbad, len(paths), msg)
	}
	return out, nil
}

// readList opens a list file ("-" is stdin) and parses it with parse.
func readList[T any](name string, stdin io.Reader, what string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		defer f.Close()
		r = f
	}
	v, err := parse(r)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", what, name, err)
	}
	return v, nil
}
