package s3x_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// metaKeys are keys a listing must match to its metadata whatever their
// characters (XML escapes, spaces, plus signs, non-ASCII).
var metaKeys = []string{"d/a.txt", "d/b & c+d.nc", "d/ünï cödé", "d/x<y>"}

func putWithMeta(t *testing.T, c *s3x.Client, bucket string) {
	t.Helper()
	for i, k := range metaKeys {
		meta := map[string]string{"file-permissions": "0100640", "file-owner": string(rune('1' + i))}
		if i == len(metaKeys)-1 {
			meta = nil // an object without user metadata
		}
		if _, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k), Metadata: meta,
		}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
}

func listAll(t *testing.T, c *s3x.Client, bucket string, withMeta bool) map[string]s3x.Object {
	t.Helper()
	got := map[string]s3x.Object{}
	err := c.List(context.Background(), bucket, s3x.ListOptions{Prefix: "d/", WithMetadata: withMeta}, func(o s3x.Object) error {
		got[o.Key] = o
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(metaKeys) {
		t.Fatalf("listed %d objects, want %d", len(got), len(metaKeys))
	}
	return got
}

// TestListWithMetadata: on MinIO a listing asked for metadata carries each
// object's user metadata, named as HeadObject names it; a listing not
// asked carries none.
func TestListWithMetadata(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c, bucket := m.Client(t), m.Bucket(t)
	putWithMeta(t, c, bucket)
	for k, o := range listAll(t, c, bucket, true) {
		head, err := c.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		if o.Metadata == nil {
			t.Fatalf("%q: no metadata in the listing", k)
		}
		if len(o.Metadata) != len(head.Metadata) {
			t.Errorf("%q: listing metadata %v, HEAD %v", k, o.Metadata, head.Metadata)
		}
		for name, v := range head.Metadata {
			if o.Metadata[name] != v {
				t.Errorf("%q: %s = %q in the listing, %q by HEAD", k, name, o.Metadata[name], v)
			}
		}
		if o.ETag != strings.Trim(aws.ToString(head.ETag), `"`) || o.Size != aws.ToInt64(head.ContentLength) {
			t.Errorf("%q: listing etag %s size %d, HEAD %s %d", k, o.ETag, o.Size, aws.ToString(head.ETag), aws.ToInt64(head.ContentLength))
		}
	}
	for k, o := range listAll(t, c, bucket, false) {
		if o.Metadata != nil {
			t.Errorf("%q: metadata %v in a listing that did not ask", k, o.Metadata)
		}
	}
}

// storeWithout is a proxy to MinIO that plays a store without the
// extension: refuse answers 400 to a listing with metadata=true (as a
// strict store may), otherwise the <UserMetadata> elements are cut from
// listings (as a store that ignores the parameter). asked counts the
// listings that carried the parameter.
func storeWithout(t *testing.T, target string, refuse bool, asked *atomic.Int64) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	cut := regexp.MustCompile(`<UserMetadata>.*?</UserMetadata>`)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Query().Get("list-type") != "2" || r.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		b = cut.ReplaceAll(b, nil)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("metadata") == "true" {
			asked.Add(1)
			if refuse {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidArgument</Code><Message>Unknown parameter metadata</Message></Error>`)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestListMetadataWithoutExtension: a store that ignores the parameter
// lists as before (no metadata: the caller HEADs); one that refuses it is
// listed again without it, and not asked again.
func TestListMetadataWithoutExtension(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c0, bucket := m.Client(t), m.Bucket(t)
	putWithMeta(t, c0, bucket)
	for _, refuse := range []bool{false, true} {
		var asked atomic.Int64
		c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: storeWithout(t, m.Endpoint, refuse, &asked), MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			for k, o := range listAll(t, c, bucket, true) {
				if o.Metadata != nil {
					t.Errorf("refuse=%v: %q has metadata %v from a store without the extension", refuse, k, o.Metadata)
				}
			}
		}
		if want := map[bool]int64{false: 2, true: 1}[refuse]; asked.Load() != want {
			t.Errorf("refuse=%v: %d listings asked for metadata, want %d", refuse, asked.Load(), want)
		}
	}
}
