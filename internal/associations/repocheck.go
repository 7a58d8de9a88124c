package associations

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// checkTimeout bounds one repository check: an unreachable endpoint makes
// the association MISCONFIGURED, not a worker stuck in retries.
const checkTimeout = 30 * time.Second

// ProbePrefix starts the name of the object a repository check writes (and
// deletes at once) under the prefix of an association with an export
// policy, to prove s3:PutObject: <prefix>.ferry-probe-<16 hex>.
const ProbePrefix = ".ferry-probe-"

func probeSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkRepository tells whether a's repository can be used as its
// policies need: the bucket exists and the prefix can be listed
// (s3:ListBucket), an object under it can be read (s3:GetObject, when there
// is one to read), and with an AutoExportPolicy an object can be written
// (s3:PutObject) and, with DELETED in it, deleted (s3:DeleteObject). The
// error names the bucket and the missing permission (s3x.Explain).
//
// With suffix nil it is the cheap check of an AVAILABLE association: only
// the listing of at most one key (the bucket exists, the credentials work,
// s3:ListBucket is granted).
func checkRepository(ctx context.Context, c *s3x.Client, a api.DataRepositoryAssociation, suffix func() string) error {
	if c == nil {
		return fmt.Errorf("no S3 client: the daemon was started without S3 access")
	}
	c = c.For(dra.AccessOf(a))
	u, err := s3x.ParseURL(a.DataRepositoryPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	list, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(u.Bucket), Prefix: aws.String(u.Key), MaxKeys: aws.Int32(1)})
	if err != nil || suffix == nil {
		return c.Explain(err, "list", u.Bucket, u.Key)
	}
	if len(list.Contents) > 0 {
		key := aws.ToString(list.Contents[0].Key)
		out, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(u.Bucket), Key: aws.String(key), Range: aws.String("bytes=0-0")})
		if err != nil && s3x.CodeOf(err) != "InvalidRange" { // an empty object has no byte 0
			return c.Explain(err, "get", u.Bucket, key)
		}
		if err == nil {
			io.Copy(io.Discard, out.Body)
			out.Body.Close()
		}
	}
	if a.S3 == nil || a.S3.AutoExportPolicy == nil || len(a.S3.AutoExportPolicy.Events) == 0 {
		return nil
	}
	key := u.Key + ProbePrefix + suffix()
	if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(u.Bucket), Key: aws.String(key), Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)}); err != nil {
		return c.Explain(err, "upload", u.Bucket, key)
	}
	if _, err := c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(u.Bucket), Key: aws.String(key)}); err != nil {
		if slices.Contains(a.S3.AutoExportPolicy.Events, api.EventDeleted) {
			return c.Explain(err, "delete", u.Bucket, key)
		}
		// Without DELETED in the policy ferry never deletes: the probe
		// stays, which is harmless; say so in the log only.
	}
	return nil
}
