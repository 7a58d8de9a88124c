package importer

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// The sweep's walk of an association's listed directories, in key order:
// the order of ListObjectsV2, the byte order of the keys. A directory's
// entries sort by name, a subdirectory's name followed by "/" (its keys
// are <name>/…): "a.b" < "a/x" < "a0". The walk descends depth first
// through a stack of directories, each read whole and sorted when it is
// entered; entries created after that are not seen (the next sweep sees
// them). Memory: the sorted entries of the directories on the stack, at
// most MemEntries of them in memory (a directory with more — or when
// those above it hold the budget — is sorted in runs written to an
// unlinked spill file and merged back, with a small buffer per run), plus
// at most minInMemory entries for each directory on the stack.

// localEnt is a non-directory entry of a listed directory.
type localEnt struct {
	key string // its object key
	sub string // its path inside the association
	typ uint32 // unix.S_IFREG, S_IFLNK…
}

// dirEnt is a directory entry as the walk sorts it.
type dirEnt struct {
	sortName string // the name, with "/" appended for a directory
	typ      uint32
}

func (e dirEnt) name() string {
	if e.typ == unix.S_IFDIR {
		return strings.TrimSuffix(e.sortName, "/")
	}
	return e.sortName
}

// entIter yields a directory's entries in sorted order.
type entIter interface {
	next() (dirEnt, bool, error)
	close()
}

// Bounds of the walk's memory.
const (
	// minInMemory: a directory of at most this many entries is sorted in
	// memory even when the budget is spent (deep trees stay cheap).
	minInMemory = 1024
	// minSpillRun: the entries of one spilled run, at least (fewer runs
	// to merge, each with a read buffer).
	minSpillRun = 1 << 16
	// spillBuffer is the read buffer of a run being merged.
	spillBuffer = 8 << 10
)

// frame is a directory of the walk being yielded.
type frame struct {
	sub   string // path inside the association
	files bool   // listed: its files are yielded (else it is only a way down)
	it    entIter
	held  int // entries held in memory (given back to memLeft on pop)
}

// localWalk yields the files of an association's listed directories in
// key order.
type localWalk struct {
	im      *Importer
	a       *dra.Assoc
	stack   []*frame
	memLeft int
	// inMem and run: a directory of up to max(memLeft, inMem) entries
	// is sorted in memory; a bigger one in runs of max(memLeft, run).
	inMem, run int
}

// push enters directory sub; files says whether it was listed.
func (w *localWalk) push(sub string, files bool) error {
	it, held, err := w.sorted(w.a.StorePath(sub))
	if err != nil {
		return err
	}
	w.memLeft -= held
	w.stack = append(w.stack, &frame{sub: sub, files: files, it: it, held: held})
	return nil
}

func (w *localWalk) pop() {
	f := w.stack[len(w.stack)-1]
	f.it.close()
	w.memLeft += f.held
	w.stack = w.stack[:len(w.stack)-1]
}

func (w *localWalk) close() {
	for len(w.stack) > 0 {
		w.pop()
	}
}

// next returns the next file of a listed directory in key order (false at
// the end). Directories are entered when listed, or when a listed
// directory is below them; others are passed over.
func (w *localWalk) next(ctx context.Context) (localEnt, bool, error) {
	for len(w.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return localEnt{}, false, err
		}
		f := w.stack[len(w.stack)-1]
		e, ok, err := f.it.next()
		if err != nil {
			return localEnt{}, false, err
		}
		if !ok {
			w.pop()
			continue
		}
		sub := keypath.Join(f.sub, e.name())
		if e.typ == unix.S_IFDIR {
			if err := w.enter(ctx, sub); err != nil {
				return localEnt{}, false, err
			}
			continue
		}
		if !f.files {
			continue
		}
		key, err := w.a.Key(sub, keypath.File)
		if err != nil {
			continue // a name no key can have: never in the repository
		}
		return localEnt{key: key, sub: sub, typ: e.typ}, true, nil
	}
	return localEnt{}, false, nil
}

// enter pushes directory sub when it was listed, or has a listed
// directory below it.
func (w *localWalk) enter(ctx context.Context, sub string) error {
	rel := w.a.StorePath(sub)
	listed, err := w.im.isListed(ctx, rel)
	if err != nil {
		return err
	}
	if !listed {
		below, err := w.im.cat.ListedBelow(ctx, keypath.ToCatalog(rel))
		if err != nil || !below {
			return err
		}
	}
	err = w.push(sub, listed)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // gone since its parent was read
	}
	return err
}

