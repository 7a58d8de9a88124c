package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
	"golang.org/x/sys/unix"
)

// associations returns the file system's associations a task may work on:
// every one but those DELETING or FAILED.
func (j *job) associations() (*dra.Table, error) {
	as, err := j.r.cfg.Catalog.Associations(j.work)
	if err != nil {
		return nil, err
	}
	live := as[:0:0]
	for _, a := range as {
		if a.Lifecycle != api.LifecycleDeleting && a.Lifecycle != api.LifecycleFailed {
			live = append(live, a)
		}
	}
	return dra.NewTable(live, nil), nil
}

// usable fails when an association a task needs cannot reach its
// repository (MISCONFIGURED): every file would fail for the same reason.
func usable(a *dra.Assoc) error {
	if a.API.Lifecycle != api.LifecycleMisconfigured {
		return nil
	}
	why := ""
	if fd := a.API.FailureDetails; fd != nil && fd.Message != "" {
		why = ": " + fd.Message
	}
	return fmt.Errorf("association %s (%s) is MISCONFIGURED%s; fix the repository, then create the task again", a.API.AssociationId, a.API.FileSystemPath, why)
}

// check is usable for tasks that reach the repository (release works on
// local data only and needs none).
func (j *job) check(a *dra.Assoc) error {
	if releases(j.task.Type) {
		return nil
	}
	return usable(a)
}

// roots returns the associations and resolves a file-system-path task's
// Paths into the store paths to walk, each inside an association. A path that does not exist, or is
// neither inside an association nor above one, is invalid: it fails the
// task before any file is touched (FSx: "If a path that you provide isn't
// valid, the task fails").
func (j *job) roots() (*dra.Table, []string, error) {
	as, err := j.associations()
	if err != nil {
		return nil, nil, err
	}
	roots, err := j.rootsIn(as)
	return as, roots, err
}

func (j *job) rootsIn(as *dra.Table) ([]string, error) {
	paths := j.task.Paths
	if len(paths) == 0 {
		paths = []string{""}
	}
	if len(as.All()) == 0 {
		return nil, fmt.Errorf("the file system has no data repository association to work on: create one with create-data-repository-association")
	}
	var out []string
	for _, p := range paths {
		rel := keypath.FromFSx(p)
		if _, err := j.r.cfg.Store.Lstat(rel); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				return nil, fmt.Errorf("path %q does not exist in the file system: give paths relative to the file system root", p)
			}
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		if a, _, ok := as.Holder(rel); ok {
			out = append(out, rel)
			if err := j.check(a); err != nil {
				return nil, err
			}
			continue
		}
		found := false
		for _, a := range as.All() {
			if _, ok := keypath.Within(rel, a.Dir); ok {
				if err := j.check(a); err != nil {
					return nil, err
				}
				if _, err := j.r.cfg.Store.Lstat(a.Dir); err == nil {
					out = append(out, a.Dir)
				}
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("path %q is not inside any data repository association of the file system", p)
		}
	}
	return out, nil
}

// entry is one path of a walk.
type entry struct {
	rel string
	typ uint32 // S_IFREG, S_IFDIR, S_IFLNK, …
}

// forEach walks the trees under roots and calls fn for every entry (roots
// included), at most Config.Workers at once. The walk streams: one DirReader
// per directory level open at a time, a batch of entries from each, never a
// list of the tree. It stops feeding when the task is canceled; fn calls in
// flight finish (they get j.work, which only a shutdown ends).
func (j *job) forEach(roots []string, fn func(ctx context.Context, e entry)) {
	ch := make(chan entry, j.r.cfg.Workers)
	var wg sync.WaitGroup
	for range j.r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range ch {
				if j.feed.Err() != nil {
					continue // canceled: entries queued but not started are dropped
				}
				fn(j.work, e)
			}
		}()
	}
	emit := func(e entry) bool {
		select {
		case ch <- e:
			return true
		case <-j.feed.Done():
			return false
		}
	}
	for _, root := range roots {
		if !j.walk(root, emit) {
			break
		}
	}
	close(ch)
	wg.Wait()
}

// walk emits root and, for a directory, everything below it, depth first.
// It returns false once emit refuses (the task was canceled).
func (j *job) walk(root string, emit func(entry) bool) bool {
	st, err := j.r.cfg.Store.Lstat(root)
	if err != nil {
		if !errors.Is(err, unix.ENOENT) {
			j.done(err, root, 0)
		}
		return j.feed.Err() == nil
	}
	if !emit(entry{root, st.Mode & unix.S_IFMT}) {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return true
	}
	open := func(dir string) (*dirReader, error) {
		rd, err := j.r.cfg.Store.Readdir(dir)
		if err != nil {
			return nil, err
		}
		return &dirReader{dir: dir, rd: rd}, nil
	}
	first, err := open(root)
	if err != nil {
		j.done(err, root, 0)
		return j.feed.Err() == nil
	}
	stack := []*dirReader{first}
	defer func() {
		for _, d := range stack {
			d.rd.Close()
		}
	}()
	for len(stack) > 0 {
		if j.feed.Err() != nil {
			return false
		}
		top := stack[len(stack)-1]
		if len(top.batch) == 0 {
			b, err := top.rd.Next(256)
			if err != nil && !errors.Is(err, io.EOF) {
				j.done(err, top.dir, 0)
			}
			if len(b) == 0 {
				top.rd.Close()
				stack = stack[:len(stack)-1]
				continue
			}
			top.batch = b
		}
		d := top.batch[0]
		top.batch = top.batch[1:]
		rel := d.Name
		if top.dir != "." {
			rel = top.dir + "/" + d.Name
		}
		if d.Type == 0 { // DT_UNKNOWN: the file system did not say
			st, err := j.r.cfg.Store.Lstat(rel)
			if err != nil {
				continue // gone meanwhile
			}
			d.Type = st.Mode & unix.S_IFMT
		}
		if !emit(entry{rel, d.Type}) {
			return false
		}
		if d.Type == unix.S_IFDIR {
			sub, err := open(rel)
			if err != nil {
				if !errors.Is(err, unix.ENOENT) {
					j.done(err, rel, 0)
				}
				continue
			}
			stack = append(stack, sub)
		}
	}
	return true
}

// dirReader is one level of a walk: an open directory and the rest of the
// batch last read from it.
type dirReader struct {
	dir   string
	rd    *store.DirReader
	batch []store.Dirent
}
