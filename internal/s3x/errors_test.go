package s3x

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// apiErr builds an error shaped as the SDK returns a server's answer: the
// operation, the HTTP response with its status, and the S3 error code.
func apiErr(status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: code + " from the server"}
	if code == "" {
		inner = errors.New("http response error")
	}
	return &smithy.OperationError{
		ServiceID: "S3", OperationName: "GetObject",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      inner,
			},
			RequestID: "req-1",
		},
	}
}

// netErr builds an error shaped as the SDK returns a failed connection.
func netErr(err error) error {
	return &smithy.OperationError{
		ServiceID: "S3", OperationName: "ListObjectsV2",
		Err: fmt.Errorf("https response error StatusCode: 0, RequestID: , HostID: , canceled, retry quota exceeded: %w", err),
	}
}

// Every kind of error Explain knows becomes an *Error with its code and a
// message that names the operation, the location (bucket or endpoint) and
// the fix; the SDK's error stays in the chain.
func TestExplain(t *testing.T) {
	c := &Client{Endpoint: "http://127.0.0.1:9000"}
	const bucket, key = "my-bucket", "dir/obj"
	loc := "s3://my-bucket/dir/obj"
	tests := []struct {
		name string
		err  error
		op   string
		code string
		want []string // substrings of the message, in order
	}{
		{"no such bucket", apiErr(404, "NoSuchBucket"), "list", CodeNoSuchBucket,
			[]string{"list " + loc, `bucket "my-bucket" does not exist at http://127.0.0.1:9000`, "aws s3 mb s3://my-bucket"}},
		{"no such key", apiErr(404, "NoSuchKey"), "get", CodeNoSuchKey,
			[]string{"get " + loc, "no such object", "check the key"}},
		{"head of a missing key", apiErr(404, "NotFound"), "head", CodeNoSuchKey,
			[]string{"head " + loc, "no such object", "check the key"}},
		{"access denied", apiErr(403, "AccessDenied"), "upload", CodeAccessDenied,
			[]string{"upload " + loc, "access denied", `bucket "my-bucket"`, "grant it (s3:PutObject)", "--profile"}},
		{"forbidden head", apiErr(403, "Forbidden"), "head", CodeAccessDenied,
			[]string{"head " + loc, "access denied", "s3:GetObject"}},
		{"403 without a code", apiErr(403, ""), "list", CodeAccessDenied,
			[]string{"list " + loc, "access denied", "s3:ListBucket"}},
		{"access denied on delete", apiErr(403, "AccessDenied"), "delete", CodeAccessDenied,
			[]string{"delete " + loc, "s3:DeleteObject"}},
		{"unknown access key", apiErr(403, "InvalidAccessKeyId"), "list", CodeBadCredentials,
			[]string{"list " + loc, "http://127.0.0.1:9000 refused the credentials (InvalidAccessKeyId)", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", "--profile"}},
		{"wrong secret", apiErr(403, "SignatureDoesNotMatch"), "get", CodeBadCredentials,
			[]string{"refused the credentials (SignatureDoesNotMatch)", "AWS_SECRET_ACCESS_KEY"}},
		{"invalid token", apiErr(400, "InvalidToken"), "get", CodeBadCredentials,
			[]string{"refused the credentials (InvalidToken)"}},
		{"expired token", apiErr(400, "ExpiredToken"), "get", CodeBadCredentials,
			[]string{"refused the credentials (ExpiredToken)"}},
		{"precondition", apiErr(412, "PreconditionFailed"), "download", CodePrecondition,
			[]string{"download " + loc, "the object changed while it was read (ETag no longer matches)"}},
		{"412 without a code", apiErr(412, ""), "download", CodePrecondition,
			[]string{"ETag no longer matches"}},
		{"no credentials", netErr(errors.New("get identity: get credentials: failed to refresh cached credentials, failed to retrieve credentials")), "list", CodeNoCredentials,
			[]string{"list " + loc, "no AWS credentials found", "--no-sign-request", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", "--profile", "~/.aws/credentials", "(IMDS)"}},
		{"empty static credentials", netErr(errors.New("static credentials are empty")), "list", CodeNoCredentials,
			[]string{"no AWS credentials found"}},
		{"connection refused", netErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), "list", CodeUnreachable,
			[]string{"list " + loc, "cannot reach the endpoint http://127.0.0.1:9000", "--endpoint-url, AWS_ENDPOINT_URL_S3"}},
		{"unknown host", netErr(&net.DNSError{Err: "no such host", Name: "s3.invalid", IsNotFound: true}), "get", CodeUnreachable,
			[]string{"cannot reach the endpoint http://127.0.0.1:9000"}},
		{"no route", netErr(syscall.EHOSTUNREACH), "get", CodeUnreachable,
			[]string{"cannot reach the endpoint"}},
		{"network down", netErr(syscall.ENETUNREACH), "get", CodeUnreachable,
			[]string{"cannot reach the endpoint"}},
		{"dial timeout", netErr(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")}), "get", CodeUnreachable,
			[]string{"cannot reach the endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Explain(tt.err, tt.op, bucket, key)
			var fe *Error
			if !errors.As(got, &fe) {
				t.Fatalf("Explain = %T %v; want an *Error", got, got)
			}
			if fe.Code != tt.code || CodeOf(got) != tt.code {
				t.Errorf("code %q (CodeOf %q); want %q", fe.Code, CodeOf(got), tt.code)
			}
			msg := got.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("message %q lacks %q (in this order: %q)", msg, w, tt.want)
				}
				rest = rest[i+len(w):]
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("the SDK's error is not in the chain of %v", got)
			}
		})
	}
}

// Errors Explain does not know (throttling, a server error, a key the
// server refuses, a plain failure) pass through wrapped with the operation
// and the location, their code still readable; nil, a cancel and an error
// already explained pass through unchanged.
func TestExplainPassesThrough(t *testing.T) {
	c := &Client{Endpoint: "http://127.0.0.1:9000"}
	for _, tt := range []struct {
		name string
		err  error
		code string
	}{
		{"throttled", apiErr(503, "SlowDown"), "SlowDown"},
		{"internal error", apiErr(500, "InternalError"), "InternalError"},
		{"key too long", apiErr(400, "KeyTooLongError"), "KeyTooLongError"},
		{"invalid object name", apiErr(400, "XMinioInvalidObjectName"), "XMinioInvalidObjectName"},
		{"plain", errors.New("short read"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Explain(tt.err, "upload", "b", "k")
			var fe *Error
			if errors.As(got, &fe) {
				t.Fatalf("Explain = %v; an unknown error must not be explained", got)
			}
			if want := "upload s3://b/k: " + tt.err.Error(); got.Error() != want {
				t.Errorf("Explain = %q; want %q", got, want)
			}
			if !errors.Is(got, tt.err) || CodeOf(got) != tt.code {
				t.Errorf("chain lost: errors.Is %v, CodeOf %q; want %q", errors.Is(got, tt.err), CodeOf(got), tt.code)
			}
		})
	}
	if got := c.Explain(nil, "get", "b", "k"); got != nil {
		t.Errorf("Explain(nil) = %v", got)
	}
	canceled := fmt.Errorf("get: %w", context.Canceled)
	if got := c.Explain(canceled, "get", "b", "k"); got != canceled {
		t.Errorf("Explain(canceled) = %v; want it unchanged", got)
	}
	explained := c.Explain(apiErr(404, "NoSuchBucket"), "list", "b", "")
	if got := c.Explain(fmt.Errorf("again: %w", explained), "get", "other", "k"); got.Error() != "again: "+explained.Error() {
		t.Errorf("Explain(explained) = %v; want it unchanged", got)
	}
}

// InvalidKey recognises the codes of a key no object can have.
func TestInvalidKey(t *testing.T) {
	for code, want := range map[string]bool{
		"KeyTooLongError": true, "XMinioInvalidObjectName": true, "InvalidObjectName": true,
		"XMinioObjectNameTooLong": true, "NoSuchKey": false, "AccessDenied": false, "": false,
	} {
		if got := InvalidKey(apiErr(400, code)); got != want {
			t.Errorf("InvalidKey(%q) = %v; want %v", code, got, want)
		}
	}
	if InvalidKey(nil) {
		t.Error("InvalidKey(nil)")
	}
}
