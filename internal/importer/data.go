package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// fileKey identifies a store inode. An item keeps a descriptor of its
// inode open, so the number cannot be reused while the item exists.
type fileKey struct{ dev, ino uint64 }

// item is the hydration state of one released file (rclone vfscache's
// item): which chunks are being fetched, who waits for them, where the
// reader was, and the read-write descriptor fetched bytes are written
// through. The chunk map itself lives in the file's state (xattr or
// catalog), which is re-read under mu at every call, so a map written by
// anyone else is never overridden by a stale copy.
type item struct {
	im  *Importer
	key fileKey
	wf  *os.File // read-write descriptor of the inode
	rel string   // path at the first call (for the object key and re-import)

	users int // EnsureData calls and fetches holding the item (im.imu)

	// wmu serialises the item's writes of fetched bytes with the restore
	// of the file's mtime around each (see writeAt).
	wmu sync.Mutex

	mu       sync.Mutex
	inflight map[int64]*fetch // chunk index → the fetch that brings it
	// The reader's access pattern (follow): the current sequential run
	// [seqStart, seqEnd), how far readahead has asked for in it (raEnd),
	// and the most it may fetch ahead (raMax, bytes: halved when a run
	// ends with bytes fetched ahead that nobody read, doubled as a run
	// outgrows it).
	seqStart, seqEnd int64
	raEnd, raMax     int64
	changed          error   // the object changed: every read fails
	gaveUp           *gaveUp // the last fetch given up after FetchTimeout
	moved            int64   // bytes landed (for hsm action)
	reimport         bool    // a re-import was started

	// Commits of landed ranges, batched: see commit.
	cmu        sync.Mutex
	pending    []pendingCommit
	committing bool
}

// gaveUp is a fetch of chunks [first, end) given up after FetchTimeout.
// A read of those chunks within failFast of it gets its error at once:
// when a readahead request fails the kernel retries the page with a read
// of its own straight away, which would otherwise wait a second bound.
type gaveUp struct {
	at         time.Duration // Importer.now
	first, end int64
	err        error
}

// failFast: see gaveUp. Short, so the next read by a user (or a program
// retrying) goes to the repository again.
const failFast = time.Second

// pendingCommit is a landed range waiting for its fdatasync and mark.
type pendingCommit struct {
	r    store.Range
	done chan error
}

// fetch is one ranged GET of chunks [first, end) of an item, streamed
// into the file in order. Each chunk has its own landed signal (its bytes
// are in the store file, readable: a reader waiting for it may go on,
// while the rest of the GET still streams); the fetch has one done (the
// landed chunks fdatasync'ed and marked in the chunk map: durable). A
// reader needs only landed — the bytes it reads are the object's, of the
// one version If-Match allowed — so it never waits for an fdatasync;
// Restore and the restore before a write wait for done. The chunks stay in
// the item's inflight map until done, so they are never fetched twice.
type fetch struct {
	first, end int64
	landed     []chan struct{} // chunk first+i landed (or failed)
	lerr       []error         // set before landed[i] is closed
	nlanded    int             // landed[:nlanded] are closed (the fetch's goroutine only)
	done       chan struct{}
	err        error // set before done is closed

	// last is when the fetch began or last received a byte from the
	// repository (Importer.now): FetchTimeout counts from it.
	last atomic.Int64
}

// wait is a chunk of a fetch a caller waits for: chunks land in order, so
// waiting for the last chunk needed of a fetch covers the ones before it.
type wait struct {
	fe *fetch
	i  int // index into fe.landed
}

// getItem returns the item of the inode f is open on, creating it.
func (im *Importer) getItem(rel string, f *os.File) (*item, error) {
	it, err := im.lookupItem(rel, f)
	if err != nil {
		return nil, err
	}
	// The name may have changed since the item was made (a rename): its
	// fetches read the object of the current name (or its origin).
	it.mu.Lock()
	it.rel = rel
	it.mu.Unlock()
	return it, nil
}

