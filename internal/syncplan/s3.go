package syncplan

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// ListS3 lists every object under prefix (recursively) as entries whose Rel
// is the key with prefix removed. Keys ending in "/" (folder objects) are
// skipped: sync neither copies nor deletes them. For sync the prefix is ""
// or ends in "/", so Rel is the path below that "directory".
//
// The listing runs in a goroutine, one ListObjectsV2 page ahead of the
// reader at most (a bounded channel); it stops when the listing ends, when
// ctx is done, or when Close is called. The returned Iterator also
// implements io.Closer, and Plan closes it when it returns.
func ListS3(ctx context.Context, c *s3x.Client, bucket, prefix string) Iterator {
	ctx, cancel := context.WithCancel(ctx)
	return &s3Lister{ctx: ctx, cancel: cancel, c: c, bucket: bucket, prefix: prefix}
}

// s3ListAhead bounds how many listed entries wait for the reader: one page.
const s3ListAhead = 1000

type s3Lister struct {
	ctx    context.Context
	cancel context.CancelFunc
	c      *s3x.Client
	bucket string
	prefix string

	ch     chan Entry
	err    error // written by the goroutine before it closes ch
	closed bool
}

func (l *s3Lister) start() {
	l.ch = make(chan Entry, s3ListAhead)
	go func() {
		defer close(l.ch)
		l.err = l.c.List(l.ctx, l.bucket, s3x.ListOptions{Prefix: l.prefix}, func(o s3x.Object) error {
			if o.IsDirMarker() {
				return nil
			}
			rel, ok := strings.CutPrefix(o.Key, l.prefix)
			if !ok || rel == "" {
				return fmt.Errorf("list s3://%s/%s: the store returned key %q outside the prefix", l.bucket, l.prefix, o.Key)
			}
			e := Entry{Rel: rel, Size: o.Size, ModTime: o.LastModified, Path: o.Key, ETag: o.ETag}
			select {
			case l.ch <- e:
				return nil
			case <-l.ctx.Done():
				return l.ctx.Err()
			}
		})
	}()
}

// Next returns the next object in key order.
func (l *s3Lister) Next() (Entry, bool, error) {
	if l.closed {
		return Entry{}, false, fmt.Errorf("list s3://%s/%s: iterator closed", l.bucket, l.prefix)
	}
	if l.ch == nil {
		l.start()
	}
	e, ok := <-l.ch
	if !ok {
		return Entry{}, false, l.err
	}
	return e, true, nil
}

// Close stops the listing and waits for its goroutine to end.
func (l *s3Lister) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	l.cancel()
	if l.ch != nil {
		for range l.ch {
		}
	}
	return nil
}
