package tasks

import (
	"context"
	"errors"

	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"golang.org/x/sys/unix"
)

// Error codes of file failures that are neither S3's nor the exporter's.
const (
	CodeFileNotFound     = "FileNotFound"
	CodeFileInUse        = "FileInUse"
	CodeFileChanged      = "FileChanged"
	CodePermissionDenied = "PermissionDenied"
	CodeNotReleasable    = "FileNotReleasable"
	CodeInternal         = "InternalError"
)

// codeOf is the error code of a file's failure, as the completion report's
// ErrorCode column shows it: FSx's codes where FSx has one (S3's codes,
// PathSizeTooLong, FileSizeTooLarge, S3ObjectPathNotPosixCompliant…).
func codeOf(err error) string {
	var pe *exporter.PermanentError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if importer.IsDeferred(err) {
		return CodeFileInUse // open through the mount, or its export in flight
	}
	var re *importer.ReadError
	if errors.As(err, &re) && re.Code != "" {
		return re.Code
	}
	if c := keypath.CodeOf(err); c != "" {
		return c
	}
	if c := s3x.CodeOf(err); c != "" {
		return c
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		if errors.Is(he, hsm.ErrBusy) {
			return CodeFileInUse
		}
		return CodeNotReleasable
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return CodeFileNotFound
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return CodePermissionDenied
	case errors.Is(err, transfer.ErrChanged):
		return CodeFileChanged
	case errors.Is(err, exporter.ErrWriterOpen):
		return CodeFileInUse
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "Timeout"
	}
	return CodeInternal
}