// lookupItem returns the item of f's inode, made if there is none.
func (im *Importer) lookupItem(rel string, f *os.File) (*item, error) {
	var st unix.Stat_t
	if err := fstat(f, &st); err != nil {
		return nil, err
	}
	k := fileKey{st.Dev, st.Ino}
	im.imu.Lock()
	defer im.imu.Unlock()
	if it, ok := im.items[k]; ok {
		it.users++
		return it, nil
	}
	// Fetched bytes are written through a descriptor of our own: the
	// reader's may be read-only. /proc/self/fd reopens the same inode,
	// whatever its name is now (also a file of mode 0444 when the daemon
	// is its owner without CAP_DAC_OVERRIDE: store.Reopen).
	wf, err := im.st.Reopen(f, unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("open %s for hydration: %w", rel, err)
	}
	if len(im.items) >= maxItems {
		for k, it := range im.items {
			if it.users == 0 {
				it.wf.Close()
				delete(im.items, k)
			}
		}
	}
	it := &item{im: im, key: k, wf: wf, rel: rel, users: 1, inflight: map[int64]*fetch{}, seqEnd: -1}
	im.items[k] = it
	return it, nil
}

// putItem drops a hold on it. Idle items stay cached (bounded by maxItems)
// so a sequential reader keeps its readahead state between reads.
func (im *Importer) putItem(it *item) {
	im.imu.Lock()
	it.users--
	im.imu.Unlock()
}

func fstat(f *os.File, st *unix.Stat_t) error {
	return store.WithFd(f, func(fd int) error { return unix.Fstat(fd, st) })
}

// EnsureData makes bytes [off, off+n) of file rel, open in the daemon as f,
// local before the caller reads them from f. A file without the released flag
// needs nothing. Otherwise the missing chunks are fetched by ranged GET with
// If-Match on the stub's ETag (a chunk already being fetched is waited for,
// never fetched twice), written into the file, fdatasync'ed and only then
// marked local (store.CommitChunks: invariant 3 in docs/invariants.md, a read
// never returns zeros from a hole). A sequential reader starts readahead of
// the following chunks. When the map is complete the file becomes
// `exists archived`. A changed object (412) fails the read with EIO (a
// *ReadError) and the stub is re-imported if it is clean.
func (im *Importer) EnsureData(ctx context.Context, rel string, f *os.File, off, n int64) error {
	// The common case, a local file, costs one fgetxattr.
	if st, err := im.st.FileState(f); errors.Is(err, store.ErrNoState) || err == nil && !st.Flags.Has(hsm.Released) {
		return nil
	}
	it, err := im.getItem(rel, f)
	if err != nil {
		return err
	}
	defer im.putItem(it)
	return it.ensure(ctx, off, n, true, false, maxRun)
}

// slack is how far a read may start from where the previous one ended and
// still continue its sequential run: the kernel sends a reader's readahead
// requests in parallel, and they arrive a little out of order.
const slack = 1 << 20

// follow records a read of [off, off+n) in the item's access pattern and
// returns how many bytes after the run's end to have fetched (a multiple
// of chunk; 0: none); it.mu is held.
//
// The window is half the run so far, at least seqWindow, at most raMax: a
// read at a random place (a run shorter than seqRun) fetches nothing
// ahead, a run of 2 MiB or less 1 MiB, a longer one half its length, up
// to raMax. A run that ends with bytes fetched ahead past where it
// stopped halves raMax (down to 2 chunks, at least 256 KiB); a run of
// 8·raMax doubles it, up to the importer's window (Readahead × ChunkSize),
// where a new item starts. So a reader of whole variables of a NetCDF file
// fetches at most half a variable beyond each (less once runs keep ending
// early: about a quarter of a run, for runs of one length), and `cat` has
// the full window after reading twice as much.
func (it *item) follow(off, n, chunk int64) int64 {
	top := it.im.window()
	floor := min(max(2*chunk, 256<<10), top)
	if it.raMax == 0 {
		it.raMax = top
	}
	if it.seqEnd >= 0 && off >= it.seqEnd-max(chunk, slack) && off <= it.seqEnd+max(chunk, slack) {
		it.seqEnd = max(it.seqEnd, off+n)
	} else {
		if it.raEnd > it.seqEnd+chunk {
			it.raMax = max(it.raMax/2, floor)
		}
		it.seqStart, it.seqEnd, it.raEnd = off, off+n, 0
	}
	run := it.seqEnd - it.seqStart
	for run >= 8*it.raMax && it.raMax < top {
		it.raMax = min(2*it.raMax, top)
	}
	if run < seqRun {
		return 0
	}
	return min(it.raMax, max(run/2, seqWindow)) / chunk * chunk
}

