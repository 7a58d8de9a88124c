package s3x

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Config selects the account, region and endpoint the way the aws CLI does.
// Empty fields fall back to the standard chain: environment variables
// (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_S3,
// AWS_ENDPOINT_URL), then ~/.aws/config and ~/.aws/credentials.
type Config struct {
	Profile     string
	Region      string
	EndpointURL string
	// MaxConns sizes the one shared connection pool; it should be at least
	// the transfer concurrency.
	MaxConns int
	// MaxAttempts bounds retries of throttled, 5xx and reset requests
	// (0 = 10 attempts).
	MaxAttempts int
}

// Client is the S3 client every part of ferry shares, so that all requests
// draw on one connection pool.
type Client struct {
	S3 *s3.Client
	// Endpoint is what errors name: the custom endpoint, or "AWS S3 (region)".
	Endpoint string
	Region   string
}

// New builds a Client from cfg and the standard configuration chain.
// Custom endpoints use path-style addressing (bucket in the path), which is
// what MinIO, Ceph RGW and versitygw expect.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = cfg.MaxConns * 2
		tr.MaxIdleConnsPerHost = cfg.MaxConns * 2
		tr.IdleConnTimeout = 90 * time.Second
		// Large socket buffers let a single connection carry a full part
		// without stalls; the kernel caps them at its own limits.
		tr.WriteBufferSize = 256 << 10
		tr.ReadBufferSize = 256 << 10
		tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = 20 * time.Second
				// The client-side retry quota would turn a long outage into
				// "retry quota exceeded" errors; backoff alone is the limit.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w (check --profile and ~/.aws/config)", err)
	}
	endpoint := cfg.EndpointURL
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	if endpoint == "" && awsCfg.BaseEndpoint != nil {
		endpoint = *awsCfg.BaseEndpoint
	}
	if awsCfg.Region == "" {
		// Custom endpoints rarely care about the region, but SigV4 needs one.
		awsCfg.Region = "us-east-1"
	}
	c := &Client{Region: awsCfg.Region, Endpoint: endpoint}
	if endpoint == "" {
		c.Endpoint = "AWS S3 (" + awsCfg.Region + ")"
	}
	c.S3 = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		// ferry sends its own CRC32C/MD5 where it verifies content; the
		// SDK's default checksum pass would read every body a second time.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if endpoint != "" && isPlainHTTP(endpoint) {
			// Over plain HTTP the SDK would SHA-256 every payload for the
			// signature: a full CPU pass per byte. Integrity is carried by
			// Content-MD5/CRC32C where ferry needs it instead.
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		}
	})
	return c, nil
}

func isPlainHTTP(endpoint string) bool {
	return len(endpoint) >= 7 && endpoint[:7] == "http://"
}
