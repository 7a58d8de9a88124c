package s3x

import (
	"bytes"
	"context"
	"errors"
	"html"
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
//
// It scans for the few elements it needs instead of decoding the whole
// document (encoding/xml took as long as creating the entries' stubs): a
// page is machine-written XML without comments or CDATA, and an entry this
// scan cannot read is only left out — its object is HEADed. A key is
// matched to the SDK's by its unescaped text, so a scan that read a key
// wrongly finds no entry rather than another object's.
func listMetadata(body []byte) map[string]map[string]string {
	var out map[string]map[string]string
	for {
		c, rest, ok := element(body, "Contents")
		if !ok {
			return out
		}
		body = rest
		key, _, okKey := element(c, "Key")
		um, _, okMeta := element(c, "UserMetadata")
		if !okKey || !okMeta {
			continue
		}
		m, ok := metadataFields(um)
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]map[string]string{}
		}
		out[xmlText(key)] = m
	}
}

// element finds the first <name>…</name> in b: its content and what
// follows it.
func element(b []byte, name string) (content, rest []byte, ok bool) {
	open, end := "<"+name+">", "</"+name+">"
	i := bytes.Index(b, []byte(open))
	if i < 0 {
		return nil, nil, false
	}
	b = b[i+len(open):]
	j := bytes.Index(b, []byte(end))
	if j < 0 {
		return nil, nil, false
	}
	return b[:j], b[j+len(end):], true
}

// metadataFields reads the <Name>value</Name> children of UserMetadata,
// keeping the x-amz-meta- ones.
func metadataFields(b []byte) (map[string]string, bool) {
	m := map[string]string{}
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		if len(b) == 0 {
			return m, true
		}
		if b[0] != '<' {
			return nil, false
		}
		gt := bytes.IndexByte(b, '>')
		if gt < 0 {
			return nil, false
		}
		name := string(b[1:gt])
		if strings.ContainsAny(name, " /") {
			return nil, false // attributes or an empty element: not what MinIO writes
		}
		end := "</" + name + ">"
		j := bytes.Index(b[gt+1:], []byte(end))
		if j < 0 {
			return nil, false
		}
		if rest, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok {
			m[rest] = xmlText(b[gt+1 : gt+1+j])
		}
		b = b[gt+1+j+len(end):]
	}
}

// xmlText is the text of character data: entities and character
// references replaced.
func xmlText(b []byte) string {
	if bytes.IndexByte(b, '&') < 0 {
		return string(b)
	}
	return html.UnescapeString(string(b))
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
