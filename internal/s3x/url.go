// Package s3x owns ferry's access to S3-compatible stores: the client built from
// the standard AWS configuration chain, the one parser of s3:// URLs, typed
// errors that name the bucket or endpoint and the fix, and streamed listings.
package s3x

import (
	"fmt"
	"strings"
)

// URL is a parsed s3://bucket/key address. Key may be empty (the bucket root)
// and keeps a trailing "/" when the user wrote one.
type URL struct {
	Bucket string
	Key    string
}

// IsURL reports whether s names an S3 location rather than a local path.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseURL parses "s3://bucket[/key]". It refuses other schemes, an empty
// bucket and bucket names S3 would refuse, naming the address and the fix.
func ParseURL(s string) (URL, error) {
	if !IsURL(s) {
		return URL{}, fmt.Errorf("%q is not an S3 address: write it as s3://bucket/prefix", s)
	}
	rest := strings.TrimPrefix(s, "s3://")
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return URL{}, fmt.Errorf("%q has no bucket name: write it as s3://bucket/prefix", s)
	}
	if err := checkBucketName(bucket); err != nil {
		return URL{}, fmt.Errorf("%q: %w", s, err)
	}
	return URL{Bucket: bucket, Key: key}, nil
}

// checkBucketName applies the rules every S3-compatible server shares: 3–63
// characters of lower-case letters, digits, '.', '-' (and '_' for legacy
// buckets), starting and ending with a letter or digit.
func checkBucketName(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c >= 'A' && c <= 'Z'
		if !ok {
			return fmt.Errorf("bucket name %q has the character %q: use lower-case letters, digits, '.' and '-'", b, c)
		}
	}
	return nil
}

// String formats the URL back as s3://bucket/key.
func (u URL) String() string {
	if u.Key == "" {
		return "s3://" + u.Bucket + "/"
	}
	return "s3://" + u.Bucket + "/" + u.Key
}

// Dir returns the URL with its key as a prefix ending in "/" (or empty for
// the bucket root), the form a recursive operation lists under.
func (u URL) Dir() URL {
	if u.Key != "" && !strings.HasSuffix(u.Key, "/") {
		u.Key += "/"
	}
	return u
}
