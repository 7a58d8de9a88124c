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
