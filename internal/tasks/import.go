package tasks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// importMeta is IMPORT_METADATA_FROM_REPOSITORY: the metadata of objects new
// under each path (an s3:// prefix inside an association's
// DataRepositoryPath; none = every association) is imported, with
// importer.ImportAll. A path below an association's prefix is imported
// through a narrowed view of the association (FileSystemPath and
// DataRepositoryPath both moved down by the same relative path), which maps
// every key to the same store path the whole association would.
//
// Counting: TotalCount is the objects imported or refused, SucceededCount
// the files, directories and symlinks created, FailedCount the keys refused
// (S3ObjectPathNotPosixCompliant, S3ObjectTypeMismatch…).
//
// Known gaps (importer.ImportAll): existing entries are never overwritten,
// so an object CHANGED since its stub was made is not re-imported by the
// task (auto-import's CHANGED does that); refused keys are counted by code
// but not named, so the report lists no per-key lines for them.
func (j *job) importMeta() error {
	as, err := j.associations()
	if err != nil {
		return err
	}
	if len(as.All()) == 0 {
		return errors.New("the file system has no data repository association to import into: create one with create-data-repository-association")
	}
	type unit struct {
		a   *dra.Assoc
		sub string // below the association's directory, "." for all of it
	}
	var units []unit
	if len(j.task.Paths) == 0 {
		for _, a := range as.All() {
			units = append(units, unit{a, "."})
		}
	}
	for _, p := range j.task.Paths {
		u, err := s3x.ParseURL(p)
		if err != nil {
			return fmt.Errorf("path %q: %w", p, err)
		}
		u = u.Dir()
		found := false
		for _, a := range as.All() {
			if u.Bucket != a.Bucket || !strings.HasPrefix(u.Key, a.Prefix) {
				continue
			}
			sub := "."
			if rest := strings.TrimPrefix(u.Key, a.Prefix); rest != "" {
				rel, _, err := keypath.ToPath(a.Prefix, u.Key)
				if err != nil {
					return fmt.Errorf("path %q cannot be a file system path: %w", p, err)
				}
				sub = rel
			}
			units = append(units, unit{a, sub})
			found = true
			break
		}
		if !found {
			return fmt.Errorf("path %q is not inside the DataRepositoryPath of any data repository association of the file system", p)
		}
		if last := units[len(units)-1]; last.sub != "." {
			// A sub-prefix must name something; the association's own
			// prefix may be empty.
			if err := j.prefixExists(u); err != nil {
				return fmt.Errorf("path %q: %w", p, err)
			}
		}
	}
	for _, un := range units {
		if err := usable(un.a); err != nil {
			return err
		}
	}
	for _, un := range units {
		if j.feed.Err() != nil {
			return nil
		}
		view := un.a.API
		if un.sub != "." {
			view.FileSystemPath = strings.TrimSuffix(view.FileSystemPath, "/") + "/" + un.sub
			view.DataRepositoryPath = "s3://" + un.a.Bucket + "/" + un.a.Prefix + un.sub + "/"
		}
		var last importer.ImportCounts
		account := func(c importer.ImportCounts) {
			// ImportAll reports cumulative counts; the job counts deltas.
			files := (c.Files + c.Dirs + c.Symlinks) - (last.Files + last.Dirs + last.Symlinks)
			refused := c.Refused - last.Refused
			j.total.Add(files + refused)
			j.ok.Add(files)
			j.failed.Add(refused)
			last = c
		}
		// The import runs under feed: a cancel stops its listing between
		// directories (directories listed so far stay imported).
		c, err := j.r.cfg.Importer.ImportAll(j.feed, view, account)
		account(c)
		if err != nil && j.feed.Err() == nil {
			return fmt.Errorf("import from %s: %w", view.DataRepositoryPath, err)
		}
	}
	return nil
}

// prefixExists checks that an import path names something in the
// repository (an invalid path fails the task).
func (j *job) prefixExists(u s3x.URL) error {
	if j.r.cfg.S3 == nil || u.Key == "" {
		return nil
	}
	errFound := errors.New("found")
	err := j.r.cfg.S3.List(j.work, u.Bucket, s3x.ListOptions{Prefix: u.Key}, func(s3x.Object) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("no object in the repository under s3://%s/%s", u.Bucket, u.Key)
}