// seqRun is how long a run must be to be read ahead of: two of the
// kernel's 128 KiB requests. A read at a random place (HDF5's metadata
// reads are 8 bytes to a few KiB) fetches only its chunks. seqWindow is
// the smallest window of a run (unless raMax is smaller): with less, the
// GETs at the start of every run would be a chunk or two each.
const (
	seqRun    = 256 << 10
	seqWindow = 1 << 20
)

// ensure brings [off, off+n) in and waits for it to land (durable: to be
// committed); readahead says whether the read is a reader's (followed,
// and a sequential run starts readahead); run is the most bytes one GET of
// the missing ones asks for (at least one chunk).
func (it *item) ensure(ctx context.Context, off, n int64, readahead, durable bool, run int64) error {
	im := it.im
	it.mu.Lock()
	if it.changed != nil {
		it.mu.Unlock()
		return it.changed
	}
	st, err := im.st.FileState(it.wf)
	if errors.Is(err, store.ErrNoState) {
		it.mu.Unlock()
		return nil // a local file
	}
	if err != nil {
		it.mu.Unlock()
		return err
	}
	if !st.Flags.Has(hsm.Released) {
		it.mu.Unlock()
		return nil
	}
	if st.Chunks == nil {
		it.mu.Unlock()
		return fmt.Errorf("%s: released without a chunk map: %w", it.rel, store.ErrCorruptState)
	}
	if err := hsm.CheckRestore(it.rel, st.Flags); err != nil {
		it.mu.Unlock()
		return &ReadError{Code: "Lost", Path: it.rel, Err: err}
	}
	a, src, err := it.source(st.Origin)
	if err != nil {
		it.mu.Unlock()
		return err
	}
	chunk := st.Chunks.ChunkSize()
	run = max(run/chunk, 1) // in chunks
	var waits []wait
	missing := st.Chunks.Has(store.Range{Off: off, Len: n})
	if len(missing) == 0 && st.Chunks.Complete() {
		// A map with nothing to fetch (an empty object): finish it.
		it.mu.Unlock()
		_, err := im.st.CommitChunks(it.wf, store.Range{})
		return err
	}
	if g := it.gaveUp; g != nil && im.now()-g.at < failFast {
		for _, r := range missing {
			if r.Off/chunk < g.end && (r.End()+chunk-1)/chunk > g.first {
				it.mu.Unlock()
				return g.err
			}
		}
	}
	if len(missing) > 0 {
		// Fetched bytes take space: not while the catalog runs on the
		// space it keeps for a full disk (catalog.SpaceKeeper).
		if sk, ok := im.cat.(catalog.SpaceKeeper); ok {
			if err := sk.Room(); err != nil {
				it.mu.Unlock()
				return err
			}
		}
	}
	for _, r := range missing {
		first, end := r.Off/chunk, (r.End()+chunk-1)/chunk
		for c := first; c < end; {
			if fe, ok := it.inflight[c]; ok {
				im.n.dedup.Add(1)
				waits = append(waits, wait{fe, int(min(fe.end, end) - 1 - fe.first)})
				c = fe.end
				continue
			}
			e := c + 1
			for e < end && e-c < run {
				if _, ok := it.inflight[e]; ok {
					break
				}
				e++
			}
			fe := it.start(a, src, st, c, e)
			waits = append(waits, wait{fe, int(e - 1 - fe.first)})
			c = e
		}
	}
	if readahead {
		if w := it.follow(off, n, chunk); w > 0 {
			it.readahead(a, src, st, w)
		}
	}
	it.mu.Unlock()

	for _, w := range waits {
		ch, errp := w.fe.landed[w.i], &w.fe.lerr[w.i]
		if durable {
			ch, errp = w.fe.done, &w.fe.err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if *errp != nil {
			return *errp
		}
	}
	return nil
}

// maxRun is the most bytes one demand GET asks for: a large read gets
// its chunks from parallel GETs (a reader waits for its last chunk).
const maxRun = 16 << 20

// aheadRun is the most bytes one readahead (or Restore) GET asks for:
// 32 MiB. Each GET costs the server about as much CPU as a few MiB of
// body (MinIO spent 2x the CPU serving 4 MiB readahead GETs as the peers'
// 128 MiB streams in bench/mount), and since a GET streams into the file
// chunk by chunk, a reader waiting for its first chunk is released as
// soon as that chunk lands, not when the GET ends.
const aheadRun = 32 << 20

// window is the most bytes a sequential reader of one file has fetched
// ahead of it: Readahead chunks of ChunkSize (64 MiB by default).
func (im *Importer) window() int64 { return int64(im.cfg.Readahead) * im.cfg.ChunkSize }

// readahead starts fetches of what is missing and not in flight in the
// window bytes after the current run's end; it.mu is held. Nothing starts
// until half the window (a chunk at least, aheadRun at most) is to be
// fetched, or the file's end is in the window, and then one GET (of at
// most aheadRun) asks for all of it: about two GETs are in flight per
// reader, and while the window slides a chunk at a time the GETs stay
// long. raEnd remembers how far readahead has asked, so each chunk of a
// run is looked at once.
func (it *item) readahead(a *dra.Assoc, src string, st store.State, window int64) {
	im := it.im
	chunk, size := st.Chunks.ChunkSize(), st.Size
	from := (max(it.raEnd, it.seqEnd) + chunk - 1) / chunk * chunk
	to := min(it.seqEnd+window, size)
	if to < size {
		to = to / chunk * chunk
	}
	most := max(aheadRun/chunk, 1)           // chunks
	get := min(max(window/2/chunk, 1), most) // chunks
	if to <= from || to-from < get*chunk && to < size {
		return
	}
	for _, r := range st.Chunks.Has(store.Range{Off: from, Len: to - from}) {
		first, end := r.Off/chunk, (r.End()+chunk-1)/chunk
		for c := first; c < end; {
			if fe, ok := it.inflight[c]; ok {
				c = fe.end
				continue
			}
			e := c + 1
			for e < end && e-c < most {
				if _, ok := it.inflight[e]; ok {
					break
				}
				e++
			}
			it.start(a, src, st, c, e)
			im.n.readahead.Add(e - c)
			im.n.readaheadBytes.Add(min(e*chunk, size) - c*chunk)
			c = e
		}
	}
	it.raEnd = to
}

// start launches the fetch of chunks [first, end); it.mu is held.
func (it *item) start(a *dra.Assoc, key string, st store.State, first, end int64) *fetch {
	im := it.im
	fe := &fetch{first: first, end: end, landed: make([]chan struct{}, end-first), lerr: make([]error, end-first), done: make(chan struct{})}
	for c := first; c < end; c++ {
		it.inflight[c] = fe
		fe.landed[c-first] = make(chan struct{})
	}
	im.imu.Lock()
	it.users++
	im.imu.Unlock()
	chunk := st.Chunks.ChunkSize()
	r := store.Range{Off: first * chunk, Len: min(end*chunk, st.Size) - first*chunk}
	rel := it.rel
	fe.last.Store(int64(im.now()))
	im.fmu.Lock()
	im.fetching[fe] = struct{}{}
	im.fmu.Unlock()
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		defer im.putItem(it)
		defer func() {
			im.fmu.Lock()
			delete(im.fetching, fe)
			im.fmu.Unlock()
		}()
		var alt func() (*dra.Assoc, string, bool)
		if st.Origin != "" {
			alt = it.currentSource(a, key)
		}
		// land releases the readers of the chunks whose bytes are all
		// in the file once written bytes [r.Off, r.Off+w) are.
		land := func(w int64, err error) {
			n := fe.nlanded
			for n < len(fe.landed) && (err != nil || min((first+int64(n)+1)*chunk, st.Size) <= r.Off+w) {
				n++
			}
			if n == fe.nlanded {
				return
			}
			it.mu.Lock()
			if err == nil {
				// Counted before the readers are released, so a reader
				// that looks at Stats sees its bytes.
				b := min((first+int64(n))*chunk, st.Size) - min((first+int64(fe.nlanded))*chunk, st.Size)
				it.moved += b
				im.n.bytes.Add(b)
			}
			for i := fe.nlanded; i < n; i++ {
				fe.lerr[i] = err
			}
			it.mu.Unlock()
			for i := fe.nlanded; i < n; i++ {
				close(fe.landed[i])
			}
			fe.nlanded = n
		}
		err := it.get(fe, a, key, rel, st.ETag, r, alt, func(w int64) { land(w, nil) })
		// The chunks that landed before a failure are the object's bytes
		// of the one version: they are committed like a whole fetch.
		ok := store.Range{Off: r.Off, Len: min((first+int64(fe.nlanded))*chunk, st.Size) - r.Off}
		if err != nil {
			land(0, err)
		}
		if ok.Len > 0 || r.Len == 0 && err == nil {
			// Invariant 3: marked local only after the fdatasync.
			if cerr := it.commit(ok); cerr != nil {
				im.log.Error("cannot commit fetched chunks; they will be fetched again", "path", rel, "range", ok.String(), "err", cerr)
				if err == nil {
					err = cerr
				}
			}
		}
		it.mu.Lock()
		for c := first; c < end; c++ {
			delete(it.inflight, c)
		}
		if re := (*ReadError)(nil); errors.As(err, &re) && re.Code == CodeFetchTimeout {
			it.gaveUp = &gaveUp{at: im.now(), first: first, end: end, err: err}
		}
		fe.err = err
		it.mu.Unlock()
		close(fe.done)
	}()
	return fe
}

