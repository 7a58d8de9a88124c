package s3x

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
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
	// Access is how the client's requests are made (--no-sign-request,
	// --request-payer); Client.For makes clients of other Access on the
	// same connection pool.
	Access Access
}

// Client is the S3 client every part of ferry shares, so that all requests
// draw on one connection pool.
type Client struct {
	S3 *s3.Client
	// Endpoint is what errors name: the custom endpoint, or "AWS S3 (region)".
	Endpoint string
	Region   string
	// Access is how this client's requests are made.
	Access Access
	base   *clientBase
}

// clientBase is what the clients of one New share: the loaded
// configuration and client options (so one connection pool), and the
// client of each Access made so far (Client.For).
type clientBase struct {
	endpoint string
	cfg      aws.Config
	opts     func(*s3.Options)
	mu       sync.Mutex
	variants map[Access]*Client
	// noListMeta: the store refused ListOptions.WithMetadata once; it is
	// not asked again (listmeta.go).
	noListMeta atomic.Bool
}

// New builds a Client from cfg and the standard configuration chain.
// Custom endpoints use path-style addressing (bucket in the path), which is
// what MinIO, Ceph RGW and versitygw expect.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Access.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	httpClient := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 10 * time.Second
		d.KeepAlive = 30 * time.Second
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = cfg.MaxConns * 2
		tr.MaxIdleConnsPerHost = cfg.MaxConns * 2
		tr.IdleConnTimeout = 90 * time.Second
		// Large socket buffers let a single connection carry a full part
		// without stalls; the kernel caps them at its own limits.
		tr.WriteBufferSize = 256 << 10
		tr.ReadBufferSize = 256 << 10
	})
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = cfg.MaxAttempts
			o.MaxBackoff = 20 * time.Second
			// The client-side retry quota would turn a long outage into
			// "retry quota exceeded" errors; backoff alone is the limit.
			o.RateLimiter = ratelimit.None
		})
	}
	// The HTTP client and the retryer above are S3's only; the credential
	// chain's clients (STS, SSO, the instance metadata service) keep the
	// SDK's own. See loadConfig for the metadata service's bound.
	awsCfg, err := loadConfig(ctx, cfg)
	if err != nil {
		return nil, err
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
	named := endpoint
	if endpoint == "" {
		named = "AWS S3 (" + awsCfg.Region + ")"
	}
	s3opts := func(o *s3.Options) {
		o.HTTPClient = httpClient
		o.Retryer = retryer()
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
	}
	b := &clientBase{endpoint: named, cfg: awsCfg, opts: s3opts, variants: map[Access]*Client{}}
	return b.client(cfg.Access), nil
}

// loadConfig loads the configuration chain (environment, ~/.aws/config
// and credentials, the profile) with the instance metadata service (IMDS)
// held to one attempt per request, as the aws CLI does
// (metadata_service_num_attempts = 1): with the SDK's timeouts (250 ms to
// connect, 500 ms to the response headers) a machine without credentials
// and without a metadata service learns it at once (0.1 s when the
// service refuses the connection) or in about a second (1.1 s when it
// never answers). Before, the chain shared S3's retryer (ten attempts):
// 5.0 s either way, the metadata operation's own timeout; the SDK's
// default retryer (three attempts up to 1 s apart, for the token and again
// for the IMDSv1 fallback) takes about 4 s (docs/architecture.md, "S3
// access"). The metadata client is made from a first load, so it keeps
// every setting of the chain (AWS_EC2_METADATA_SERVICE_ENDPOINT, the
// endpoint mode, ec2_metadata_service_endpoint in ~/.aws/config,
// AWS_EC2_METADATA_DISABLED). The chain's failure is made final
// (chainProvider). An unsigned Client never asks the chain anything
// (Access.options).
func loadConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	first, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w (check --profile and ~/.aws/config)", err)
	}
	md := imds.NewFromConfig(first, func(o *imds.Options) {
		o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), 1)
	})
	opts = append(opts, config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = md }))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w (check --profile and ~/.aws/config)", err)
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = aws.NewCredentialsCache(chainProvider{awsCfg.Credentials})
	}
	return awsCfg, nil
}

func isPlainHTTP(endpoint string) bool {
	return len(endpoint) >= 7 && endpoint[:7] == "http://"
}

// chainProvider is the configuration chain's credential provider with
// its failure made final: the S3 retryer would otherwise retry a request
// whose credentials could not be found (the metadata service refused a
// connection: a retryable error) up to ten times, each time asking the
// whole chain again.
type chainProvider struct{ aws.CredentialsProvider }

func (p chainProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, noCredentialsError{err}
	}
	return c, nil
}

// noCredentialsError is a failure of the credential chain; it is never
// retried.
type noCredentialsError struct{ err error }

func (e noCredentialsError) Error() string        { return "failed to retrieve credentials: " + e.err.Error() }
func (e noCredentialsError) Unwrap() error        { return e.err }
func (e noCredentialsError) RetryableError() bool { return false }
