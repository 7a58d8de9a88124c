package s3x

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// RequestPayerRequester is the one value of aws's --request-payer (and of
// the x-amz-request-payer header): the requester pays for the requests
// and the bytes of a requester-pays bucket.
const RequestPayerRequester = "requester"

// Access says how the requests to one repository are made. The zero value
// signs them with the credentials of the configuration chain.
type Access struct {
	// Unsigned sends every request without credentials and without a
	// signature (aws's --no-sign-request): what a public bucket needs, and
	// the configuration chain (environment, profile, ~/.aws, the instance
	// metadata service) is never consulted.
	Unsigned bool
	// RequestPayer "requester" adds x-amz-request-payer: requester to every
	// request (aws's --request-payer requester), which a requester-pays
	// bucket needs from anyone but its owner.
	RequestPayer string
}

// Validate checks a: RequestPayer is "" or "requester", and a request is
// not both unsigned and requester-pays (the requester who pays must be
// known, so S3 refuses anonymous requester-pays requests).
func (a Access) Validate() error {
	if a.RequestPayer != "" && a.RequestPayer != RequestPayerRequester {
		return fmt.Errorf("request payer %q is not known: the one value is %q (--request-payer requester)", a.RequestPayer, RequestPayerRequester)
	}
	if a.Unsigned && a.RequestPayer != "" {
		return fmt.Errorf("--no-sign-request and --request-payer exclude each other: a requester-pays bucket bills the requester, so its requests must be signed; drop one of them")
	}
	return nil
}

// String names a for logs and errors: "signed", "unsigned" or
// "signed, requester pays".
func (a Access) String() string {
	switch {
	case a.Unsigned:
		return "unsigned"
	case a.RequestPayer != "":
		return "signed, requester pays"
	}
	return "signed"
}

// options returns the S3 client options that make requests as a says.
// Anonymous credentials make the SDK skip signing (and skip the credential
// chain); the request payer is one header set in the build step, so every
// operation sends it — GET, HEAD, LIST, PUT, multipart and copy alike —
// without each call site setting the RequestPayer member of its input.
func (a Access) options() func(*s3.Options) {
	return func(o *s3.Options) {
		if a.Unsigned {
			o.Credentials = aws.AnonymousCredentials{}
		}
		if a.RequestPayer != "" {
			o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("X-Amz-Request-Payer", a.RequestPayer))
		}
	}
}

// For returns the client that makes requests as a says, sharing c's
// connection pool, endpoint, region and retry policy. The clients of each
// Access are made once and kept, so For is cheap on every request.
func (c *Client) For(a Access) *Client {
	if a == c.Access {
		return c
	}
	return c.base.client(a)
}

// client returns the client of a, made on first use.
func (b *clientBase) client(a Access) *Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.variants[a]; ok {
		return v
	}
	v := &Client{Endpoint: b.endpoint, Region: b.cfg.Region, Access: a, base: b}
	v.S3 = s3.NewFromConfig(b.cfg, b.opts, a.options())
	b.variants[a] = v
	return v
}
