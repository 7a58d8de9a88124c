package s3x

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Error codes ferry reports. They match S3's own codes where S3 has one.
const (
	CodeNoSuchBucket   = "NoSuchBucket"
	CodeNoSuchKey      = "NoSuchKey"
	CodeAccessDenied   = "AccessDenied"
	CodeBadCredentials = "InvalidAccessKeyId"
	CodeNoCredentials  = "NoCredentials"
	CodeUnreachable    = "EndpointUnreachable"
	CodePrecondition   = "PreconditionFailed"
)

// InvalidKey reports whether err says the key can name no object on this
// server (too long, or a name its backend refuses: MinIO answers
// XMinioInvalidObjectName for a path component over 255 bytes). Nothing
// can be stored under such a key, so there is nothing to delete there.
func InvalidKey(err error) bool {
	switch CodeOf(err) {
	case "KeyTooLongError", "XMinioInvalidObjectName", "InvalidObjectName", "XMinioObjectNameTooLong":
		return true
	}
	return false
}

// Error is an S3 failure with a message that names the bucket or endpoint
// and what to do about it. Err keeps the SDK's error for errors.As/Is.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the S3 or ferry error code in err's chain, or "".
func CodeOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Explain turns an SDK error for an operation on bucket/key into an *Error
// whose message says what went wrong and how to fix it. Errors it does not
// recognise are wrapped with the location and returned as they are.
func (c *Client) Explain(err error, op, bucket, key string) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) || errors.Is(err, context.Canceled) {
		return err
	}
	loc := "s3://" + bucket + "/" + key
	code := CodeOf(err)
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchBucket":
		return &Error{CodeNoSuchBucket, fmt.Sprintf("%s %s: bucket %q does not exist at %s: check the name, or create it first (aws s3 mb s3://%s)", op, loc, bucket, c.Endpoint, bucket), err}
	case code == "NoSuchKey" || (status == 404 && code == "NotFound"):
		return &Error{CodeNoSuchKey, fmt.Sprintf("%s %s: no such object (check the key; listings are case-sensitive)", op, loc), err}
	case (code == "AccessDenied" || code == "Forbidden" || status == 403 && code != "InvalidAccessKeyId" && code != "SignatureDoesNotMatch") && c.Access.Unsigned:
		return &Error{CodeAccessDenied, fmt.Sprintf("%s %s: access denied to an unsigned request (--no-sign-request): bucket %q does not allow s3:%s to everyone; give credentials instead (drop --no-sign-request)", op, loc, bucket, permissionFor(op)), err}
	case code == "AccessDenied" || code == "Forbidden" || status == 403 && code != "InvalidAccessKeyId" && code != "SignatureDoesNotMatch":
		return &Error{CodeAccessDenied, fmt.Sprintf("%s %s: access denied: the credentials in use lack permission for this on bucket %q; grant it (s3:%s) or use another --profile%s", op, loc, bucket, permissionFor(op), c.payerHint()), err}
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken" || code == "ExpiredToken":
		return &Error{CodeBadCredentials, fmt.Sprintf("%s %s: %s refused the credentials (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the --profile in use", op, loc, c.Endpoint, code), err}
	case code == "PreconditionFailed" || status == 412:
		return &Error{CodePrecondition, fmt.Sprintf("%s %s: the object changed while it was read (ETag no longer matches)", op, loc), err}
	case isNoCredentials(err):
		return &Error{CodeNoCredentials, fmt.Sprintf("%s %s: %s", op, loc, NoCredentialsHelp), err}
	case isUnreachable(err):
		return &Error{CodeUnreachable, fmt.Sprintf("%s %s: cannot reach the endpoint %s: is the server running and the address right (--endpoint-url, AWS_ENDPOINT_URL_S3)?", op, loc, c.Endpoint), err}
	}
	return fmt.Errorf("%s %s: %w", op, loc, err)
}

// NoCredentialsHelp is what an error says when the credential chain found
// nothing: the two ways on, and where the chain looked (--no-sign-request
// first: an association's FailureDetails keeps 256 characters).
const NoCredentialsHelp = "no AWS credentials found: for a public bucket use --no-sign-request, else give credentials where the chain looks: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile, ~/.aws/credentials, ~/.aws/config, the EC2 instance metadata service (IMDS)"

// payerHint is the AccessDenied hint for a client that does not send
// x-amz-request-payer: S3 refuses requests to a requester-pays bucket
// without it from anyone but the owner.
func (c *Client) payerHint() string {
	if c.Access.RequestPayer != "" {
		return ""
	}
	return " (a requester-pays bucket also needs --request-payer requester)"
}

func permissionFor(op string) string {
	switch op {
	case "list":
		return "ListBucket"
	case "download", "head", "get":
		return "GetObject"
	case "delete":
		return "DeleteObject"
	}
	return "PutObject"
}

func isNoCredentials(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to retrieve credentials") ||
		strings.Contains(s, "no EC2 IMDS role found") ||
		strings.Contains(s, "static credentials are empty")
}

func isUnreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
