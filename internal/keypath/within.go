package keypath

import (
	"fmt"
	"path"
	"strings"
)

// Within returns rel's path relative to directory dir, both store-relative
// slash-separated paths ("." for the root), and whether rel is dir itself
// or below it. It is how a store path is matched to the association whose
// directory holds it: Within("ExtData", "ExtData/a/b") is ("a/b", true),
// Within("ExtData", "ExtData") is (".", true), Within("ExtData",
// "ExtDataX/a") is ("", false), and every rel is within ".".
func Within(dir, rel string) (string, bool) {
	switch {
	case dir == ".":
		return rel, true
	case rel == dir:
		return ".", true
	case strings.HasPrefix(rel, dir+"/"):
		return rel[len(dir)+1:], true
	}
	return "", false
}

// Join is the inverse of Within: the store-relative path of in, a path
// relative to directory dir.
func Join(dir, in string) string {
	switch {
	case in == ".":
		return dir
	case dir == ".":
		return in
	}
	return dir + "/" + in
}

// StoreDir returns the store-relative directory of an association's
// FileSystemPath: "/ExtData" is "ExtData", "/" is ".".
func StoreDir(fileSystemPath string) (string, error) {
	if !strings.HasPrefix(fileSystemPath, "/") {
		return "", fmt.Errorf("file system path %q does not start with /", fileSystemPath)
	}
	dir := path.Clean(fileSystemPath)[1:]
	if dir == "" {
		dir = "."
	}
	return dir, nil
}

// The three forms of a path in the file system:
//   - a store path, relative to the store's root, "." for the root (what
//     the store and the mount's nodes use);
//   - a catalog path, the same with "" for the root, so that the catalog's
//     paths compare and prefix-match as plain strings;
//   - a file system path as FSx requests give it: with or without a
//     leading "/", "/" or "" for the root.

// FromCatalog is the store path of catalog path p.
func FromCatalog(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// ToCatalog is the catalog path of store path rel.
func ToCatalog(rel string) string {
	if rel == "." {
		return ""
	}
	return rel
}

// FromFSx is the store path of an FSx file system path ("/ExtData/a" and
// "ExtData/a/" are "ExtData/a"; "/" and "" are ".").
func FromFSx(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "."
	}
	return p
}
