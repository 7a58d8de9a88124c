package tasks

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"golang.org/x/sys/unix"
)

// Completion reports (docs/semantics.md §5, FSx "Working with task completion
// reports"): Scope FAILED_FILES_ONLY, one line per failed file,
// "FilePath,FileStatus,ErrorCode" with FileStatus "failed" and FilePath
// relative to the file system root. As in FSx's example there is no header
// line. The file is failures.csv for export and release tasks and report.csv
// for import tasks (FSx's names), at <Report.Path>/task-<id>/.
//
// Failures are streamed to a spill file in the store's metadata directory
// (.ferry/tasks/<task id>.failures.csv) as they happen, never held in
// memory; the report is that file, uploaded (or copied) when the task ends.
// The spill file also survives a crash, so a task that was CANCELING when
// the daemon stopped still reports what failed.

// ReportName returns the file name of a task type's report.
func ReportName(t api.DataRepositoryTaskType) string {
	if t == api.TaskImportMetadataFromRepository {
		return "report.csv"
	}
	return "failures.csv"
}

// failureLog appends failure lines to the spill file.
type failureLog struct {
	mu  sync.Mutex
	f   *os.File
	buf *bufio.Writer
	w   *csv.Writer
	err error
}

func openFailureLog(path string, truncate bool) (*failureLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	buf := bufio.NewWriterSize(f, 64<<10)
	w := csv.NewWriter(buf)
	w.UseCRLF = true // RFC 4180 line breaks
	return &failureLog{f: f, buf: buf, w: w}, nil
}

func (l *failureLog) add(path, code string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if err := l.w.Write([]string{safeField(path), "failed", safeField(code)}); err != nil {
		l.err = err
	}
	return l.err
}

func (l *failureLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return l.err
	}
	l.w.Flush()
	err := errors.Join(l.err, l.w.Error(), l.buf.Flush(), l.f.Close())
	l.f = nil
	return err
}

// safeField guards a value against spreadsheet formula injection the way
// FSx's reports do: a value starting with @ + - = is wrapped in double
// quotation marks, which the CSV encoding then escapes, so "@x" is written
// """@x""" (FSx's own example). A spreadsheet shows the cell as "@x", text
// starting with a quotation mark, never a formula; a CSV reader gets the
// value back with its marks, which tells it apart from a name that really
// starts with one (those are quoted and escaped by RFC 4180 as any other).
// Tab and carriage return, which some spreadsheets also treat as formula
// starts, are treated the same way.
func safeField(v string) string {
	if v != "" && strings.ContainsRune("@+-=\t\r", rune(v[0])) {
		return `"` + v + `"`
	}
	return v
}

// reportLocation is where task t's report goes: an S3 URL, or a store path.
func reportLocation(t api.DataRepositoryTask) (u s3x.URL, rel string, isS3 bool, err error) {
	p := t.Report.Path
	name := t.TaskId + "/" + ReportName(t.Type)
	if s3x.IsURL(p) {
		u, err = s3x.ParseURL(p)
		if err != nil {
			return u, "", true, err
		}
		if u.Key != "" && !strings.HasSuffix(u.Key, "/") {
			u.Key += "/"
		}
		u.Key += name
		return u, "", true, nil
	}
	fp, err := dra.NormalizeFileSystemPath(p)
	if err != nil {
		return u, "", false, err
	}
	return u, strings.TrimPrefix(strings.TrimSuffix(fp, "/")+"/"+name, "/"), false, nil
}

// writeReport delivers the spill file of t as its report and returns where
// it went.
func (r *Runner) writeReport(ctx context.Context, t api.DataRepositoryTask) (string, error) {
	u, rel, isS3, err := reportLocation(t)
	if err != nil {
		return "", fmt.Errorf("report path %q: %w", t.Report.Path, err)
	}
	spill := r.spillPath(t.TaskId)
	if _, err := os.Stat(spill); errors.Is(err, os.ErrNotExist) {
		// No failure recorded (the task never started working): an
		// empty report.
		l, err := openFailureLog(spill, true)
		if err != nil {
			return "", err
		}
		if err := l.close(); err != nil {
			return "", err
		}
	}
	if isS3 {
		where := "s3://" + u.Bucket + "/" + u.Key
		return where, r.uploadReport(ctx, spill, u)
	}
	return "/" + rel, r.copyReport(spill, rel)
}

func (r *Runner) uploadReport(ctx context.Context, spill string, u s3x.URL) error {
	fi, err := os.Stat(spill)
	if err != nil {
		return err
	}
	eng := r.cfg.Engine
	if eng == nil {
		if r.cfg.S3 == nil {
			return errors.New("no S3 client to write the report to " + u.Bucket)
		}
		eng = transfer.New(r.cfg.S3, transfer.Options{})
	}
	return eng.Upload(ctx, transfer.UploadInput{
		Path: spill, Bucket: u.Bucket, Key: u.Key, Size: fi.Size(), ModTime: fi.ModTime(),
		ContentType: "text/csv",
	}, nil)
}

// copyReport writes the report into the store at rel (a file system path
// given as Report.Path, ferry only), replacing an earlier one atomically.
func (r *Runner) copyReport(spill, rel string) error {
	in, err := os.Open(spill)
	if err != nil {
		return err
	}
	defer in.Close()
	dir := filepath.Dir(rel)
	if err := r.cfg.Store.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s/.report-%d.tmp", dir, time.Now().UnixNano())
	out, err := r.cfg.Store.OpenFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.cfg.Store.Rename(tmp, rel, 0)
	}
	if err != nil {
		r.cfg.Store.Unlink(tmp)
	}
	return err
}
