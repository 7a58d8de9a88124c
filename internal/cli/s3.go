package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/syncplan"
)

func newS3Cmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "s3",
		Short: "Copy, sync and list with aws s3 semantics",
		Long: `The s3 commands behave like "aws s3 sync|cp|ls": same arguments, rules,
output lines and exit codes (0 ok, 1 failed, 2 some files skipped), with a
parallel transfer engine underneath.`,
		Example: `  ferry s3 sync ./output s3://bucket/output
  ferry s3 cp s3://bucket/ExtData/file.nc .
  ferry s3 ls s3://bucket/ExtData/
  ferry s3 ls --no-sign-request s3://gcgrid/GEOSCHEM_RESTARTS/
  ferry s3 cp --request-payer requester s3://payer-bucket/key .`,
	}
	cmd.PersistentFlags().StringVar(&g.requestPayer, "request-payer", "", `"requester": confirm that you pay for the requests and bytes of a requester-pays bucket (sends x-amz-request-payer: requester)`)
	cmd.AddCommand(newS3SyncCmd(g), newS3CpCmd(g), newS3LsCmd(g), newS3MbCmd(g))
	return cmd
}

// transferFlags are the flags sync and cp share.
type transferFlags struct {
	dryrun             bool
	quiet              bool
	onlyShowErrors     bool
	noProgress         bool
	followSymlinks     bool
	noFollowSymlinks   bool
	concurrency        int
	partSize           sizeFlag
	multipartThreshold sizeFlag
	filters            syncplan.Filters
}

func (f *transferFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.dryrun, "dryrun", false, "show what would be done, change nothing")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing, not even errors")
	fs.BoolVar(&f.onlyShowErrors, "only-show-errors", false, "print only errors and warnings")
	fs.BoolVar(&f.noProgress, "no-progress", false, "show no progress bar or progress lines")
	fs.BoolVar(&f.followSymlinks, "follow-symlinks", true, "follow symlinks in local directories (the default)")
	fs.BoolVar(&f.noFollowSymlinks, "no-follow-symlinks", false, "skip symlinks in local directories")
	fs.Var(filterFlag{include: false, list: &f.filters}, "exclude", "exclude paths matching this pattern (repeatable; later filters win)")
	fs.Var(filterFlag{include: true, list: &f.filters}, "include", "include paths matching this pattern (repeatable; later filters win)")
	fs.IntVar(&f.concurrency, "concurrency", 32, "requests in flight at once (all files together)")
	f.partSize = 8 << 20
	fs.Var(&f.partSize, "part-size", "upload part size, grown so no file needs more than 10,000 parts; also the smallest download range: an object is fetched in ranges of a quarter of its size, at least this and at most 64MiB (or this, if larger)")
	fs.Var(&f.multipartThreshold, "multipart-threshold", "files at least this large are transferred in parts, except single-part objects up to 64MiB, which download in one GET (default: the part size)")
}

func (f *transferFlags) validate() error {
	if f.concurrency < 1 || f.concurrency > 1024 {
		return usageError("--concurrency %d is out of range: use 1 to 1024", f.concurrency)
	}
	if f.partSize < 5<<20 || f.partSize > 5<<30 {
		return usageError("--part-size %s is out of range: S3 needs parts of 5MiB to 5GiB", f.partSize.String())
	}
	return nil
}

// location is one side of a transfer: an S3 URL or a local path.
type location struct {
	arg  string
	isS3 bool
	url  s3x.URL
	path string // absolute local path
}

func parseLocation(arg string) (location, error) {
	if s3x.IsURL(arg) {
		u, err := s3x.ParseURL(arg)
		if err != nil {
			return location{}, usageError("%v", err)
		}
		return location{arg: arg, isS3: true, url: u}, nil
	}
	if strings.Contains(arg, "://") {
		return location{}, usageError("%q: only s3:// URLs and local paths are supported", arg)
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return location{}, fmt.Errorf("%s: %w", arg, err)
	}
	return location{arg: arg, path: abs}, nil
}

// displayPath renders a local path as aws does in its output lines: the
// directory relative to the working directory joined with the base name
// ("./a" for a file in the working directory, "sub/a" below it).
func displayPath(abs string) string {
	cwd, err := os.Getwd()
	if err != nil {
		return abs
	}
	dir, base := filepath.Split(abs)
	rel, err := filepath.Rel(cwd, filepath.Clean(dir))
	if err != nil {
		return abs
	}
	if rel == "." {
		return "./" + base
	}
	return rel + "/" + base
}
