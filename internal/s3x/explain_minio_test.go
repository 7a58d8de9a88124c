package s3x_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// The errors TestExplain builds are the ones a real server gives: MinIO's
// answers (and a closed port's) are explained with the same codes.
func TestExplainRealServer(t *testing.T) {
	m := testutil.StartMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	m.Put(t, bucket, "k", []byte("v"))
	ctx := context.Background()

	// staticClient is c's server with other credentials.
	staticClient := func(key, secret string) *s3x.Client {
		return &s3x.Client{Endpoint: c.Endpoint, Region: "us-east-1", S3: s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint), UsePathStyle: true,
			Credentials:      credentials.NewStaticCredentialsProvider(key, secret, ""),
			RetryMaxAttempts: 1,
		})}
	}
	// closed is an address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	unreachable := &s3x.Client{Endpoint: closed, S3: s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(closed), UsePathStyle: true,
		Credentials:      credentials.NewStaticCredentialsProvider(testutil.AccessKey, testutil.SecretKey, ""),
		RetryMaxAttempts: 1,
	})}

	tests := []struct {
		name   string
		client *s3x.Client
		op     string
		bucket string
		call   func(*s3x.Client, string) error
		code   string
		want   string
	}{
		{"no such bucket", c, "list", "no-such-bucket-here", func(c *s3x.Client, b string) error {
			_, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
			return err
		}, s3x.CodeNoSuchBucket, "aws s3 mb s3://no-such-bucket-here"},
		{"no such key", c, "get", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("missing")})
			return err
		}, s3x.CodeNoSuchKey, "no such object"},
		{"head of a missing key", c, "head", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("missing")})
			return err
		}, s3x.CodeNoSuchKey, "no such object"},
		{"precondition", c, "get", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String("k"), IfMatch: aws.String(`"0123"`)})
			return err
		}, s3x.CodePrecondition, "ETag no longer matches"},
		{"wrong secret", staticClient(testutil.AccessKey, "not-the-secret"), "list", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
			return err
		}, s3x.CodeBadCredentials, "refused the credentials (SignatureDoesNotMatch)"},
		{"unknown access key", staticClient("nobody", "nothing"), "list", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
			return err
		}, s3x.CodeBadCredentials, "refused the credentials (InvalidAccessKeyId)"},
		{"endpoint unreachable", unreachable, "list", bucket, func(c *s3x.Client, b string) error {
			_, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
			return err
		}, s3x.CodeUnreachable, "cannot reach the endpoint " + closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(tt.client, tt.bucket)
			if err == nil {
				t.Fatal("the call succeeded")
			}
			got := tt.client.Explain(err, tt.op, tt.bucket, "k")
			var fe *s3x.Error
			if !errors.As(got, &fe) || fe.Code != tt.code {
				t.Fatalf("Explain(%v) = %v; want code %s", err, got, tt.code)
			}
			if !strings.Contains(got.Error(), tt.want) || !strings.Contains(got.Error(), "s3://"+tt.bucket+"/k") {
				t.Errorf("message %q lacks %q or the location", got, tt.want)
			}
		})
	}
}