// source returns the association and object key of the item's file: of
// its origin when it has one (a file renamed through the mount whose
// object the exporter has not moved yet: store.State.Origin), else of its
// current path.
func (it *item) source(origin string) (*dra.Assoc, string, error) {
	at := it.rel
	if origin != "" {
		at = origin
	}
	a, in, ok := it.im.assocFor(at)
	if !ok {
		return a, "", &ReadError{Code: "NoAssociation", Path: it.rel, Err: errors.New("released file outside every data repository association: its data cannot be fetched")}
	}
	if !a.Reads() {
		return a, "", &ReadError{Code: "AssociationUnavailable", Path: it.rel, Err: fmt.Errorf("association %s is %s: its repository is not read", a.ID(), a.API.Lifecycle)}
	}
	key, err := keypath.ToKey(a.Prefix, in, keypath.File)
	if err != nil {
		return a, "", &ReadError{Code: keypath.CodeOf(err), Path: it.rel, Err: err}
	}
	return a, key, nil
}

// currentSource returns the source of the item's current path when it is
// not (a, key), the origin's: after a rename the exporter moves the object
// to the new name (same content, so the same ETag's If-Match holds it).
func (it *item) currentSource(a *dra.Assoc, key string) func() (*dra.Assoc, string, bool) {
	return func() (*dra.Assoc, string, bool) {
		it.mu.Lock()
		a2, key2, err := it.source("")
		it.mu.Unlock()
		return a2, key2, err == nil && (a2.Bucket != a.Bucket || key2 != key)
	}
}

