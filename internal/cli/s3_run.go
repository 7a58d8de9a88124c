package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/ferry-hpc/ferry/internal/progress"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/syncplan"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// runner executes the actions of a sync or recursive cp: a bounded pool of
// file workers over one transfer engine, aws's output lines, and counts of
// failed and skipped files for the exit code.
type runner struct {
	g       *globals
	f       *transferFlags
	src     location
	dst     location
	dir     syncplan.Direction
	client  *s3x.Client
	engine  *transfer.Engine
	rep     progress.Reporter
	viaRep  bool // result lines go through the reporter (same terminal as the bar)
	failed  atomic.Int64
	skipped atomic.Int64

	outMu sync.Mutex

	delMu   sync.Mutex
	delKeys []string
}

func newRunner(ctx context.Context, g *globals, f *transferFlags, src, dst location) (*runner, error) {
	r := &runner{g: g, f: f, src: src, dst: dst}
	switch {
	case !src.isS3 && dst.isS3:
		r.dir = syncplan.Upload
	case src.isS3 && !dst.isS3:
		r.dir = syncplan.Download
	case src.isS3 && dst.isS3:
		r.dir = syncplan.Copy
	default:
		return nil, usageError("%s and %s are both local paths: one side must be an s3:// URL", src.arg, dst.arg)
	}
	client, err := g.s3Client(ctx, f.concurrency)
	if err != nil {
		return nil, err
	}
	r.client = client
	r.engine = transfer.New(client, transfer.Options{
		Concurrency:        f.concurrency,
		PartSize:           int64(f.partSize),
		MultipartThreshold: int64(f.multipartThreshold),
	})
	mode := progress.Auto
	if f.noProgress || f.quiet || f.onlyShowErrors || f.dryrun {
		mode = progress.None
	}
	r.rep = progress.New(g.stderr, progress.Options{Mode: mode, Label: "ferry"})
	// Result lines go to stdout. When stdout and stderr are the same
	// terminal, they go through the reporter so they print above the bar.
	r.viaRep = mode != progress.None && isTerminal(g.stdout) && isTerminal(g.stderr)
	return r, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// say prints one result line ("upload: a to s3://b/a") unless quiet.
func (r *runner) say(line string) {
	if r.f.quiet || r.f.onlyShowErrors {
		return
	}
	if r.f.dryrun {
		line = "(dryrun) " + line
	}
	if r.viaRep {
		r.rep.Println(line)
		return
	}
	r.outMu.Lock()
	fmt.Fprintln(r.g.stdout, line)
	r.outMu.Unlock()
}

// complain prints an error or warning line to stderr unless --quiet.
func (r *runner) complain(line string) {
	if r.f.quiet {
		return
	}
	r.outMu.Lock()
	fmt.Fprintln(r.g.stderr, line)
	r.outMu.Unlock()
}

// warn records a skipped file: exit code 2.
func (r *runner) warn(w syncplan.Warning) {
	r.skipped.Add(1)
	r.complain("warning: Skipping file " + w.Path + ". " + w.Message)
}

// iterator returns the entries of one side of the transfer.
func (r *runner) iterator(ctx context.Context, loc location) syncplan.Iterator {
	if loc.isS3 {
		return syncplan.ListS3(ctx, r.client, loc.url.Bucket, loc.url.Dir().Key)
	}
	return syncplan.WalkLocal(ctx, loc.path, syncplan.LocalOptions{
		FollowSymlinks: r.f.followSymlinks && !r.f.noFollowSymlinks,
		Warn:           r.warn,
	})
}

// run plans with plan and executes the actions with a bounded pool. It
// returns the command's error (listing failed, interrupted); per-file
// failures are counted and decide the exit code in finish.
func (r *runner) run(ctx context.Context, plan func(ctx context.Context, emit func(syncplan.Action) error) error) error {
	g, gctx := errgroup.WithContext(ctx)
	actions := make(chan syncplan.Action, r.f.concurrency*4)
	g.Go(func() error {
		defer close(actions)
		return plan(gctx, func(a syncplan.Action) error {
			if a.Kind == syncplan.ActCopy {
				r.rep.AddTotal(1, a.Src.Size)
			}
			select {
			case actions <- a:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for i := 0; i < r.f.concurrency; i++ {
		g.Go(func() error {
			for a := range actions {
				r.do(gctx, a)
			}
			return nil
		})
	}
	err := g.Wait()
	if ferr := r.flushDeletes(ctx); err == nil {
		err = ferr
	}
	return err
}

// finish closes progress, prints the summary and turns the counts into the
// exit code.
func (r *runner) finish(runErr error) error {
	sum := r.rep.Close()
	if !r.f.quiet && !r.f.onlyShowErrors && !r.f.dryrun {
		fmt.Fprintln(r.g.stderr, progress.FormatSummary(sum))
	}
	switch {
	case runErr != nil:
		if errors.Is(runErr, context.Canceled) {
			return &exitError{code: ExitFailed, err: errors.New("interrupted; files not yet transferred are left as they were")}
		}
		return &exitError{code: ExitFailed, err: runErr}
	case r.failed.Load() > 0:
		return &exitError{code: ExitFailed}
	case r.skipped.Load() > 0:
		return &exitError{code: ExitSkipped}
	}
	return nil
}

// srcName and dstName render the two sides of an action for output lines.
func (r *runner) srcName(rel string) string { return r.name(r.src, rel) }
func (r *runner) dstName(rel string) string { return r.name(r.dst, rel) }

func (r *runner) name(loc location, rel string) string {
	if loc.isS3 {
		return "s3://" + loc.url.Bucket + "/" + r.key(loc, rel)
	}
	return displayPath(r.localPath(loc, rel))
}

func (r *runner) key(loc location, rel string) string { return loc.url.Dir().Key + rel }

func (r *runner) localPath(loc location, rel string) string {
	return filepath.Join(loc.path, filepath.FromSlash(rel))
}

// do executes one action and reports its outcome.
func (r *runner) do(ctx context.Context, a syncplan.Action) {
	if a.Kind == syncplan.ActDelete {
		r.delete(ctx, a.Dst)
		return
	}
	rel := a.Src.Rel
	line := r.verb() + ": " + r.srcName(rel) + " to " + r.dstName(rel)
	if r.dir == syncplan.Download {
		if err := checkRelPath(rel); err != nil {
			r.warn(syncplan.Warning{Path: r.srcName(rel), Message: err.Error()})
			return
		}
	}
	if r.f.dryrun {
		r.say(line)
		return
	}
	dst := r.key(r.dst, rel)
	if !r.dst.isS3 {
		dst = r.localPath(r.dst, rel)
	}
	r.report(ctx, line, r.xfer(ctx, a.Src, dst))
}

// verb names the direction in output lines.
func (r *runner) verb() string {
	return [...]string{syncplan.Upload: "upload", syncplan.Download: "download", syncplan.Copy: "copy"}[r.dir]
}

// xfer moves one source entry to dst: an object key in r.dst's bucket, or a
// local path.
func (r *runner) xfer(ctx context.Context, e syncplan.Entry, dst string) error {
	switch r.dir {
	case syncplan.Upload:
		return r.engine.Upload(ctx, transfer.UploadInput{
			Path: e.Path, Bucket: r.dst.url.Bucket, Key: dst, Size: e.Size, ModTime: e.ModTime,
			ContentType: mime.TypeByExtension(path.Ext(e.Path)),
		}, r.rep.Add)
	case syncplan.Download:
		return r.engine.Download(ctx, transfer.DownloadInput{
			Bucket: r.src.url.Bucket, Key: e.Path, Object: entryObject(e), Path: dst,
		}, r.rep.Add)
	default:
		return r.engine.Copy(ctx, transfer.CopyInput{
			SrcBucket: r.src.url.Bucket, SrcKey: e.Path, Object: entryObject(e),
			DstBucket: r.dst.url.Bucket, DstKey: dst,
		}, r.rep.Add)
	}
}

// report prints the outcome of one transfer: its line ("upload: a to
// s3://b/a") on success, "<verb> failed: … <error>" on failure. Failures
// after an interrupt are not reported one by one.
func (r *runner) report(ctx context.Context, line string, err error) {
	if err == nil {
		r.rep.FileDone()
		r.say(line)
		return
	}
	if ctx.Err() != nil {
		return
	}
	r.failed.Add(1)
	verb, rest, _ := strings.Cut(line, ": ")
	r.complain(verb + " failed: " + rest + " " + err.Error())
}

// checkRelPath refuses object keys that would land outside the destination
// directory or cannot be a local path: "..", "." or empty components.
func checkRelPath(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("the key is not a relative path under the prefix")
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".", "..":
			return fmt.Errorf("the key has a %q path component, which cannot be a local file name", c)
		}
		if strings.IndexByte(c, 0) >= 0 {
			return fmt.Errorf("the key has a NUL byte, which cannot be in a local file name")
		}
	}
	return nil
}

// delete removes a destination file: locally at once, in S3 in batches.
func (r *runner) delete(ctx context.Context, e syncplan.Entry) {
	line := "delete: " + r.dstName(e.Rel)
	if r.f.dryrun {
		r.say(line)
		return
	}
	if !r.dst.isS3 {
		if err := os.Remove(e.Path); err != nil && !os.IsNotExist(err) {
			r.failed.Add(1)
			r.complain("delete failed: " + r.dstName(e.Rel) + " " + err.Error())
			return
		}
		r.say(line)
		return
	}
	r.delMu.Lock()
	r.delKeys = append(r.delKeys, e.Path)
	var batch []string
	if len(r.delKeys) >= 1000 {
		batch, r.delKeys = r.delKeys, nil
	}
	r.delMu.Unlock()
	if batch != nil {
		r.deleteBatch(ctx, batch)
	}
}

func (r *runner) flushDeletes(ctx context.Context) error {
	r.delMu.Lock()
	batch := r.delKeys
	r.delKeys = nil
	r.delMu.Unlock()
	if len(batch) > 0 && ctx.Err() == nil {
		r.deleteBatch(ctx, batch)
	}
	return nil
}

func (r *runner) deleteBatch(ctx context.Context, keys []string) {
	bucket := r.dst.url.Bucket
	err := r.engine.Delete(ctx, bucket, keys, func(key string, err error) {
		if err != nil {
			r.failed.Add(1)
			r.complain("delete failed: s3://" + bucket + "/" + key + " " + err.Error())
			return
		}
		r.say("delete: s3://" + bucket + "/" + key)
	})
	if err != nil && ctx.Err() == nil {
		r.failed.Add(int64(len(keys)))
		r.complain(fmt.Sprintf("delete failed: %d objects in s3://%s/: %v", len(keys), bucket, err))
	}
}

// entryObject turns an S3-side entry back into the listing entry it came from.
func entryObject(e syncplan.Entry) s3x.Object {
	return s3x.Object{Key: e.Path, Size: e.Size, ETag: e.ETag, LastModified: e.ModTime}
}
