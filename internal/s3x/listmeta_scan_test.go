package s3x

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"testing"
)

// TestListMetadataScan: the scan reads what encoding/xml would, for keys
// and values that need escaping, and leaves out entries it cannot read.
func TestListMetadataScan(t *testing.T) {
	esc := func(s string) string {
		var b bytes.Buffer
		if err := xml.EscapeText(&b, []byte(s)); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	keys := []string{"plain", "a & b", "<tag>", `q"uote'`, "tab\there", "line\nbreak", "ünï", "&amp;literal"}
	var page bytes.Buffer
	page.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>`)
	for i, k := range keys {
		fmt.Fprintf(&page, `<Contents><Key>%s</Key><Size>%d</Size><UserMetadata><content-type>text/plain</content-type><X-Amz-Meta-File-Owner>%d</X-Amz-Meta-File-Owner><X-Amz-Meta-Note>%s</X-Amz-Meta-Note></UserMetadata><Internal><K>1</K></Internal></Contents>`,
			esc(k), i, i, esc(k))
	}
	page.WriteString(`<Contents><Key>no-meta</Key><Size>1</Size></Contents>`)
	page.WriteString(`<Contents><Key>odd</Key><UserMetadata><X-Amz-Meta-A x="1">v</X-Amz-Meta-A></UserMetadata></Contents>`)
	page.WriteString(`<Contents><Key>empty</Key><UserMetadata></UserMetadata></Contents>`)
	page.WriteString(`</ListBucketResult>`)
	got := listMetadata(page.Bytes())
	for i, k := range keys {
		m, ok := got[k]
		if !ok {
			t.Errorf("%q: no metadata (have %d entries)", k, len(got))
			continue
		}
		if m["file-owner"] != fmt.Sprint(i) || m["note"] != k || len(m) != 2 {
			t.Errorf("%q: metadata %q", k, m)
		}
	}
	if _, ok := got["no-meta"]; ok {
		t.Error("an entry without UserMetadata has metadata")
	}
	if _, ok := got["odd"]; ok {
		t.Error("an entry the scan cannot read has metadata (it must be HEADed)")
	}
	if m, ok := got["empty"]; !ok || len(m) != 0 {
		t.Errorf("an entry with empty UserMetadata: %v %v, want an empty map", m, ok)
	}
}
