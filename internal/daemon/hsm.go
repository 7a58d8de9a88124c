package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// maxHSMPaths bounds the paths of one request (xargs sends a few thousand
// at most; a tree is one path with Recursive).
const maxHSMPaths = 100000

// DefaultRestoreParallel is how many files one restore request fetches at
// once (each file's chunks are fetched in parallel by the importer too).
const DefaultRestoreParallel = 8

func (d *Daemon) serveHSM(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	var req api.HSMRequest
	if err := api.DecodeRequest("hsm "+op, http.MaxBytesReader(w, r.Body, 64<<20), &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Paths) == 0 || len(req.Paths) > maxHSMPaths {
		writeError(w, api.BadRequestf("hsm %s: give 1 to %d Paths", op, maxHSMPaths))
		return
	}
	switch op {
	case api.HSMState, api.HSMAction, api.HSMRelease:
		out := api.HSMResponse{Files: make([]api.HSMFile, 0, len(req.Paths))}
		for _, p := range req.Paths {
			out.Files = append(out.Files, d.hsmOne(r.Context(), op, p))
		}
		writeJSON(w, out)
	case api.HSMRestore:
		d.hsmRestore(w, r, req)
	case api.HSMArchive:
		d.hsmArchive(w, r, req)
	case api.HSMWait:
		d.hsmWait(w, r, req)
	default:
		writeError(w, api.BadRequestf("unknown hsm operation %q: use %s, %s, %s, %s, %s or %s", op, api.HSMState, api.HSMAction, api.HSMRelease, api.HSMRestore, api.HSMArchive, api.HSMWait))
	}
}

// relPath maps an absolute path under the mount point to the store.
func (d *Daemon) relPath(abs string) (string, error) {
	if !filepath.IsAbs(abs) {
		return "", fmt.Errorf("%s is not an absolute path", abs)
	}
	abs = filepath.Clean(abs)
	if abs == d.cfg.MountPoint {
		return ".", nil
	}
	rel, ok := strings.CutPrefix(abs, d.cfg.MountPoint+"/")
	if !ok {
		return "", fmt.Errorf("%s is not under the mount point %s of file system %s", abs, d.cfg.MountPoint, d.ID())
	}
	return rel, nil
}

// mountPath is store path rel under the mount point.
func (d *Daemon) mountPath(rel string) string {
	if rel == "." || rel == "" {
		return d.cfg.MountPoint
	}
	return d.cfg.MountPoint + "/" + rel
}

// ensureListed lists the directories leading to rel, as a lookup through
// the mount would, so a path never looked at yet is found.
func (d *Daemon) ensureListed(ctx context.Context, rel string) error {
	dir := "."
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		if err := d.imp.EnsureListed(ctx, dir); err != nil {
			return err
		}
		if i == len(parts)-1 || rel == "." {
			break
		}
		if dir == "." {
			dir = name
		} else {
			dir += "/" + name
		}
	}
	return nil
}

// errnoText is the strerror text of err's errno, as lfs prints it.
func errnoText(err error) string {
	if e := store.Errno(err); e != 0 {
		t := e.Error()
		return strings.ToUpper(t[:1]) + t[1:]
	}
	return ""
}

func fileError(path string, err error) api.HSMFile {
	var he *hsm.Error
	if errors.As(err, &he) {
		c := *he
		c.Path = path
		err = &c
	}
	e := store.Errno(err)
	missing := e == unix.ENOENT || e == unix.ENOTDIR || s3x.CodeOf(err) == s3x.CodeNoSuchKey
	return api.HSMFile{Path: path, Error: err.Error(), Errno: errnoText(err), Missing: missing}
}

// special reports whether rel is a FIFO, socket or device. Such a file
// has no state (user.* extended attributes are for regular files and
// directories only) and is never exported (see store.Mknod): hsm state
// shows it never_archive, and hsm archive refuses it.
func (d *Daemon) special(rel string) (bool, error) {
	st, err := d.store.Lstat(rel)
	if err != nil {
		return false, err
	}
	return store.Special(st.Mode), nil
}

func (d *Daemon) hsmOne(ctx context.Context, op, path string) api.HSMFile {
	rel, err := d.relPath(path)
	if err != nil {
		return api.HSMFile{Path: path, Error: err.Error(), Errno: "Invalid argument"}
	}
	if err := d.ensureListed(ctx, rel); err != nil {
		return fileError(path, err)
	}
	switch op {
	case api.HSMState:
		if special, err := d.special(rel); err != nil {
			return fileError(path, err)
		} else if special {
			return api.HSMFile{Path: path, Flags: uint32(hsm.NoArchive)}
		}
		st, err := d.store.GetState(rel)
		if errors.Is(err, store.ErrNoState) {
			if _, lerr := d.store.Lstat(rel); lerr != nil {
				return fileError(path, lerr)
			}
			return api.HSMFile{Path: path}
		}
		if err != nil {
			return fileError(path, err)
		}
		f := api.HSMFile{Path: path, Flags: uint32(st.Flags)}
		if m, ok, err := d.store.Conflict(rel); err != nil {
			return fileError(path, err)
		} else if ok {
			f.Conflict = &api.HSMConflict{Kind: m.Kind, Of: d.mountPath(m.Of), Time: api.NewTime(m.Time)}
		}
		return f
	case api.HSMAction:
		if _, err := d.store.Lstat(rel); err != nil {
			return fileError(path, err)
		}
		const p = "x"
		return api.HSMFile{Path: path, Action: strings.TrimPrefix(hsm.FormatAction(p, d.action(ctx, rel)), p+": ")}
	case api.HSMRelease:
		if err := d.imp.Release(ctx, rel); err != nil {
			if !errors.As(err, new(*hsm.Error)) {
				err = fmt.Errorf("cannot release %s: %w", path, err)
			}
			return fileError(path, err)
		}
		st, _ := d.store.GetState(rel)
		return api.HSMFile{Path: path, Flags: uint32(st.Flags)}
	}
	return api.HSMFile{Path: path, Error: "unknown operation"}
}