// sorted reads directory rel and returns its entries sorted, and how many
// it holds in memory. Up to max(memLeft, minInMemory) entries are sorted
// in memory; beyond, in runs through a spill file.
func (w *localWalk) sorted(rel string) (entIter, int, error) {
	d, err := w.im.st.Readdir(rel)
	if err != nil {
		return nil, 0, err
	}
	defer d.Close()
	limit := max(w.memLeft, w.inMem)
	var ents []dirEnt
	var sp *spill
	defer func() {
		if sp != nil && err != nil {
			sp.close()
		}
	}()
	for {
		batch, rerr := d.Next(256)
		for _, de := range batch {
			n := de.Name
			if de.Type == unix.S_IFDIR {
				n += "/"
			}
			ents = append(ents, dirEnt{sortName: n, typ: de.Type})
		}
		if len(ents) > limit {
			if sp == nil {
				if sp, err = newSpill(w.im.st.MetaPath()); err != nil {
					return nil, 0, err
				}
				limit = max(w.memLeft, w.run)
			}
			if err = sp.writeRun(ents); err != nil {
				return nil, 0, err
			}
			ents = ents[:0]
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			err = rerr
			return nil, 0, err
		}
	}
	sortEnts(ents)
	if sp == nil {
		return &memIter{ents: ents}, len(ents), nil
	}
	if err = sp.writeRun(ents); err != nil {
		return nil, 0, err
	}
	it, err := sp.merge()
	return it, 0, err
}

func sortEnts(ents []dirEnt) {
	slices.SortFunc(ents, func(a, b dirEnt) int { return strings.Compare(a.sortName, b.sortName) })
}

// memIter yields sorted entries held in memory.
type memIter struct {
	ents []dirEnt
	i    int
}

func (m *memIter) next() (dirEnt, bool, error) {
	if m.i >= len(m.ents) {
		return dirEnt{}, false, nil
	}
	m.i++
	return m.ents[m.i-1], true, nil
}

func (m *memIter) close() { m.ents = nil }

// spill is an unlinked file of sorted runs of entries: each entry is
// uvarint(len(sortName)), sortName, one byte of file type (S_IFMT>>12).
type spill struct {
	f    *os.File
	bw   *bufio.Writer
	off  int64
	runs [][2]int64 // offset, length
}

// newSpill makes a spill file in dir, unlinked at once: a crash leaves
// nothing behind.
func newSpill(dir string) (*spill, error) {
	f, err := os.CreateTemp(dir, "sweep-spill-*")
	if err != nil {
		return nil, fmt.Errorf("import sweep: spill file for a large directory: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &spill{f: f, bw: bufio.NewWriterSize(f, 64<<10)}, nil
}

// writeRun sorts ents and appends them as one run.
func (s *spill) writeRun(ents []dirEnt) error {
	if len(ents) == 0 {
		return nil
	}
	sortEnts(ents)
	start := s.off
	var lb [binary.MaxVarintLen64]byte
	for _, e := range ents {
		n := binary.PutUvarint(lb[:], uint64(len(e.sortName)))
		s.bw.Write(lb[:n])
		s.bw.WriteString(e.sortName)
		s.bw.WriteByte(byte(e.typ >> 12))
		s.off += int64(n + len(e.sortName) + 1)
	}
	s.runs = append(s.runs, [2]int64{start, s.off - start})
	return nil
}

// merge returns an iterator over every run, merged.
func (s *spill) merge() (entIter, error) {
	if err := s.bw.Flush(); err != nil {
		s.close()
		return nil, fmt.Errorf("import sweep: spill file: %w", err)
	}
	m := &mergeIter{sp: s}
	for _, r := range s.runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(s.f, r[0], r[1]), spillBuffer)}
		ok, err := rr.advance()
		if err != nil {
			s.close()
			return nil, err
		}
		if ok {
			m.h = append(m.h, rr)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

func (s *spill) close() { s.f.Close() }

// runReader reads one run; cur is its current entry.
type runReader struct {
	r   *bufio.Reader
	cur dirEnt
}

func (rr *runReader) advance() (bool, error) {
	n, err := binary.ReadUvarint(rr.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil || n > 4096 {
		return false, fmt.Errorf("import sweep: spill file corrupt (%v)", err)
	}
	b := make([]byte, n+1)
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return false, fmt.Errorf("import sweep: spill file: %w", err)
	}
	rr.cur = dirEnt{sortName: string(b[:n]), typ: uint32(b[n]) << 12}
	return true, nil
}

// runHeap orders runs by their current entry.
type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].cur.sortName < h[j].cur.sortName }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeIter yields the entries of a spill's runs in order.
type mergeIter struct {
	sp *spill
	h  runHeap
}

func (m *mergeIter) next() (dirEnt, bool, error) {
	if len(m.h) == 0 {
		return dirEnt{}, false, nil
	}
	top := m.h[0]
	e := top.cur
	ok, err := top.advance()
	if err != nil {
		return dirEnt{}, false, err
	}
	if ok {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return e, true, nil
}

func (m *mergeIter) close() {
	m.h = nil
	m.sp.close()
}
