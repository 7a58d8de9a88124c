package s3x

import "testing"

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    URL
		wantErr bool
	}{
		{in: "s3://bucket", want: URL{Bucket: "bucket"}},
		{in: "s3://bucket/", want: URL{Bucket: "bucket"}},
		{in: "s3://bucket/a/b", want: URL{Bucket: "bucket", Key: "a/b"}},
		{in: "s3://bucket/a/b/", want: URL{Bucket: "bucket", Key: "a/b/"}},
		{in: "s3://", wantErr: true},
		{in: "s3:///key", wantErr: true},
		{in: "http://bucket/key", wantErr: true},
		{in: "bucket/key", wantErr: true},
		{in: "s3://ab/key", wantErr: true},
		{in: "s3://bad*name/key", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseURL(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestURLDir(t *testing.T) {
	if got := (URL{Bucket: "b", Key: "p"}).Dir().Key; got != "p/" {
		t.Errorf("Dir of p = %q, want p/", got)
	}
	if got := (URL{Bucket: "b"}).Dir().Key; got != "" {
		t.Errorf("Dir of root = %q, want empty", got)
	}
}
