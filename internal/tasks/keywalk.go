package tasks

import (
	"errors"
	"io"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// keyWalk walks the entries below a store directory in the order of their
// keys, the order in which ListObjectsV2 lists a prefix (bytewise), so an
// import task can merge it with a flat listing of the prefix in one pass.
//
// An entry's key is its path below the walk's directory, with "/" after a
// directory ("a/b" is a file, "a/b/" a directory), as keypath maps paths
// to keys below a prefix. Sorting the entries of each directory by that
// key and walking depth first yields every key in order: the keys below
// directory "a/" all start with "a/", and no sibling of "a/" sorts between
// "a/" and them.
//
// Memory: the entries of each directory on the current path are held (a
// directory is read whole to be sorted, since readdir's order is not the
// keys'), never the tree's; the bound is the largest directories of one
// path, not the number of files.
type keyWalk struct {
	st    *store.Store
	root  string // store path of the walked directory
	stack []keyLevel
	ahead *keyEnt // peeked, not yet taken
	// fail receives a directory that could not be read (its entries are
	// then not walked); a directory gone meanwhile is not a failure.
	fail func(rel string, err error)
}

type keyLevel struct{ ents []keyEnt } // entries not yet walked, in key order

// keyEnt is one entry of a walk.
type keyEnt struct {
	key string // below the walked directory; "/" after a directory
	typ uint32 // S_IFREG, S_IFDIR, S_IFLNK…
}

func newKeyWalk(st *store.Store, root string, fail func(rel string, err error)) *keyWalk {
	w := &keyWalk{st: st, root: root, fail: fail}
	w.push("")
	return w
}

// rel is the store path of the entry of key k.
func (w *keyWalk) rel(k string) string {
	k = strings.TrimSuffix(k, "/")
	if k == "" {
		return w.root
	}
	return keypath.Join(w.root, k)
}

// push reads directory dk (a directory key, "" for the walked directory)
// and puts its entries, sorted by key, on the stack.
func (w *keyWalk) push(dk string) {
	rel := w.rel(dk)
	d, err := w.st.Readdir(rel)
	if err != nil {
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			w.fail(rel, err)
		}
		return
	}
	defer d.Close()
	var ents []keyEnt
	for {
		b, err := d.Next(0)
		for _, e := range b {
			typ := e.Type
			if typ == 0 { // DT_UNKNOWN: the file system did not say
				st, err := w.st.Lstat(w.rel(dk + e.Name))
				if err != nil {
					continue // gone meanwhile
				}
				typ = st.Mode & unix.S_IFMT
			}
			k := dk + e.Name
			if typ == unix.S_IFDIR {
				k += "/"
			}
			ents = append(ents, keyEnt{key: k, typ: typ})
		}
		if errors.Is(err, io.EOF) || (err == nil && len(b) == 0) {
			break
		}
		if err != nil {
			w.fail(rel, err)
			break
		}
	}
	slices.SortFunc(ents, func(a, b keyEnt) int { return strings.Compare(a.key, b.key) })
	w.stack = append(w.stack, keyLevel{ents: ents})
}

// peek returns the next entry without taking it; false at the end.
func (w *keyWalk) peek() (keyEnt, bool) {
	if w.ahead != nil {
		return *w.ahead, true
	}
	for len(w.stack) > 0 {
		top := &w.stack[len(w.stack)-1]
		if len(top.ents) == 0 {
			w.stack = w.stack[:len(w.stack)-1]
			continue
		}
		e := top.ents[0]
		top.ents = top.ents[1:]
		if e.typ == unix.S_IFDIR {
			w.push(e.key)
		}
		w.ahead = &e
		return e, true
	}
	return keyEnt{}, false
}

// next takes the next entry; false at the end.
func (w *keyWalk) next() (keyEnt, bool) {
	e, ok := w.peek()
	w.ahead = nil
	return e, ok
}
