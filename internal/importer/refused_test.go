package importer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"golang.org/x/sys/unix"
)

// fakeBucket serves ListObjectsV2 (prefix, delimiter; one page), HEAD and
// GET over a fixed set of keys. It exists for what MinIO cannot produce:
// keys such as "../x", "a/./b", "a//b", 300-byte names and a file next to a
// directory of the same name (MinIO refuses them, its objects are files,
// while AWS S3 stores them), and an object in an archive tier (a body
// starting "GLACIER:" answers GET with InvalidObjectState, as S3 does).
type fakeBucket map[string]string

func (fb fakeBucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucketKey := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(bucketKey, "/")
	etag := func(body string) string { s := md5.Sum([]byte(body)); return `"` + hex.EncodeToString(s[:]) + `"` }
	if key != "" {
		body, ok := fb[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if strings.HasPrefix(body, "GLACIER:") && r.Method == http.MethodGet {
			// What S3 answers for an object in an archive tier.
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage class</Message></Error>`))
			return
		}
		w.Header().Set("ETag", etag(body))
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Length", itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write([]byte(body))
		}
		return
	}
	q := r.URL.Query()
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int
	}
	type cp struct{ Prefix string }
	var res struct {
		XMLName        xml.Name `xml:"ListBucketResult"`
		Name           string
		Prefix         string
		KeyCount       int
		MaxKeys        int
		IsTruncated    bool
		Contents       []content
		CommonPrefixes []cp
	}
	res.Name, res.Prefix, res.MaxKeys = bucket, prefix, 1000
	seen := map[string]bool{}
	var keys []string
	for k := range fb {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				p := k[:len(prefix)+i+1]
				if !seen[p] {
					seen[p] = true
					res.CommonPrefixes = append(res.CommonPrefixes, cp{p})
				}
				continue
			}
		}
		res.Contents = append(res.Contents, content{k, "2006-01-02T15:04:05.000Z", etag(fb[k]), len(fb[k])})
	}
	res.KeyCount = len(res.Contents) + len(res.CommonPrefixes)
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(&res)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestRefusedKeysCountedNeverFollowed(t *testing.T) {
	long := strings.Repeat("L", 300)
	fb := fakeBucket{
		"data/ok":         "ok",
		"data/../x":       "escape",
		"data/a/./b":      "dot",
		"data/a//b":       "empty component",
		"data/" + long:    "too long",
		"data/c/" + long:  "too long below",
		"data/same":       "file",
		"data/same/child": "child",
		"data/a/fine":     "fine",
		"data/cold":       "GLACIER: not readable until restored",
	}
	srv := httptest.NewServer(fb)
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "fake")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: srv.URL, Region: "us-east-1", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := catalog.OpenSQLite(context.Background(), st.MetaPath()+"/catalog.db", catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if err := st.MkdirAll("ExtData", 0o755); err != nil {
		t.Fatal(err)
	}
	im := New(Config{Store: st, Catalog: cat, S3: c})
	defer im.Close()
	a := api.DataRepositoryAssociation{AssociationId: "dra-0123456789abcdef0", FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://bucket/data/", Lifecycle: api.LifecycleAvailable}
	im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	counts, err := im.ImportAll(context.Background(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An object in an archive tier: imported, its reads fail with EIO.
	f, err := st.OpenFile("ExtData/cold", 0, 0)
	if err != nil {
		t.Fatalf("the archived object's stub: %v", err)
	}
	defer f.Close()
	err = im.EnsureData(context.Background(), "ExtData/cold", f, 0, 1)
	var re *ReadError
	if !errors.As(err, &re) || re.Code != CodeUnsupportedTier || store.Errno(err) != unix.EIO {
		t.Errorf("read of an object in GLACIER: %v (errno %v)", err, store.Errno(err))
	}
	t.Logf("GLACIER read: %v", err)
	// Refused: "../" (prefix), "a/./" (prefix), "a//" (prefix), the long
	// name, the long name below c, and the file "same".
	want := map[string]int64{"S3ObjectPathNotPosixCompliant": 5, CodeTypeMismatch: 1}
	for k, v := range want {
		if counts.RefusedByCode[k] != v {
			t.Errorf("refused %s: %d, want %d (all: %v)", k, counts.RefusedByCode[k], v, counts.RefusedByCode)
		}
	}
	var got []string
	walk(t, st, ".", &got)
	wantTree := []string{"ExtData/", "ExtData/a/", "ExtData/a/fine", "ExtData/c/", "ExtData/cold", "ExtData/ok", "ExtData/same/", "ExtData/same/child"}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(wantTree, " ") {
		t.Errorf("store tree:\n got %v\nwant %v", got, wantTree)
	}
	if _, err := os.Stat(dir + "/x"); err == nil {
		t.Error("a key escaped the association")
	}
}

func walk(t *testing.T, st *store.Store, rel string, out *[]string) {
	r, err := st.Readdir(rel)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		ents, err := r.Next(0)
		for _, e := range ents {
			p := e.Name
			if rel != "." {
				p = rel + "/" + e.Name
			}
			if e.Type == 0o040000 {
				*out = append(*out, p+"/")
				walk(t, st, p, out)
			} else {
				*out = append(*out, p)
			}
		}
		if err != nil || len(ents) == 0 {
			return
		}
	}
}
