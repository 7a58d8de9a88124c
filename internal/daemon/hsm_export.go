package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// archiveParallel bounds the files one archive request exports at once.
const archiveParallel = 8

// hsmArchive exports each named path now, whatever its association's
// AutoExportPolicy (lfs hsm_archive; exporter.Export). Answers are in
// request order, a file's failure in its entry. An archive can take longer
// than a client waits for the response headers (a large file), so the
// headers go out at once and the body when every file is done.
func (d *Daemon) hsmArchive(w http.ResponseWriter, r *http.Request, req api.HSMRequest) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	out := api.HSMResponse{Files: make([]api.HSMFile, len(req.Paths))}
	var g errgroup.Group
	g.SetLimit(archiveParallel)
	for i, p := range req.Paths {
		g.Go(func() error {
			out.Files[i] = d.archiveOne(r.Context(), p)
			return nil
		})
	}
	g.Wait()
	json.NewEncoder(w).Encode(out)
}

func (d *Daemon) archiveOne(ctx context.Context, path string) api.HSMFile {
	rel, err := d.relPath(path)
	if err != nil {
		return api.HSMFile{Path: path, Error: err.Error(), Errno: "Invalid argument"}
	}
	if err := d.ensureListed(ctx, rel); err != nil {
		return fileError(path, err)
	}
	lst, err := d.store.Lstat(rel)
	if err != nil {
		return fileError(path, fmt.Errorf("cannot archive %s: %w", path, err))
	}
	if store.Special(lst.Mode) {
		f := fileError(path, fmt.Errorf("cannot archive %s: a FIFO, socket or device has no content a repository can hold; it stays in the store, never archived: %w", path, unix.EOPNOTSUPP))
		f.Flags = uint32(hsm.NoArchive)
		return f
	}
	if _, err := d.exp.Export(ctx, rel); err != nil {
		return fileError(path, fmt.Errorf("cannot archive %s: %w", path, err))
	}
	st, _ := d.store.GetState(rel)
	return api.HSMFile{Path: path, Flags: uint32(st.Flags)}
}

// action is what hsm action shows for rel: the importer's restore, else
// an export uploading it (ARCHIVE running, bytes moved), else a pending
// journal entry for it (ARCHIVE waiting), else NOOP.
func (d *Daemon) action(ctx context.Context, rel string) hsm.CurrentAction {
	if a := d.imp.Action(rel); a != hsm.Noop {
		return a
	}
	if moved, ok := d.exp.Progress(rel); ok {
		return hsm.Running(hsm.ActionArchive, uint64(moved))
	}
	p := keypath.ToCatalog(rel)
	if es, err := d.cat.Pending(ctx, p, "", 1); err == nil && len(es) == 1 && es[0].Path == p && !es[0].IsParked() {
		return hsm.Waiting(hsm.ActionArchive)
	}
	return hsm.Noop
}

// hsmWait is the drain barrier of `ferry hsm wait`: it streams the number
// of exports still pending under the paths every Config.WaitProgressEvery
// (a second) and ends when everything under them that was closed before
// the request is exported (exporter.Wait, one path after the other), or
// when the request's Timeout passes — then the last line lists what is
// still pending. Entries parked after a permanent failure do not hold the
// wait up; they are listed as failures with their cause.
func (d *Daemon) hsmWait(w http.ResponseWriter, r *http.Request, req api.HSMRequest) {
	if req.Timeout < 0 {
		writeError(w, api.BadRequestf("hsm wait: Timeout %v is negative: give seconds, or 0 to wait until everything is exported", req.Timeout))
		return
	}
	prefixes := make([]string, 0, len(req.Paths))
	for _, p := range req.Paths {
		rel, err := d.relPath(p)
		if err != nil {
			writeError(w, api.BadRequestf("hsm wait: %v", err))
			return
		}
		prefixes = append(prefixes, keypath.ToCatalog(rel))
	}
	prefixes = outermost(prefixes)
	ctx := r.Context()
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout*float64(time.Second)))
		defer cancel()
	}
	barrier, err := d.cat.JournalSeq(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	write := func(ev api.WaitEvent) {
		enc.Encode(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
	var cur atomic.Int64 // the prefix being waited for
	count := func() int64 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var n int64
		rest := prefixes[min(int(cur.Load()), len(prefixes)):]
		for _, p := range rest[:min(len(rest), 64)] {
			c, err := d.cat.PendingCount(cctx, p, barrier)
			if err == nil {
				n += c
			}
		}
		return n
	}
	write(api.WaitEvent{Pending: count()})

	done := make(chan api.WaitEvent, 1)
	go func() { done <- d.waitAll(ctx, prefixes, barrier, &cur) }()
	tick := time.NewTicker(d.cfg.WaitProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			write(api.WaitEvent{Pending: count()})
		case ev := <-done:
			ev.Done = true
			write(ev)
			return
		}
	}
}

