package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/progress"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

type lsFlags struct {
	recursive     bool
	summarize     bool
	humanReadable bool
}

func newS3LsCmd(g *globals) *cobra.Command {
	f := &lsFlags{}
	cmd := &cobra.Command{
		Use:   "ls [s3://bucket[/prefix]]",
		Short: "List buckets, or objects and prefixes under a prefix",
		Long: `Ls prints what "aws s3 ls" prints: without an argument the buckets; with
one the objects and common prefixes under it ("PRE dir/"), one level deep, or
every object with --recursive. Times are local. Exits 1 when a prefix matched
nothing.`,
		Example: `  ferry s3 ls
  ferry s3 ls s3://bucket/ExtData/
  ferry s3 ls s3://bucket/ExtData/ --recursive --summarize --human-readable`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLs(cmd.Context(), g, f, args)
		},
	}
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "r", false, "list every object under the prefix")
	cmd.Flags().BoolVar(&f.summarize, "summarize", false, "print the number of objects and their total size at the end")
	cmd.Flags().BoolVar(&f.humanReadable, "human-readable", false, "print sizes as KiB, MiB, GiB…")
	return cmd
}

func runLs(ctx context.Context, g *globals, f *lsFlags, args []string) error {
	client, err := g.s3Client(ctx, 4)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return lsBuckets(ctx, client, g.stdout)
	}
	u, err := s3x.ParseURL(args[0])
	if err != nil {
		return usageError("%v", err)
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(u.Bucket)}
	if u.Key != "" {
		in.Prefix = aws.String(u.Key)
	}
	if !f.recursive {
		in.Delimiter = aws.String("/")
	}
	var objects, total int64
	found := false
	p := s3.NewListObjectsV2Paginator(client.S3, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return &exitError{code: ExitFailed, err: client.Explain(err, "list", u.Bucket, u.Key)}
		}
		// aws prints each page's prefixes before its objects.
		for _, cp := range page.CommonPrefixes {
			found = true
			parts := strings.Split(aws.ToString(cp.Prefix), "/")
			fmt.Fprintf(g.stdout, "%30s %s/\n", "PRE", parts[len(parts)-2])
		}
		for _, o := range page.Contents {
			found = true
			key, size := aws.ToString(o.Key), aws.ToInt64(o.Size)
			objects++
			total += size
			name := key
			if !f.recursive {
				name = key[strings.LastIndexByte(key, '/')+1:]
			}
			fmt.Fprintf(g.stdout, "%s %10s %s\n", lsTime(aws.ToTime(o.LastModified)), f.size(size), name)
		}
	}
	if f.summarize {
		fmt.Fprintf(g.stdout, "\nTotal Objects: %d\n   Total Size: %s\n", objects, f.size(total))
	}
	if !found && u.Key != "" {
		return &exitError{code: ExitFailed}
	}
	return nil
}

func (f *lsFlags) size(n int64) string {
	if f.humanReadable {
		return progress.HumanSize(n)
	}
	return strconv.FormatInt(n, 10)
}

// lsTime formats a time as aws ls does: local time, "2006-01-02 15:04:05".
func lsTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func lsBuckets(ctx context.Context, client *s3x.Client, w io.Writer) error {
	out, err := client.S3.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		return &exitError{code: ExitFailed, err: client.Explain(err, "list", "", "")}
	}
	for _, b := range out.Buckets {
		fmt.Fprintf(w, "%s %s\n", lsTime(aws.ToTime(b.CreationDate)), aws.ToString(b.Name))
	}
	return nil
}
