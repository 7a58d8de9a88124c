package exporter

import (
	"errors"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// ErrUnsigned is the error of an export under an unsigned association
// (FerryRepositoryAccess.Unsigned): S3 takes no anonymous writes, so
// nothing under it is exported (hsm archive, export tasks).
var ErrUnsigned = errors.New("its association reads the repository unsigned (--no-sign-request), and nothing is exported through an unsigned association: copy the file under an association linked with credentials that may write")

// s3For is the S3 client for requests to bucket: with x-amz-request-payer
// when an association of that bucket is requester-pays. Requester pays is
// a property of the bucket, not of a prefix, and the header is harmless
// from the owner, so the exporter (whose helpers work on a bucket and a
// key) picks by bucket. Unsigned associations never export and never
// choose.
func (e *Exporter) s3For(bucket string) *s3x.Client {
	for _, a := range e.table().All() {
		if a.Bucket == bucket && a.Access().RequestPayer != "" && !a.Access().Unsigned {
			return e.cfg.S3.For(a.Access())
		}
	}
	return e.cfg.S3
}

// engineFor is the transfer engine for requests to bucket (see s3For),
// sharing the one engine's request bound.
func (e *Exporter) engineFor(bucket string) *transfer.Engine {
	return e.cfg.Engine.With(e.s3For(bucket))
}