type restoreJob struct {
	path, rel string
}

// restoreCounts are a Restore's counters, read by its progress snapshots.
type restoreCounts struct {
	totalFiles, totalBytes, doneFiles, doneBytes, failed atomic.Int64
	localFiles, localBytes                               atomic.Int64 // already local: no fetch
}

func (c *restoreCounts) snapshot() api.HSMEvent {
	return api.HSMEvent{TotalFiles: c.totalFiles.Load(), TotalBytes: c.totalBytes.Load(), DoneFiles: c.doneFiles.Load(),
		DoneBytes: c.doneBytes.Load(), Failed: c.failed.Load(), LocalFiles: c.localFiles.Load(), LocalBytes: c.localBytes.Load()}
}

// hsmRestore restores every released file named (or, Recursive, below a
// named directory) with Parallel files at once, streaming progress
// snapshots and failures, and ends when every file's data is local (or
// failed): `ferry hsm restore` returns when the data is there.
func (d *Daemon) hsmRestore(w http.ResponseWriter, r *http.Request, req api.HSMRequest) {
	par := req.Parallel
	if par <= 0 {
		par = DefaultRestoreParallel
	}
	par = min(par, 64)
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	var ev api.HSMEvent
	c := &restoreCounts{}
	snapshot := c.snapshot
	failures := make(chan api.HSMFile)
	g, ctx := errgroup.WithContext(r.Context())
	fail := func(f api.HSMFile) {
		c.failed.Add(1)
		select {
		case failures <- f:
		case <-ctx.Done():
		}
	}
	jobs := make(chan restoreJob, 4*par)
	g.Go(func() error {
		defer close(jobs)
		for _, p := range req.Paths {
			rel, err := d.relPath(p)
			if err == nil {
				err = d.ensureListed(ctx, rel)
			}
			if err != nil {
				fail(fileError(p, err))
				continue
			}
			if err := d.planRestore(ctx, p, rel, req.Recursive, true, jobs, fail, c); err != nil {
				return err
			}
		}
		return nil
	})
	for range par {
		g.Go(func() error {
			for j := range jobs {
				err := d.imp.Restore(ctx, j.rel, func(n int64) { c.doneBytes.Add(n) })
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					fail(fileError(j.path, err))
					continue
				}
				c.doneFiles.Add(1)
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	write := func(e api.HSMEvent) {
		enc.Encode(e)
		if flusher != nil {
			flusher.Flush()
		}
	}
	for {
		select {
		case f := <-failures:
			ev = snapshot()
			ev.File = &f
			write(ev)
		case <-tick.C:
			write(snapshot())
		case err := <-done:
			ev = snapshot()
			ev.Done = true
			if err != nil && r.Context().Err() == nil {
				ev.File = &api.HSMFile{Error: err.Error()}
				ev.Failed++
			}
			write(ev)
			return
		}
	}
}

// planRestore sends the released regular files at rel (and below it, when
// recursive) to jobs, counting them in the totals (and the regular files
// already local in the local counts). Directories are listed
// as they are walked (a tree never looked at is imported first), a batch
// of entries at a time: memory does not grow with the tree.
func (d *Daemon) planRestore(ctx context.Context, path, rel string, recursive, top bool, jobs chan<- restoreJob, fail func(api.HSMFile), c *restoreCounts) error {
	fi, err := d.store.Lstat(rel)
	if err != nil {
		fail(fileError(path, err))
		return nil
	}
	switch fi.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		st, err := d.store.GetState(rel)
		if err != nil && !errors.Is(err, store.ErrNoState) {
			fail(fileError(path, err))
			return nil
		}
		if st.Flags&hsm.Released == 0 {
			c.localFiles.Add(1)
			c.localBytes.Add(fi.Size)
			return nil // already local
		}
		c.totalFiles.Add(1)
		c.totalBytes.Add(fi.Size)
		select {
		case jobs <- restoreJob{path: path, rel: rel}:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	case unix.S_IFDIR:
		if !recursive {
			if top {
				fail(api.HSMFile{Path: path, Error: path + " is a directory: use ferry hsm restore -r to restore every file below it", Errno: "Is a directory"})
			}
			return nil
		}
	default:
		return nil // symlinks and special files have no data to restore
	}
	if err := d.imp.EnsureListed(ctx, rel); err != nil {
		fail(fileError(path, err))
		return nil
	}
	dr, err := d.store.Readdir(rel)
	if err != nil {
		fail(fileError(path, err))
		return nil
	}
	defer dr.Close()
	for {
		ents, err := dr.Next(256)
		for _, e := range ents {
			crel := e.Name
			if rel != "." {
				crel = rel + "/" + e.Name
			}
			if err := d.planRestore(ctx, path+"/"+e.Name, crel, true, false, jobs, fail, c); err != nil {
				return err
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			fail(fileError(path, err))
			return nil
		}
		if len(ents) == 0 || err != nil {
			return nil
		}
	}
}
