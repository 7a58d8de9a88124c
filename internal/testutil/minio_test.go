package testutil

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// TestStartMinIOServes: once StartMinIO returns, the server answers S3
// requests (the first one, without retries). MinIO's /minio/health/ready
// answers 200 before its object layer is up, and a request then fails
// with 503 XMinioServerNotInitialized (seen under load as "create bucket
// …: Server not initialized yet"); several servers starting at once make
// that window likely.
func TestStartMinIOServes(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			m := StartMinIO(t)
			c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: m.Endpoint, MaxAttempts: 1})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := c.S3.ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
				t.Errorf("the first request once StartMinIO returned: %v", err)
			}
		})
	}
	wg.Wait()
}
