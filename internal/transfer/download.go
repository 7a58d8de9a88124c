package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// DownloadInput describes one download.
type DownloadInput struct {
	Bucket string
	Key    string
	// Object is the listing entry: Size is required; ETag, when set, is sent
	// as If-Match on every ranged GET and checked against the content (MD5
	// for single-part ETags); LastModified becomes the file's mtime.
	Object s3x.Object
	Path   string // final local path; parent directories are created
}

// Download copies an object to a local file. Data lands in a temporary file
// next to Path and is renamed over Path only when complete and verified, so
// an interrupted download never leaves a truncated file under the final name.
// A temporary file of 4 MiB or more has its blocks reserved first
// (preallocate): cheaper writes, and no room is an error before any GET.
//
// Shape: objects smaller than the multipart threshold, and objects whose
// listed ETag is a plain MD5 up to 64 MiB, come in one GET, hashed inline
// as they stream. Larger ones come in parallel ranged GETs written in place
// with WriteAt: ranges of size ÷ 4, at least PartSize and at most 64 MiB
// (or PartSize if larger), at most 4 of one file in flight, started in
// offset order. When the ETag is a plain MD5, the ranges are hashed in
// offset order while they land (seqHash): the range at the hash cursor is
// hashed from its buffer, data written ahead of the cursor is read back
// from the page cache when the cursor reaches it, so no pass over the file
// is left for the end.
//
// Every GET carries If-Match with the ETag (the listing's, or the first
// range's when the listing had none), so the file never mixes two versions of
// the object (invariant 3, docs/invariants.md). Checks before the rename: the
// length of every response and of the whole; the MD5 when the ETag is a plain
// MD5 (single-part upload, no SSE-KMS/SSE-C); a checksum the server sends
// with a whole-object GET (verified by the SDK). Ranged GETs of multipart
// objects are checked by size only (see docs/benchmarks.md for what a
// stronger check would need).
//
// The file's atime and mtime are set to LastModified as the listing gives
// it: whole seconds from AWS, milliseconds from MinIO. (aws truncates to
// seconds, which against MinIO makes --exact-timestamps download every file
// again; keeping the listed time makes a re-sync a no-op everywhere.)
func (e *Engine) Download(ctx context.Context, in DownloadInput, progress ProgressFunc) (err error) {
	where := loc(in.Bucket, in.Key)
	if in.Object.Size < 0 {
		return fmt.Errorf("download %s: negative size %d", where, in.Object.Size)
	}
	dir := filepath.Dir(in.Path)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	f, tmp, err := createTemp(dir, filepath.Base(in.Path))
	if err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()

	size := in.Object.Size
	if err := preallocate(f, size); err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	rs := e.rangeSize(size)
	listed := objectInfo{etag: strings.Trim(in.Object.ETag, `"`)}
	var info objectInfo
	if size < e.opts.MultipartThreshold || parts(size, rs) < 2 || listed.md5ETag() && size <= e.wholeMD5Max {
		info, err = e.getWhole(ctx, f, in, progress)
	} else {
		info, err = e.getRanges(ctx, f, in, rs, progress)
	}
	if err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("download %s: write %s: %w", where, tmp, err)
	}
	mtime := in.Object.LastModified
	if mtime.IsZero() {
		mtime = info.lastModified
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			return fmt.Errorf("download %s: %w", where, err)
		}
	}
	if err := os.Rename(tmp, in.Path); err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	return nil
}

// rangeSize is the download range of an object of size bytes: size divided
// among rangesPerFile ranges, rounded up to a MiB, within [PartSize,
// max(PartSize, maxRange)].
func (e *Engine) rangeSize(size int64) int64 {
	ps := e.opts.PartSize
	rs := (size + int64(e.rangesPerFile) - 1) / int64(e.rangesPerFile)
	rs = (rs + 1<<20 - 1) &^ (1<<20 - 1)
	return max(ps, min(rs, e.maxRange))
}

