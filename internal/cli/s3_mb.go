package cli

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

func newS3MbCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "mb s3://bucket",
		Short:   "Make a bucket",
		Example: "  ferry s3 mb s3://dzhang-imi-gchp-test",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMb(cmd.Context(), g, args[0])
		},
	}
}

func runMb(ctx context.Context, g *globals, arg string) error {
	u, err := s3x.ParseURL(arg)
	if err != nil {
		return usageError("%v", err)
	}
	if u.Key != "" {
		return usageError("%s: a bucket name has no key; write s3://%s", arg, u.Bucket)
	}
	client, err := g.s3Client(ctx, 1)
	if err != nil {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(u.Bucket)}
	if client.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(client.Region)}
	}
	if _, err := client.S3.CreateBucket(ctx, in); err != nil {
		return &exitError{code: ExitFailed, err: fmt.Errorf("make_bucket failed: s3://%s %w", u.Bucket, client.Explain(err, "create bucket", u.Bucket, ""))}
	}
	fmt.Fprintf(g.stdout, "make_bucket: %s\n", u.Bucket)
	return nil
}