// copyBuf is the size of the buffers fetched bodies are copied through:
// each is filled by reads from the connection and written to the store
// file with one pwrite. 256 KiB, the transport's read buffer (s3x), so a
// read bypasses bufio and the bytes are still in the CPU's cache when the
// pwrite copies them into the page cache. With 1 MiB buffers (up to
// Concurrency of them in flight) the cold read of 4 × 512 MiB through the
// mount took 1.3× as long and MinIO, sharing the last-level cache on 2
// cores, 1.4× the CPU: its own page-cache copies slowed down too
// (docs/benchmarks.md, "par4: the copy buffer"). 64–256 KiB measured alike.
const copyBuf = 256 << 10

// bufPool holds the copy buffers; at most Concurrency are in use.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// get fetches range r of the object into the file (not yet committed).
// alt, when set, names another place the same object may be (a renamed
// file's current key): tried when the first has no such object or another
// one (412), before the failure counts.
//
// landed is called with the bytes written so far after each write.
//
// A repository outage is bounded here (docs/architecture.md, "Repository
// outages"): an attempt that receives no byte for AttemptTimeout (no
// connection, no answer, a body that stopped) is abandoned; a failure that
// may pass (no connection, a reset, 5xx, 429, an abandoned attempt) is
// retried with backoff, resuming after the bytes already written (the
// If-Match keeps them of one version); the fetch gives up when it has
// received no byte for FetchTimeout: logged with the endpoint and the
// file, and its readers get EIO. The SDK's own retries are off for these
// GETs: they would retry refused connections for ~27 s and wait on a hung
// one without bound. The fetch runs under the importer's context, not a
// reader's: a reader that is interrupted stops waiting (EnsureData returns
// its context's error), and the fetch goes on for the others and the next
// read, within the same bound.
func (it *item) get(fe *fetch, a *dra.Assoc, key, rel, etag string, r store.Range, alt func() (*dra.Assoc, string, bool), landed func(int64)) error {
	im := it.im
	var (
		done     int64 // bytes of r written
		attempts int
		lastErr  error
		backoff  = firstBackoff
	)
	for {
		if err := im.acquireUntil(fe); err != nil {
			if im.ctx.Err() != nil {
				return im.ctx.Err() // Close
			}
			if lastErr == nil {
				lastErr = err
			}
			return it.timedOut(fe, a, key, rel, r, attempts, lastErr)
		}
		attempts++
		if attempts > 1 {
			im.n.retries.Add(1)
		}
		n, err := it.attempt(fe, a, key, etag, store.Range{Off: r.Off + done, Len: r.Len - done}, func(w int64) { landed(done + w) })
		<-im.req
		done += n
		if err == nil {
			return nil
		}
		if im.ctx.Err() != nil {
			return im.ctx.Err() // Close
		}
		err = im.s3.For(a.Access()).Explain(err, "get", a.Bucket, key)
		if c := s3x.CodeOf(err); alt != nil && (c == s3x.CodeNoSuchKey || c == s3x.CodePrecondition) {
			if a2, key2, ok := alt(); ok {
				a, key, alt = a2, key2, nil
				continue
			}
		}
		if !retryable(err) {
			return it.failed(a, key, rel, err)
		}
		lastErr = err
		quiet := im.now() - time.Duration(fe.last.Load())
		left := im.cfg.FetchTimeout - quiet
		if left <= 0 {
			return it.timedOut(fe, a, key, rel, r, attempts, lastErr)
		}
		im.log.Debug("fetch failed, retrying", "key", key, "path", rel, "attempt", attempts, "err", err)
		// Full jitter: fetches that failed together do not retry together.
		t := time.NewTimer(min(time.Duration(rand.Int64N(int64(backoff)))+time.Millisecond, left))
		select {
		case <-t.C:
		case <-im.ctx.Done():
			t.Stop()
			return im.ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// Backoff between attempts of a fetch: doubling from firstBackoff up to
// maxBackoff, each wait drawn at random below it. With a refused
// connection (each attempt fails at once) that is ~15 attempts in 60 s.
const (
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// acquireUntil takes a request slot for an attempt of fe, waiting at most
// until fe has received nothing for FetchTimeout (acquireWithin).
func (im *Importer) acquireUntil(fe *fetch) error {
	return im.acquireWithin(im.ctx, im.cfg.FetchTimeout-(im.now()-time.Duration(fe.last.Load())))
}

var errNoSlot = errors.New("every request slot is held by requests the repository does not answer")

// errAttemptStalled is the cause of an attempt abandoned by its watchdog.
var errAttemptStalled = errors.New("attempt stalled")

// attempt is one GET of range r (what is left of a fetch), streamed into
// the file; it returns the bytes written. A watchdog abandons it when no
// byte arrives for AttemptTimeout, before the response or within the body.
func (it *item) attempt(fe *fetch, a *dra.Assoc, key, etag string, r store.Range, landed func(int64)) (int64, error) {
	im := it.im
	ctx, cancel := context.WithCancelCause(im.ctx)
	defer cancel(nil)
	idle := im.AttemptTimeout()
	dog := time.AfterFunc(idle, func() { cancel(errAttemptStalled) })
	defer dog.Stop()
	stalled := func(err error) error {
		if errors.Is(context.Cause(ctx), errAttemptStalled) {
			// Not wrapped: the SDK's error says "context canceled",
			// which is not what happened (and would read as EINTR).
			return fmt.Errorf("no byte from %s for %v: attempt abandoned", im.s3.Endpoint, idle)
		}
		return err
	}
	im.n.get.Add(1)
	out, err := im.s3.For(a.Access()).S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket:  aws.String(a.Bucket),
		Key:     aws.String(key),
		Range:   aws.String(fmt.Sprintf("bytes=%d-%d", r.Off, r.End()-1)),
		IfMatch: aws.String(etag),
	}, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
	if err != nil {
		return 0, stalled(err)
	}
	defer out.Body.Close()
	heard := func() {
		dog.Reset(idle)
		fe.last.Store(int64(im.now()))
	}
	heard()
	got, err := it.copyAt(&heardReader{r: out.Body, heard: heard}, r, landed)
	if err != nil {
		return got, stalled(err)
	}
	if got != r.Len {
		return got, fmt.Errorf("get s3://%s/%s %v: the body ended after %d bytes", a.Bucket, key, r, got)
	}
	return got, nil
}

// heardReader calls heard after every read that returned bytes.
type heardReader struct {
	r     io.Reader
	heard func()
}

func (h *heardReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.heard()
	}
	return n, err
}

// retryable says whether a failed GET may succeed when tried again: yes
// unless the repository answered with a client error that another try
// gets again (no object, another object, no access, bad credentials, an
// archived object). Timeouts (408) and throttling (429) pass.
func retryable(err error) bool {
	switch s3x.CodeOf(err) {
	case s3x.CodeNoSuchKey, s3x.CodeNoSuchBucket, s3x.CodeAccessDenied, s3x.CodeBadCredentials,
		s3x.CodeNoCredentials, s3x.CodePrecondition, "InvalidObjectState", "InvalidRange":
		return false
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		s := re.HTTPStatusCode()
		return s >= 500 || s == 429 || s == 408 || s == 0
	}
	return true
}

// timedOut ends a fetch that received no byte for FetchTimeout: counted,
// logged with the endpoint and the file, and an EIO for its readers.
func (it *item) timedOut(fe *fetch, a *dra.Assoc, key, rel string, r store.Range, attempts int, last error) error {
	im := it.im
	im.n.timeouts.Add(1)
	quiet := (im.now() - time.Duration(fe.last.Load())).Round(time.Millisecond)
	im.log.Error("repository not answering: reads of the file fail with EIO",
		"endpoint", im.s3.Endpoint, "dra", a.ID(), "key", "s3://"+a.Bucket+"/"+key, "path", rel,
		"range", r.String(), "no_byte_for", quiet, "attempts", attempts, "fetch_timeout", im.cfg.FetchTimeout, "err", last)
	return &ReadError{Code: CodeFetchTimeout, Path: rel, Err: fmt.Errorf(
		"s3://%s/%s at %s sent nothing for %v (%d attempts; last: %v): check that the repository is up and reachable; the next read tries again (ferry mount --fetch-timeout sets this bound)",
		a.Bucket, key, im.s3.Endpoint, quiet, attempts, last)}
}

// commit marks range r local once its bytes, already written, are durable.
// Invariant 3: store.CommitRanges fdatasyncs before it marks. Commits are
// batched per file: the first fetch to arrive commits, and every range
// that lands while its fdatasync runs is committed by the next round in
// one fdatasync and one state update (a file fetched 8 chunks at a time
// costs a few syncs, not one per chunk). A range is only ever marked by a
// round that started after its bytes were written.
func (it *item) commit(r store.Range) error {
	pc := pendingCommit{r: r, done: make(chan error, 1)}
	it.cmu.Lock()
	it.pending = append(it.pending, pc)
	if it.committing {
		it.cmu.Unlock()
		return <-pc.done
	}
	it.committing = true
	for len(it.pending) > 0 {
		batch := it.pending
		it.pending = nil
		it.cmu.Unlock()
		rs := make([]store.Range, len(batch))
		for i, p := range batch {
			rs[i] = p.r
		}
		it.im.n.commits.Add(1)
		_, err := it.im.st.CommitRanges(it.wf, rs)
		for _, p := range batch {
			p.done <- err
		}
		it.cmu.Lock()
	}
	it.committing = false
	it.cmu.Unlock()
	return <-pc.done
}

// writeAt writes fetched bytes b at off, leaving the file's mtime as it
// was. Hydration is not a change of the file: its mtime stays the
// object's (or whatever a user set), and the mount, which shows the store
// file's mtime, must not see it move — the kernel drops a FUSE file's
// cached pages whenever a getattr returns another mtime (auto_inval_data),
// so a moving mtime also made a cold reader's kernel throw away what it
// had read, ~1 s at a time. Writes of one item are serialised (a few µs
// each), so the mtime read before a write is never one an other fetch's
// write just set; a user's utimes between the fstat and the restore (a
// few µs) is the one change that can be lost.
func (it *item) writeAt(b []byte, off int64) error {
	it.wmu.Lock()
	defer it.wmu.Unlock()
	var st unix.Stat_t
	if err := fstat(it.wf, &st); err != nil {
		return err
	}
	if _, err := it.wf.WriteAt(b, off); err != nil {
		return err
	}
	times := [2]unix.Timespec{store.UtimeOmit, st.Mtim}
	return store.WithFd(it.wf, func(fd int) error { return store.Futimens(fd, &times) })
}

// copyAt writes body into the file at r.Off (writeAt), calling landed
// with the bytes written so far after each write.
func (it *item) copyAt(body io.Reader, r store.Range, landed func(int64)) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var done int64
	for done < r.Len {
		n, err := io.ReadFull(body, buf[:min(int64(len(buf)), r.Len-done)])
		if n > 0 {
			if werr := it.writeAt(buf[:n], r.Off+done); werr != nil {
				return done, werr
			}
			done += int64(n)
			landed(done)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// failed turns a GET error into the reader's error, and starts a
// re-import when the object changed.
func (it *item) failed(a *dra.Assoc, key, rel string, err error) error {
	im := it.im
	code := s3x.CodeOf(err)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidObjectState" {
		code = ae.ErrorCode() // S3 answers 403, which Explain calls AccessDenied
	}
	switch code {
	case s3x.CodePrecondition:
		im.n.changed.Add(1)
		re := &ReadError{Code: CodeChanged, Path: rel, Err: ErrObjectChanged}
		im.log.Warn("object changed during hydration: reads fail, file re-imported", "dra", a.ID(), "key", key, "path", rel)
		it.mu.Lock()
		it.changed = re
		start := !it.reimport
		it.reimport = true
		it.mu.Unlock()
		if start {
			im.wg.Add(1)
			go func() {
				defer im.wg.Done()
				im.reimport(a, key, rel, it.wf)
			}()
		}
		return re
	case "InvalidObjectState":
		im.log.Error("object in an archive storage class cannot be read", "code", CodeUnsupportedTier, "dra", a.ID(), "key", key, "path", rel)
		return &ReadError{Code: CodeUnsupportedTier, Path: rel, Err: ErrUnsupportedTier}
	default:
		return &ReadError{Code: code, Path: rel, Err: err}
	}
}

// reimport replaces rel, a stub whose object changed, with a stub of the
// object as it is now, if the file at rel is still the released inode old
// (invariant 6: a file with unexported content is never replaced; a
// released file has none).
func (im *Importer) reimport(a *dra.Assoc, key, rel string, old *os.File) {
	ctx := im.ctx
	oldSt, err := im.st.FileState(old)
	if err != nil {
		return
	}
	out, found, err := im.head(ctx, im.newWatch(&im.n.retries), a, key)
	if err != nil || !found {
		im.log.Warn("re-import after change: object unreadable", "key", key, "err", err)
		return
	}
	cur, err := im.st.Lstat(rel)
	if err != nil {
		return
	}
	var ost unix.Stat_t
	if err := fstat(old, &ost); err != nil || ost.Ino != cur.Ino || ost.Dev != cur.Dev {
		return // the name was changed or replaced meanwhile
	}
	flags, err := hsm.Reimport(rel, oldSt.Flags)
	if err != nil {
		im.log.Warn("re-import after change refused", "path", rel, "err", err)
		return
	}
	d := im.decode(key, out.Metadata, false, aws.ToTime(out.LastModified))
	if !d.Attrs.IsRegular() {
		im.log.Warn("re-import after change: the object is no longer a regular file", "key", key)
		return
	}
	attrs := d.Merge(posixmeta.Attrs{
		Mode: cur.Mode, UID: cur.Uid, GID: cur.Gid,
		Mtime: timeOf(cur.Mtim), Atime: timeOf(cur.Atim),
	})
	err = im.st.ReplaceStub(rel, store.Stub{
		Size: aws.ToInt64(out.ContentLength), Mode: attrs.Perm(),
		UID: int(attrs.UID), GID: int(attrs.GID), Mtime: attrs.Mtime, Atime: attrs.Atime,
		ETag: aws.ToString(out.ETag), Flags: flags, ChunkSize: im.chunkFor(a, aws.ToInt64(out.ContentLength)),
	}, func(o store.State) error {
		if o.ETag != oldSt.ETag || !o.Flags.Has(hsm.Released) {
			return store.ErrChanged
		}
		_, err := hsm.Reimport(rel, o.Flags)
		return err
	})
	if err != nil {
		im.log.Warn("re-import after change failed", "path", rel, "err", err)
		return
	}
	im.n.reimports.Add(1)
	im.log.Info("file re-imported after its object changed", "dra", a.ID(), "key", key, "path", rel)
	if im.cfg.Invalidate != nil {
		im.cfg.Invalidate(rel)
	}
}