// preallocMin: files at least this large get their blocks reserved
// (preallocate) before data lands; below it the extra syscall costs more
// than it saves.
const preallocMin = 4 << 20

// preallocate reserves size bytes of blocks for f (fallocate, mode 0: the
// file's size becomes size, its blocks unwritten extents that read as
// zeros). On ext4 buffered writes into reserved blocks cost the kernel
// ~35 % less CPU than delayed allocation (docs/benchmarks.md, "s3 sync large
// downloads"), and a download that cannot fit fails now, naming the free
// space, instead of after the transfer. File systems without fallocate
// (EOPNOTSUPP, ENOSYS, ENODEV, EINVAL) are written as before.
func preallocate(f *os.File, size int64) error {
	if size < preallocMin {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	switch {
	case err == nil, errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS),
		errors.Is(err, unix.ENODEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EINTR):
		return nil // not supported here (or interrupted): written as before
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("no room for %d bytes in %s (%w): free space there, or download elsewhere",
			size, filepath.Dir(f.Name()), err)
	default:
		return fmt.Errorf("reserve %d bytes for %s: %w", size, f.Name(), err)
	}
}

// createTemp creates ".name.ferry-XXXXXXXX" in dir, mode 0666 less umask
// (what the final file should have), never reusing an existing name.
func createTemp(dir, base string) (*os.File, string, error) {
	if len(base) > 200 {
		base = base[:200] // stay under NAME_MAX with the suffix
	}
	var rnd [4]byte
	for range 100 {
		rand.Read(rnd[:])
		name := filepath.Join(dir, "."+base+".ferry-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("cannot create a temporary file in %s", dir)
}

// objectInfo is what the GET responses said about the object.
type objectInfo struct {
	etag         string
	lastModified time.Time
	encrypted    bool // SSE-KMS or SSE-C: the ETag is not the MD5
}

func infoOf(out *s3.GetObjectOutput) objectInfo {
	return objectInfo{
		etag:         strings.Trim(aws.ToString(out.ETag), `"`),
		lastModified: aws.ToTime(out.LastModified),
		encrypted: out.ServerSideEncryption == types.ServerSideEncryptionAwsKms ||
			out.ServerSideEncryption == types.ServerSideEncryptionAwsKmsDsse ||
			aws.ToString(out.SSECustomerAlgorithm) != "",
	}
}

// md5ETag reports whether etag is a plain MD5 of the content (a single PUT
// without SSE-KMS/SSE-C): 32 hex digits, no "-N" part count.
func (o objectInfo) md5ETag() bool {
	if o.encrypted || len(o.etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(o.etag)
	return err == nil
}

// getWhole fetches the object in one GET, writing and hashing as it streams.
func (e *Engine) getWhole(ctx context.Context, f *os.File, in DownloadInput, progress ProgressFunc) (objectInfo, error) {
	if err := e.acquire(ctx); err != nil {
		return objectInfo{}, err
	}
	defer e.release()
	out, err := e.client.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket:       aws.String(in.Bucket),
		Key:          aws.String(in.Key),
		IfMatch:      optString(in.Object.ETag),
		ChecksumMode: types.ChecksumModeEnabled,
	}, quietChecksums)
	if err != nil {
		return objectInfo{}, e.client.Explain(err, "download", in.Bucket, in.Key)
	}
	defer out.Body.Close()
	where := loc(in.Bucket, in.Key)
	info := infoOf(out)
	if got := aws.ToInt64(out.ContentLength); got != in.Object.Size {
		return info, fmt.Errorf("download %s: %w: the object has %d bytes, the listing said %d (it changed; run again)",
			where, ErrMismatch, got, in.Object.Size)
	}
	var h hash.Hash
	if info.md5ETag() {
		var done func()
		h, done = e.md5.get()
		defer done()
	}
	var wrote func(int64, []byte)
	if h != nil {
		wrote = func(_ int64, p []byte) { h.Write(p) }
	}
	if _, err := e.readInto(f, 0, out.Body, in.Object.Size, wrote, true, progress); err != nil {
		if strings.Contains(err.Error(), "checksum did not match") {
			return info, fmt.Errorf("download %s: %w: %v", where, ErrMismatch, err)
		}
		return info, fmt.Errorf("download %s: %w", where, err)
	}
	if h != nil {
		if sum := hex.EncodeToString(h.Sum(nil)); sum != info.etag {
			return info, fmt.Errorf("download %s: %w: MD5 of the data is %s, the ETag says %s", where, ErrMismatch, sum, info.etag)
		}
	}
	return info, nil
}

// quietChecksums stops the SDK from logging, for every object uploaded
// without a checksum, that it has none to validate.
func quietChecksums(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }

// getRanges fetches the object in ranges of rs bytes, at most
// e.rangesPerFile in flight, hashing them in order when the ETag is a plain
// MD5.
func (e *Engine) getRanges(ctx context.Context, f *os.File, in DownloadInput, rs int64, progress ProgressFunc) (objectInfo, error) {
	size := in.Object.Size
	n := parts(size, rs)
	var (
		mu   sync.Mutex
		info objectInfo
	)
	note := func(i objectInfo) {
		mu.Lock()
		if info.etag == "" {
			info = i
		}
		info.encrypted = info.encrypted || i.encrypted
		mu.Unlock()
	}
	w := &lockedWriter{f: f}
	etag := strings.Trim(in.Object.ETag, `"`)
	first := 0
	if etag == "" {
		// Pin the version: the first range says which ETag the others
		// must match.
		i, err := e.getRange(ctx, w, in, 0, 0, rs, "", nil, progress)
		if err != nil {
			return info, err
		}
		note(i)
		etag = i.etag
		first = 1
	}
	var sh *seqHash
	if (objectInfo{etag: etag}).md5ETag() {
		h, done := e.md5.get()
		defer done() // after g.Wait: no range goroutine uses h any more
		sh = newSeqHash(f, size, rs, h)
		if first == 1 {
			sh.wrote(0, rs, nil) // read back when the cursor gets there
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(min(e.rangesPerFile, e.opts.Concurrency))
	for i := first; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error {
			off, length := span(i, size, rs)
			ri, err := e.getRange(gctx, w, in, i, off, length, etag, sh, progress)
			if err != nil {
				return err
			}
			note(ri)
			if sh != nil {
				// Outside the request slot: hash what this range made
				// contiguous (itself, if the cursor was behind it).
				return sh.catchUp(gctx, e)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return info, err
	}
	if err := ctx.Err(); err != nil {
		return info, err
	}
	if sh != nil && info.md5ETag() {
		if err := sh.catchUp(ctx, e); err != nil {
			return info, err
		}
		if err := sh.check(info.etag); err != nil {
			return info, fmt.Errorf("download %s: %w", loc(in.Bucket, in.Key), err)
		}
	}
	return info, nil
}

// lockedWriter lets one goroutine at a time write into the file. A buffered
// write holds the inode's lock in the kernel for its whole length, and
// writers waiting for it there spin on the CPU while the holder runs;
// waiting here parks the goroutine instead. Writes into one file are
// serial either way.
type lockedWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (w *lockedWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.WriteAt(p, off)
}

// rangeAttempts bounds how often one range is resumed after its body broke
// off (connection reset, server restart); the SDK retries failed requests
// itself but not bodies that fail while being read.
const rangeAttempts = 3

// getRange fetches [off, off+length) into f at off, resuming after a broken
// body from where it stopped.
func (e *Engine) getRange(ctx context.Context, f io.WriterAt, in DownloadInput, idx int, off, length int64, etag string, sh *seqHash, progress ProgressFunc) (objectInfo, error) {
	where := loc(in.Bucket, in.Key)
	var info objectInfo
	for attempt := 1; ; attempt++ {
		if err := e.acquire(ctx); err != nil {
			return info, err
		}
		n, i, err := e.getRangeOnce(ctx, f, in, idx, off, length, etag, sh, progress)
		e.release()
		if i.etag != "" {
			info = i
		}
		off, length = off+n, length-n
		if err == nil {
			return info, nil
		}
		var be bodyError
		if !errors.As(err, &be) || attempt >= rangeAttempts || ctx.Err() != nil || length == 0 {
			if errors.As(err, &be) {
				return info, fmt.Errorf("download %s: %w", where, err)
			}
			return info, err
		}
	}
}

// bodyError marks a failure reading a response body: worth resuming.
type bodyError struct{ err error }

func (b bodyError) Error() string { return "reading the response: " + b.err.Error() }
func (b bodyError) Unwrap() error { return b.err }

func (e *Engine) getRangeOnce(ctx context.Context, f io.WriterAt, in DownloadInput, idx int, off, length int64, etag string, sh *seqHash, progress ProgressFunc) (int64, objectInfo, error) {
	where := loc(in.Bucket, in.Key)
	out, err := e.client.S3.GetObject(ctx, &s3.GetObjectInput{
		Bucket:  aws.String(in.Bucket),
		Key:     aws.String(in.Key),
		IfMatch: optString(etag),
		Range:   aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+length-1, 10)),
	})
	if err != nil {
		return 0, objectInfo{}, e.client.Explain(err, "download", in.Bucket, in.Key)
	}
	defer out.Body.Close()
	info := infoOf(out)
	if got := aws.ToInt64(out.ContentLength); got != length {
		return 0, info, fmt.Errorf("download %s: %w: asked for %d bytes at %d, got %d", where, ErrMismatch, length, off, got)
	}
	if total, ok := rangeTotal(aws.ToString(out.ContentRange)); !ok || total != in.Object.Size {
		return 0, info, fmt.Errorf("download %s: %w: the object has changed size (Content-Range %q, listed with %d bytes; run again)",
			where, ErrMismatch, aws.ToString(out.ContentRange), in.Object.Size)
	}
	var wrote func(int64, []byte)
	if sh != nil {
		wrote = func(at int64, p []byte) { sh.wrote(idx, at+int64(len(p)), p) }
	}
	n, err := e.readInto(f, off, out.Body, length, wrote, false, progress)
	return n, info, err
}

// rangeTotal parses the complete length from "bytes a-b/total".
func rangeTotal(cr string) (int64, bool) {
	_, total, ok := strings.Cut(cr, "/")
	if !ok {
		return 0, false
	}
	t, err := strconv.ParseInt(total, 10, 64)
	return t, err == nil
}

// readInto copies want bytes of body to f at off through a pooled buffer,
// calling wrote (when set) with each buffer and its file offset once it is
// written, and reporting progress per buffer. With
// toEOF it then reads body to its end, which is where the SDK checks a
// response checksum. Body failures come back as bodyError with the count
// of bytes already written.
func (e *Engine) readInto(f io.WriterAt, off int64, body io.Reader, want int64, wrote func(at int64, p []byte), toEOF bool, progress ProgressFunc) (int64, error) {
	bp := e.getBuf()
	defer e.putBuf(bp)
	buf := *bp
	var got int64
	for got < want {
		m := int(min(int64(len(buf)), want-got))
		n, err := io.ReadFull(body, buf[:m])
		if n > 0 {
			if _, werr := f.WriteAt(buf[:n], off+got); werr != nil {
				return got, werr
			}
			if wrote != nil {
				wrote(off+got, buf[:n])
			}
			got += int64(n)
			progress.add(int64(n))
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = io.ErrUnexpectedEOF
			}
			return got, bodyError{fmt.Errorf("%w after %d of %d bytes", err, got, want)}
		}
	}
	if toEOF {
		for {
			n, err := body.Read(buf[:1])
			if n > 0 {
				return got, fmt.Errorf("%w: the body is longer than %d bytes", ErrMismatch, want)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return got, err
			}
		}
	}
	return got, nil
}

// seqHash computes the MD5 of a file being written in ranges, in offset
// order, while the ranges are still landing. Range i covers [i×rs,
// min((i+1)×rs, size)) and is written front to back; ends[i] is how far.
// The hash cursor (hashed) follows the contiguous written prefix: a buffer
// written exactly at the cursor is hashed from memory (wrote); data that
// landed ahead of the cursor is read back from the file (still in the page
// cache) by catchUp once the gap before it is filled. One goroutine hashes
// at a time (busy), never under mu, so writers only wait for bookkeeping.
type seqHash struct {
	f        *os.File
	size, rs int64

	mu     sync.Mutex
	h      hash.Hash
	hashed int64   // h holds bytes [0, hashed)
	ends   []int64 // range i is written over [i×rs, ends[i])
	busy   bool    // a goroutine is feeding h outside mu
}

func newSeqHash(f *os.File, size, rs int64, h hash.Hash) *seqHash {
	s := &seqHash{f: f, size: size, rs: rs, h: h, ends: make([]int64, parts(size, rs))}
	for i := range s.ends {
		s.ends[i] = int64(i) * rs
	}
	return s
}

// frontier returns the end of the written data contiguous from the cursor.
// Called with mu held.
func (s *seqHash) frontier() int64 {
	end := s.hashed
	for i := int(s.hashed / s.rs); i < len(s.ends); i++ {
		end = s.ends[i]
		if end < min(int64(i+1)*s.rs, s.size) {
			break
		}
	}
	return end
}

// wrote records that range i is now written up to end, p being the bytes
// just written before end (nil: nothing to hash from memory). When p starts
// at the cursor and no one else is hashing, p is hashed now.
func (s *seqHash) wrote(i int, end int64, p []byte) {
	at := end - int64(len(p))
	s.mu.Lock()
	s.ends[i] = end
	if s.busy || len(p) == 0 || s.hashed != at {
		s.mu.Unlock()
		return
	}
	s.busy = true
	s.mu.Unlock()
	s.h.Write(p)
	s.mu.Lock()
	s.hashed = end
	s.busy = false
	s.mu.Unlock()
}

// catchUp hashes, by reading the file back, everything written
// contiguously past the cursor, until there is nothing more or another
// goroutine is already doing it (that one loops until it catches up).
func (s *seqHash) catchUp(ctx context.Context, e *Engine) error {
	s.mu.Lock()
	if s.busy {
		s.mu.Unlock()
		return nil
	}
	s.busy = true
	var bp *[]byte
	var err error
	for {
		start, end := s.hashed, s.frontier()
		if start == end {
			break
		}
		s.mu.Unlock()
		if bp == nil {
			bp = e.getBuf()
		}
		buf := *bp
		end = min(end, start+int64(len(buf)))
		if err = ctx.Err(); err == nil {
			_, err = s.f.ReadAt(buf[:end-start], start)
		}
		if err == nil {
			s.h.Write(buf[:end-start])
		}
		s.mu.Lock()
		if err != nil {
			break
		}
		s.hashed = end
	}
	s.busy = false
	s.mu.Unlock()
	if bp != nil {
		e.putBuf(bp)
	}
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("verify: %w", err)
	}
	return err
}

// check compares the MD5 of the whole file with etag; every byte must have
// been hashed.
func (s *seqHash) check(etag string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hashed != s.size {
		return fmt.Errorf("verify: hashed %d of %d bytes", s.hashed, s.size)
	}
	if sum := hex.EncodeToString(s.h.Sum(nil)); sum != etag {
		return fmt.Errorf("%w: MD5 of the data is %s, the ETag says %s", ErrMismatch, sum, etag)
	}
	return nil
}
