package cli

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/syncplan"
)

type cpFlags struct {
	transferFlags
	recursive bool
}

func newS3CpCmd(g *globals) *cobra.Command {
	f := &cpFlags{}
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy a file or object, or a tree with --recursive",
		Long: `Cp copies one file or object (local→S3, S3→local, S3→S3), or with
--recursive every file under SRC, whatever DST holds. A DST ending in "/" (or
an existing local directory) receives the source's base name.
--exclude/--include work as in sync (only with --recursive).`,
		Example: `  ferry s3 cp model.nc s3://bucket/run1/
  ferry s3 cp s3://bucket/ExtData/a.nc ./a.nc
  ferry s3 cp s3://bucket/ExtData ./ExtData --recursive --exclude '*' --include '*.nc4'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCp(cmd.Context(), g, f, args[0], args[1])
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "r", false, "copy every file under SRC")
	return cmd
}

func runCp(ctx context.Context, g *globals, f *cpFlags, srcArg, dstArg string) error {
	if err := f.validate(); err != nil {
		return err
	}
	src, err := parseLocation(srcArg)
	if err != nil {
		return err
	}
	dst, err := parseLocation(dstArg)
	if err != nil {
		return err
	}
	if f.recursive {
		if !src.isS3 {
			if err := checkLocalDir(src); err != nil {
				return err
			}
		}
		r, err := newRunner(ctx, g, &f.transferFlags, src, dst)
		if err != nil {
			return err
		}
		opts := syncplan.Options{Direction: r.dir, Filters: f.filters}
		runErr := r.run(ctx, func(ctx context.Context, emit func(syncplan.Action) error) error {
			return syncplan.Plan(ctx, r.iterator(ctx, src), emptyIterator{}, opts, emit)
		})
		return r.finish(runErr)
	}
	return cpOne(ctx, g, f, src, dst)
}

// cpOne copies a single file or object.
func cpOne(ctx context.Context, g *globals, f *cpFlags, src, dst location) error {
	r, err := newRunner(ctx, g, &f.transferFlags, src, dst)
	if err != nil {
		return err
	}
	var entry syncplan.Entry
	var base string
	if src.isS3 {
		if src.url.Key == "" || strings.HasSuffix(src.url.Key, "/") {
			r.rep.Close()
			return usageError("%s names a prefix, not an object: add --recursive to copy everything under it", src.arg)
		}
		obj, err := r.client.Head(ctx, src.url.Bucket, src.url.Key)
		if err != nil {
			r.rep.Close()
			return &exitError{code: ExitFailed, err: err}
		}
		entry = syncplan.Entry{Size: obj.Size, ModTime: obj.LastModified, Path: obj.Key, ETag: obj.ETag}
		base = path.Base(src.url.Key)
	} else {
		st, err := os.Stat(src.path)
		if err != nil {
			r.rep.Close()
			return &exitError{code: ExitFailed, err: fmt.Errorf("the user-provided path %s does not exist: check the path", src.arg)}
		}
		if st.IsDir() {
			r.rep.Close()
			return usageError("%s is a directory: add --recursive to copy the tree, or use sync", src.arg)
		}
		entry = syncplan.Entry{Size: st.Size(), ModTime: st.ModTime(), Path: src.path}
		base = filepath.Base(src.path)
	}
	// The destination's name: DST as given, or DST/<base> when DST is a
	// "directory" (ends in "/", is a bucket root or an existing directory).
	if dst.isS3 {
		r.dst.url.Key = dst.url.Key
		if dst.url.Key == "" || strings.HasSuffix(dst.url.Key, "/") {
			r.dst.url.Key += base
		}
	} else {
		r.dst.path = dst.path
		if strings.HasSuffix(dst.arg, "/") || dirExists(dst.path) {
			r.dst.path = filepath.Join(dst.path, base)
		}
	}
	if f.dryrun {
		r.rep.Close()
		r.say(r.oneLine(entry))
		return nil
	}
	r.rep.AddTotal(1, entry.Size)
	dstName := r.dst.url.Key
	if !dst.isS3 {
		dstName = r.dst.path
	}
	r.report(ctx, r.oneLine(entry), r.xfer(ctx, entry, dstName))
	return r.finish(ctx.Err())
}

func (r *runner) oneLine(e syncplan.Entry) string {
	return r.verb() + ": " + r.oneName(r.src, e.Path) + " to " + r.oneName(r.dst, "")
}

func (r *runner) oneName(loc location, p string) string {
	if loc.isS3 {
		if p == "" {
			p = loc.url.Key
		}
		return "s3://" + loc.url.Bucket + "/" + p
	}
	if p == "" {
		p = loc.path
	}
	return displayPath(p)
}
