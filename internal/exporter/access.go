package exporter

import (
	"errors"
	"strings"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// ErrUnsigned is the error of an export under an unsigned association
// (FerryRepositoryAccess.Unsigned): S3 takes no anonymous writes, so
// nothing under it is exported (hsm archive, export tasks).
var ErrUnsigned = errors.New("its association reads the repository unsigned (--no-sign-request), and nothing is exported through an unsigned association: copy the file under an association linked with credentials that may write")

// s3For is the S3 client of the association whose repository holds key in
// bucket (with its Access: x-amz-request-payer for a requester-pays one),
// or the daemon's own client when none does. Repository paths never
// overlap, so at most one association holds a key; the helpers that work
// on a bucket and a key find it here rather than being handed it.
func (e *Exporter) s3For(bucket, key string) *s3x.Client {
	for _, a := range e.table().All() {
		if a.Bucket == bucket && strings.HasPrefix(key, a.Prefix) {
			return e.cfg.S3.For(a.Access())
		}
	}
	return e.cfg.S3
}

// engineFor is the transfer engine for requests to key in bucket (see
// s3For), sharing the one engine's request bound.
func (e *Exporter) engineFor(bucket, key string) *transfer.Engine {
	return e.cfg.Engine.With(e.s3For(bucket, key))
}
