package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
)

func timeOf(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// Restore fetches all missing data of released file rel (ferry hsm
// restore) in GETs of aheadRun bytes, window/aheadRun+1 of them at a
// time; progress(n), if not nil, is called after each n bytes landed and
// were committed (from one goroutine at a time). A file that is not released: nil at once.
func (im *Importer) Restore(ctx context.Context, rel string, progress func(n int64)) error {
	st, err := im.st.GetState(rel)
	if errors.Is(err, store.ErrNoState) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Flags.Has(hsm.Released) {
		return nil
	}
	if err := hsm.CheckRestore(rel, st.Flags); err != nil {
		return err
	}
	f, err := im.st.OpenFile(rel, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	it, err := im.getItem(rel, f)
	if err != nil {
		return err
	}
	defer im.putItem(it)

	moved := &atomic.Int64{}
	var pmu sync.Mutex // progress is called by one goroutine at a time
	im.rmu.Lock()
	im.restores[rel] = moved
	im.rmu.Unlock()
	defer func() {
		im.rmu.Lock()
		delete(im.restores, rel)
		im.rmu.Unlock()
	}()

	// Pieces of aheadRun bytes, each one GET (fewer, longer GETs cost
	// the server less), window/aheadRun+1 in flight: as one piece is
	// committed the next starts.
	chunk := st.Chunks.ChunkSize()
	piece := max(aheadRun/chunk, 1) * chunk
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(im.window()/aheadRun) + 1)
	for off := int64(0); off < st.Size && gctx.Err() == nil; off += piece {
		n := min(piece, st.Size-off)
		g.Go(func() error {
			if err := it.ensure(gctx, off, n, false, true, aheadRun); err != nil {
				return err
			}
			moved.Add(n)
			if progress != nil {
				pmu.Lock()
				progress(n)
				pmu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if st.Size == 0 {
		return it.ensure(ctx, 0, 0, false, true, aheadRun)
	}
	return nil
}

// Release drops the local data of rel (ferry hsm release): only an
// archived, clean, not-in-use regular file (hsm.Release's rules, with
// InUse for "open"); otherwise an *hsm.Error that says why. The file
// becomes a stub again: released exists archived, an empty chunk map, its
// blocks punched out.
//
// Order (invariant 3, docs/invariants.md): the state is marked released with
// an empty map and made durable first, and only then are the blocks punched.
// A crash in between leaves a released file whose data is still there, which
// is fetched again on read: wasteful, never zeros read as data.
func (im *Importer) Release(ctx context.Context, rel string) error {
	a, _, ok := im.assocFor(rel)
	if !ok {
		return &hsm.Error{Op: "release", Path: rel, Err: hsm.ErrLocalOnly}
	}
	f, err := im.st.OpenFile(rel, unix.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := fstat(f, &fst); err != nil {
		return err
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("release %s: not a regular file", rel)
	}
	// Fetches of the file (readahead, commits still running after the
	// reader left) finish first; while the state changes and the blocks
	// are punched the item's lock keeps new ones from starting, so no
	// fetched range can be marked local in the new, empty map after its
	// bytes were punched (invariant 3).
	it, err := im.getItem(rel, f)
	if err != nil {
		return err
	}
	defer im.putItem(it)
	if err := it.drain(ctx); err != nil {
		return err
	}
	done, err := im.releaseLocked(a, rel, f, &fst)
	it.mu.Unlock()
	if err != nil || !done {
		return err
	}
	im.n.released.Add(1)
	if im.cfg.Invalidate != nil {
		im.cfg.Invalidate(rel) // not under it.mu: the kernel may be in a read of it
	}
	return nil
}

// releaseLocked is Release's work with the item's lock held; done is false
// when the file was released already.
func (im *Importer) releaseLocked(a *dra.Assoc, rel string, f *os.File, fst *unix.Stat_t) (done bool, err error) {
	inUse := im.cfg.InUse != nil && im.cfg.InUse(rel)
	var was bool
	_, err = im.st.UpdateFileState(f, func(st *store.State) error {
		if st.Flags.Has(hsm.Released) {
			was = true
			return errors.New("already released") // nothing to write
		}
		g, err := hsm.Release(rel, st.Flags, inUse)
		if err != nil {
			return err
		}
		if fst.Size != st.Size {
			return fmt.Errorf("release %s: the file has %d bytes but its archived object %d; export it first", rel, fst.Size, st.Size)
		}
		m, err := store.NewBitmap(st.Size, im.chunkFor(a, st.Size))
		if err != nil {
			return err
		}
		st.Flags, st.Chunks = g, m
		return nil
	})
	if was {
		return false, nil
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		return false, he // the reason, without the store's wrapping
	}
	if err != nil {
		return false, err
	}
	if err := unix.Fsync(int(f.Fd())); err != nil {
		return false, fmt.Errorf("release %s: fsync state: %w", rel, err)
	}
	if fst.Size > 0 {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, fst.Size); err != nil {
			// The state already says released: reads fetch again; only
			// the space is not given back.
			im.log.Warn("release: cannot punch out the data", "path", rel, "err", err)
		}
	}
	return true, nil
}

// Action reports what HSM action runs on rel now: RESTORE running with the
// bytes moved while a Restore of it runs, else NOOP.
func (im *Importer) Action(rel string) hsm.CurrentAction {
	im.rmu.Lock()
	m, ok := im.restores[rel]
	im.rmu.Unlock()
	if ok {
		return hsm.Running(hsm.ActionRestore, uint64(m.Load()))
	}
	return hsm.Noop
}

// drain waits until no fetch of the item is in flight and returns with
// it.mu held.
func (it *item) drain(ctx context.Context) error {
	for {
		it.mu.Lock()
		var wait []*fetch
		for _, fe := range it.inflight {
			wait = append(wait, fe)
		}
		if len(wait) == 0 {
			return nil
		}
		it.mu.Unlock()
		for _, fe := range wait {
			select {
			case <-fe.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// Exclusive runs fn while no fetch of the file open as f is in flight and
// none can start: fetches running are waited for (they finish on their
// own), and the file's hydration lock is held while fn runs. The mount
// truncates a released file this way (O_TRUNC, truncate to 0), so a fetch
// can never write object bytes into a file that was emptied meanwhile.
// fn must not block on the network.
func (im *Importer) Exclusive(ctx context.Context, rel string, f *os.File, fn func() error) error {
	it, err := im.getItem(rel, f)
	if err != nil {
		return err
	}
	defer im.putItem(it)
	if err := it.drain(ctx); err != nil {
		return err
	}
	defer it.mu.Unlock()
	return fn()
}
