package keypath

import "testing"

func TestWithinJoin(t *testing.T) {
	for _, c := range []struct {
		dir, rel, in string
		ok           bool
	}{
		{".", "a/b", "a/b", true},
		{".", ".", ".", true},
		{"ExtData", "ExtData", ".", true},
		{"ExtData", "ExtData/a/b", "a/b", true},
		{"ExtData", "ExtDataX/a", "", false},
		{"ExtData", "Ext", "", false},
		{"a/b", "a/b/c", "c", true},
		{"a/b", "a", "", false},
	} {
		in, ok := Within(c.dir, c.rel)
		if in != c.in || ok != c.ok {
			t.Errorf("Within(%q, %q) = %q, %v; want %q, %v", c.dir, c.rel, in, ok, c.in, c.ok)
		}
		if ok && Join(c.dir, in) != c.rel {
			t.Errorf("Join(%q, %q) = %q, want %q", c.dir, in, Join(c.dir, in), c.rel)
		}
	}
}

func TestStoreDir(t *testing.T) {
	for in, want := range map[string]string{"/": ".", "/ExtData": "ExtData", "/a/b/": "a/b", "//x": "x"} {
		if got, err := StoreDir(in); err != nil || got != want {
			t.Errorf("StoreDir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := StoreDir("rel"); err == nil {
		t.Error("a relative file system path was accepted")
	}
}

func TestPathForms(t *testing.T) {
	for _, c := range []struct{ store, catalog string }{{".", ""}, {"a", "a"}, {"a/b", "a/b"}} {
		if got := ToCatalog(c.store); got != c.catalog {
			t.Errorf("ToCatalog(%q) = %q", c.store, got)
		}
		if got := FromCatalog(c.catalog); got != c.store {
			t.Errorf("FromCatalog(%q) = %q", c.catalog, got)
		}
	}
	for in, want := range map[string]string{"/": ".", "": ".", "/ExtData/a": "ExtData/a", "ExtData/a/": "ExtData/a"} {
		if got := FromFSx(in); got != want {
			t.Errorf("FromFSx(%q) = %q, want %q", in, got, want)
		}
	}
}
