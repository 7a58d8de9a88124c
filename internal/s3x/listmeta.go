package s3x

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Listing with metadata.
//
// S3's ListObjectsV2 carries no user metadata, so a file system that shows
// the POSIX attributes stored in x-amz-meta-* headers must HEAD every
// object it lists. MinIO extends ListObjectsV2: with the query parameter
// metadata=true each entry carries a <UserMetadata> element with the
// object's headers (minio-go exposes it as ListObjectsOptions.WithMetadata).
// ListOptions.WithMetadata asks for it; an entry that comes with it needs
// no HEAD (Object.Metadata is then not nil). Stores without the extension
// ignore the parameter — their entries have no metadata and are HEADed as
// before — or refuse it: then the client stops asking (noListMeta) and
// lists again without it.

// withListMetadata adds metadata=true to a ListObjectsV2 request and keeps
// a copy of the response body in *body for listMetadata (the SDK's
// deserializer reads the same bytes and ignores the extra elements).
func withListMetadata(body *[]byte) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			addParam := middleware.BuildMiddlewareFunc("FerryListMetadataParam", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					if req.URL.RawQuery != "" {
						req.URL.RawQuery += "&"
					}
					req.URL.RawQuery += "metadata=true"
				}
				return next.HandleBuild(ctx, in)
			})
			if err := st.Build.Add(addParam, middleware.After); err != nil {
				return err
			}
			// Added after the operation's deserializer, so it runs
			// first on the way back: it sees the raw response.
			keep := middleware.DeserializeMiddlewareFunc("FerryListMetadataBody", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if err != nil {
					return out, md, err
				}
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp.StatusCode == http.StatusOK {
					b, rerr := io.ReadAll(resp.Body)
					if rerr != nil {
						return out, md, rerr // the SDK closes the body
					}
					resp.Body.Close()
					*body = b
					resp.Body = io.NopCloser(bytes.NewReader(b))
				}
				return out, md, nil
			})
			return st.Deserialize.Add(keep, middleware.After)
		})
	}
}

// listMetadata reads the user metadata of each entry of a ListObjectsV2
// response body that has any: key → headers, named as the SDK names
// HeadObjectOutput.Metadata (lower case, without "x-amz-meta-"). Entries
// without a <UserMetadata> element are absent.
func listMetadata(body []byte) (map[string]map[string]string, error) {
	var page struct {
		Contents []struct {
			Key  string
			Meta *struct {
				Fields []struct {
					XMLName xml.Name
					Value   string `xml:",chardata"`
				} `xml:",any"`
			} `xml:"UserMetadata"`
		}
	}
	if err := xml.Unmarshal(body, &page); err != nil {
		return nil, err
	}
	var out map[string]map[string]string
	for _, c := range page.Contents {
		if c.Meta == nil {
			continue
		}
		m := map[string]string{}
		for _, f := range c.Meta.Fields {
			name := strings.ToLower(f.XMLName.Local)
			if rest, ok := strings.CutPrefix(name, "x-amz-meta-"); ok {
				m[rest] = f.Value
			}
		}
		if out == nil {
			out = map[string]map[string]string{}
		}
		out[c.Key] = m
	}
	return out, nil
}

// refusedListMetadata reports whether err is a store's refusal of the
// metadata parameter (400 or 501), not a failure of the listing itself.
func refusedListMetadata(err error) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	if s := re.HTTPStatusCode(); s != http.StatusBadRequest && s != http.StatusNotImplemented {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidBucketName", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed", "InvalidRequest":
			return false // about the request's bucket or signature, not the parameter
		}
	}
	return true
}
