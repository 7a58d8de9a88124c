package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/syncplan"
)

type syncFlags struct {
	transferFlags
	delete          bool
	sizeOnly        bool
	exactTimestamps bool
}

func newS3SyncCmd(g *globals) *cobra.Command {
	f := &syncFlags{}
	cmd := &cobra.Command{
		Use:   "sync SRC DST",
		Short: "Make DST hold what SRC holds (local→S3, S3→local, S3→S3)",
		Long: `Sync copies the files of SRC that are missing from DST or differ from it,
with the rules of "aws s3 sync":

  - a file in both is copied when the sizes differ, or for uploads and S3→S3
    when the source is newer, or for downloads when the local file is newer
    than the object (--size-only: sizes alone; --exact-timestamps: downloads
    copy unless the times are equal);
  - files only in DST are deleted only with --delete;
  - --exclude/--include apply in command-line order, the last match wins,
    "*" also matches "/"; excluded files are never deleted;
  - downloaded files get the object's LastModified as their mtime;
  - keys ending in "/" are neither copied nor deleted.

Exit codes: 0 all done, 1 the command or some transfers failed, 2 some files
were skipped (unreadable, special files).`,
		Example: `  ferry s3 sync s3://bucket/ExtData /fsx/ExtData
  ferry s3 sync /fsx/output s3://bucket/output --exclude '*.tmp'
  ferry s3 sync s3://bucket/a s3://bucket/b --delete --dryrun`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSync(cmd.Context(), g, f, args[0], args[1])
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&f.delete, "delete", false, "delete files in DST that are not in SRC (excluded files are kept)")
	cmd.Flags().BoolVar(&f.sizeOnly, "size-only", false, "compare sizes only, not times")
	cmd.Flags().BoolVar(&f.exactTimestamps, "exact-timestamps", false, "downloads: copy same-size files unless their times are equal")
	return cmd
}

func runSync(ctx context.Context, g *globals, f *syncFlags, srcArg, dstArg string) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.sizeOnly && f.exactTimestamps {
		return usageError("--size-only and --exact-timestamps cannot be used together: pick one compare rule")
	}
	src, err := parseLocation(srcArg)
	if err != nil {
		return err
	}
	dst, err := parseLocation(dstArg)
	if err != nil {
		return err
	}
	if !src.isS3 {
		if err := checkLocalDir(src); err != nil {
			return err
		}
	}
	r, err := newRunner(ctx, g, &f.transferFlags, src, dst)
	if err != nil {
		return err
	}
	opts := syncplan.Options{Direction: r.dir, Delete: f.delete, Filters: f.filters}
	switch {
	case f.sizeOnly:
		opts.Compare = syncplan.CompareSizeOnly
	case f.exactTimestamps:
		opts.Compare = syncplan.CompareExactTimestamps
	}
	runErr := r.run(ctx, func(ctx context.Context, emit func(syncplan.Action) error) error {
		var dstIt syncplan.Iterator = emptyIterator{}
		if dst.isS3 || dirExists(dst.path) {
			dstIt = r.iterator(ctx, dst)
		}
		return syncplan.Plan(ctx, r.iterator(ctx, src), dstIt, opts, emit)
	})
	return r.finish(runErr)
}

// checkLocalDir fails, as aws does, when a local source is missing or not a
// directory.
func checkLocalDir(loc location) error {
	st, err := os.Stat(loc.path)
	if err != nil {
		if os.IsNotExist(err) {
			return &exitError{code: ExitFailed, err: fmt.Errorf("the user-provided path %s does not exist: check the path", loc.arg)}
		}
		return &exitError{code: ExitFailed, err: err}
	}
	if !st.IsDir() {
		return &exitError{code: ExitFailed, err: fmt.Errorf("the user-provided path %s is not a directory: use 'ferry s3 cp' for a single file", loc.arg)}
	}
	return nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// emptyIterator is the destination of a copy into a place that does not
// exist yet.
type emptyIterator struct{}

func (emptyIterator) Next() (syncplan.Entry, bool, error) { return syncplan.Entry{}, false, nil }