// waitAll waits for every prefix in turn and returns the last event of a
// Wait stream (without Done).
func (d *Daemon) waitAll(ctx context.Context, prefixes []string, barrier int64, cur *atomic.Int64) api.WaitEvent {
	var ev api.WaitEvent
	var parked []catalog.JournalEntry
	for i, p := range prefixes {
		cur.Store(int64(i))
		res, err := d.exp.Wait(ctx, p)
		parked = append(parked, res.Parked...)
		if err == nil {
			continue
		}
		if ctx.Err() == nil {
			ev.Error = err.Error()
			break
		}
		// The timeout (or the client) ended the wait: say what is still
		// pending, under this prefix and the ones not waited for yet.
		ev.TimedOut = true
		pending := res.Pending
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		for _, q := range prefixes[i+1:] {
			if len(pending) >= api.WaitListLimit {
				break
			}
			pending = append(pending, d.pendingBefore(lctx, q, barrier, api.WaitListLimit-len(pending))...)
			pq, _ := d.cat.ParkedEntries(lctx, q, "", api.WaitListLimit)
			parked = append(parked, pq...)
		}
		cancel()
		ev.Pending = int64(len(pending))
		ev.PendingFiles = d.waitFiles(pending)
		break
	}
	ev.Failed = d.waitFiles(parked)
	return ev
}

// pendingBefore lists up to limit entries under prefix that hold content
// appended at or before barrier and are not parked.
func (d *Daemon) pendingBefore(ctx context.Context, prefix string, barrier int64, limit int) []catalog.JournalEntry {
	var out []catalog.JournalEntry
	after := ""
	for len(out) < limit {
		es, err := d.cat.Pending(ctx, prefix, after, 500)
		if err != nil {
			return out
		}
		for _, e := range es {
			if e.FirstSeq <= barrier && !e.IsParked() && len(out) < limit {
				out = append(out, e)
			}
		}
		if len(es) < 500 {
			return out
		}
		after = es[len(es)-1].Path
	}
	return out
}

// waitFiles turns journal entries into the paths a user knows.
func (d *Daemon) waitFiles(es []catalog.JournalEntry) []api.WaitFile {
	out := make([]api.WaitFile, 0, min(len(es), api.WaitListLimit))
	for _, e := range es[:min(len(es), api.WaitListLimit)] {
		p := d.cfg.MountPoint
		if e.Path != "" {
			p += "/" + e.Path
		}
		f := api.WaitFile{Path: p, Kind: string(e.Kind), Attempts: e.Attempts, LastError: e.LastError}
		if !e.EnqueuedAt.IsZero() {
			f.Pending = api.TimePtr(e.EnqueuedAt)
		}
		out = append(out, f)
	}
	return out
}

// outermost drops duplicate prefixes and those inside another one ("" holds
// everything), keeping the order of the rest.
func outermost(prefixes []string) []string {
	var out []string
	for i, p := range prefixes {
		if slices.Index(prefixes, p) == i && !inAnother(p, prefixes) {
			out = append(out, p)
		}
	}
	return out
}

func inAnother(p string, prefixes []string) bool {
	for _, q := range prefixes {
		if q != p && (q == "" || strings.HasPrefix(p, q+"/")) {
			return true
		}
	}
	return false
}
