package posixmeta

import (
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

var lastMod = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func TestEncode(t *testing.T) {
	mt := time.Unix(1595002920, 0)
	at := time.Unix(1595002921, 123456789)
	tests := []struct {
		name string
		a    Attrs
		want map[string]string
	}{
		{"file", Attrs{Mode: TypeRegular | 0o664, UID: 1000, GID: 100, Mtime: mt, Atime: at}, map[string]string{
			KeyPermissions: "0100664", KeyOwner: "1000", KeyGroup: "100",
			KeyMtime: "1595002920000000000ns", KeyAtime: "1595002921123456789ns", KeyUserAgent: "ferry/v1.2.3",
		}},
		{"dir, setuid/setgid dropped, sticky kept", Attrs{Mode: TypeDir | 0o7777, Mtime: mt, Atime: mt}, map[string]string{
			KeyPermissions: "0041777", KeyOwner: "0", KeyGroup: "0",
			KeyMtime: "1595002920000000000ns", KeyAtime: "1595002920000000000ns", KeyUserAgent: "ferry/v1.2.3",
		}},
		{"symlink", Attrs{Mode: TypeSymlink | 0o777, UID: 4294967294, GID: 7, Mtime: time.Unix(0, -1), Atime: time.Unix(0, 0)}, map[string]string{
			KeyPermissions: "0120777", KeyOwner: "4294967294", KeyGroup: "7",
			KeyMtime: "-1ns", KeyAtime: "0ns", KeyUserAgent: "ferry/v1.2.3",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(tt.a, "v1.2.3")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Encode = %v\nwant     %v", got, tt.want)
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	ok := Attrs{Mode: TypeRegular | 0o644, Mtime: lastMod, Atime: lastMod}
	tests := []struct {
		name string
		edit func(*Attrs)
	}{
		{"no type", func(a *Attrs) { a.Mode = 0o644 }},
		{"fifo", func(a *Attrs) { a.Mode = 0o010644 }},
		{"socket", func(a *Attrs) { a.Mode = 0o140644 }},
		{"block device", func(a *Attrs) { a.Mode = 0o060644 }},
		{"bits beyond st_mode", func(a *Attrs) { a.Mode = 0o1100644 }},
		{"uid -1", func(a *Attrs) { a.UID = math.MaxUint32 }},
		{"gid -1", func(a *Attrs) { a.GID = math.MaxUint32 }},
		{"zero mtime", func(a *Attrs) { a.Mtime = time.Time{} }},
		{"zero atime", func(a *Attrs) { a.Atime = time.Time{} }},
		{"mtime year 2300", func(a *Attrs) { a.Mtime = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"atime year 1600", func(a *Attrs) { a.Atime = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.edit(&a)
			if m, err := Encode(a, "v1"); err == nil {
				t.Errorf("Encode(%+v) = %v; want error", a, m)
			}
		})
	}
	if _, err := Encode(ok, "v1\r\nx-evil: 1"); err == nil {
		t.Error("Encode accepted a version with CR LF")
	}
	m, err := Encode(ok, "")
	if err != nil || m[KeyUserAgent] != "ferry/dev" {
		t.Errorf("Encode with empty version: %v, %v", m, err)
	}
}

func TestDecode(t *testing.T) {
	type want struct {
		a                            Attrs
		mode, uid, gid, mtime, atime Status
		codes                        []string
	}
	def := func(mode uint32) Attrs {
		return Attrs{Mode: mode, Mtime: lastMod, Atime: lastMod}
	}
	full := map[string]string{
		KeyPermissions: "0100664", KeyOwner: "1000", KeyGroup: "100",
		KeyMtime: "1595002920000000000ns", KeyAtime: "1595002921000", KeyUserAgent: "aws-fsx-lustre",
	}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(full)
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "<delete>" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	fullAttrs := Attrs{Mode: 0o100664, UID: 1000, GID: 100, Mtime: time.Unix(1595002920, 0), Atime: time.Unix(1595002921, 0)}
	tests := []struct {
		name string
		meta map[string]string
		dir  bool
		want want
	}{
		{"nothing, file", nil, false, want{a: def(0o100644)}},
		{"nothing, dir", map[string]string{"other": "x"}, true, want{a: def(0o040755)}},
		{"FSx file", full, false, want{a: fullAttrs, mode: Valid, uid: Valid, gid: Valid, mtime: Valid, atime: Valid}},
		{"upper-case keys", map[string]string{"File-Permissions": "0100600", "FILE-OWNER": "5"}, false,
			want{a: Attrs{Mode: 0o100600, UID: 5, Mtime: lastMod, Atime: lastMod}, mode: Valid, uid: Valid}},
		{"same key twice, same value", map[string]string{"file-owner": "5", "File-Owner": "5"}, false,
			want{a: Attrs{Mode: 0o100644, UID: 5, Mtime: lastMod, Atime: lastMod}, uid: Valid}},
		{"same key twice, different values", map[string]string{"file-owner": "5", "File-Owner": "6"}, false,
			want{a: def(0o100644), uid: Invalid, codes: []string{CodeInvalid}}},
		{"milliseconds", map[string]string{KeyMtime: "1595002920123", KeyAtime: "-1"}, false,
			want{a: Attrs{Mode: 0o100644, Mtime: time.Unix(1595002920, 123e6), Atime: time.Unix(0, -1e6)}, mtime: Valid, atime: Valid}},
		{"atime defaults to decoded mtime", map[string]string{KeyMtime: "7ns"}, false,
			want{a: Attrs{Mode: 0o100644, Mtime: time.Unix(0, 7), Atime: time.Unix(0, 7)}, mtime: Valid}},
		{"spaces around values", map[string]string{KeyOwner: " 12\t"}, false,
			want{a: Attrs{Mode: 0o100644, UID: 12, Mtime: lastMod, Atime: lastMod}, uid: Valid}},
		{"dir", map[string]string{KeyPermissions: "0040700"}, true,
			want{a: def(0o040700), mode: Valid}},
		{"dir without leading zero", map[string]string{KeyPermissions: "40700"}, true,
			want{a: def(0o040700), mode: Valid}},
		{"symlink", map[string]string{KeyPermissions: "0120777"}, false,
			want{a: def(0o120777), mode: Valid}},
		{"permissions only, file", map[string]string{KeyPermissions: "0600"}, false,
			want{a: def(0o100600), mode: Valid}},
		{"permissions only, dir", map[string]string{KeyPermissions: "750"}, true,
			want{a: def(0o040750), mode: Valid}},
		{"setuid setgid dropped", map[string]string{KeyPermissions: "0106755"}, false,
			want{a: def(0o100755), mode: Valid}},
		{"sticky kept", map[string]string{KeyPermissions: "0041777"}, true,
			want{a: def(0o041777), mode: Valid}},
		{"dir mode on a file key", map[string]string{KeyPermissions: "0040755"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeTypeMismatch}}},
		{"file mode on a dir key", map[string]string{KeyPermissions: "0100644"}, true,
			want{a: def(0o040755), mode: Invalid, codes: []string{CodeTypeMismatch}}},
		{"symlink mode on a dir key", map[string]string{KeyPermissions: "0120777"}, true,
			want{a: def(0o040755), mode: Invalid, codes: []string{CodeTypeMismatch}}},
		{"fifo", map[string]string{KeyPermissions: "0010644"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"not octal", map[string]string{KeyPermissions: "0100684"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"hex mode", map[string]string{KeyPermissions: "0x81a4"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"symbolic mode", map[string]string{KeyPermissions: "-rw-r--r--"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"mode too big", map[string]string{KeyPermissions: "0200000"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"mode overflow", map[string]string{KeyPermissions: "777777777777"}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"empty mode", map[string]string{KeyPermissions: ""}, false,
			want{a: def(0o100644), mode: Invalid, codes: []string{CodeInvalid}}},
		{"negative uid", map[string]string{KeyOwner: "-1"}, false,
			want{a: def(0o100644), uid: Invalid, codes: []string{CodeInvalid}}},
		{"uid 2^32-1", map[string]string{KeyOwner: "4294967295"}, false,
			want{a: def(0o100644), uid: Invalid, codes: []string{CodeInvalid}}},
		{"uid 2^32", map[string]string{KeyOwner: "4294967296"}, false,
			want{a: def(0o100644), uid: Invalid, codes: []string{CodeInvalid}}},
		{"user name", map[string]string{KeyOwner: "root", KeyGroup: "+5"}, false,
			want{a: def(0o100644), uid: Invalid, gid: Invalid, codes: []string{CodeInvalid, CodeInvalid}}},
		{"bad times", map[string]string{KeyMtime: "yesterday", KeyAtime: "12 ns"}, false,
			want{a: def(0o100644), mtime: Invalid, atime: Invalid, codes: []string{CodeInvalid, CodeInvalid}}},
		{"only ns", map[string]string{KeyMtime: "ns"}, false,
			want{a: def(0o100644), mtime: Invalid, codes: []string{CodeInvalid}}},
		{"float time", map[string]string{KeyMtime: "1.5"}, false,
			want{a: def(0o100644), mtime: Invalid, codes: []string{CodeInvalid}}},
		{"ms beyond 2262", map[string]string{KeyMtime: "9223372036855"}, false,
			want{a: def(0o100644), mtime: Invalid, codes: []string{CodeInvalid}}},
		{"ns beyond int64", map[string]string{KeyMtime: "9223372036854775808ns"}, false,
			want{a: def(0o100644), mtime: Invalid, codes: []string{CodeInvalid}}},
		{"max ns", map[string]string{KeyMtime: "9223372036854775807ns"}, false,
			want{a: Attrs{Mode: 0o100644, Mtime: time.Unix(0, math.MaxInt64), Atime: time.Unix(0, math.MaxInt64)}, mtime: Valid}},
		{"one bad header, the rest kept", with(KeyGroup, "staff", KeyAtime, "<delete>"), false,
			want{a: Attrs{Mode: 0o100664, UID: 1000, Mtime: fullAttrs.Mtime, Atime: fullAttrs.Mtime}, mode: Valid, uid: Valid, gid: Invalid, mtime: Valid, codes: []string{CodeInvalid}}},
		{"x-amz-meta- prefix is not ours", map[string]string{"x-amz-meta-file-owner": "5"}, false,
			want{a: def(0o100644)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decode(tt.meta, tt.dir, lastMod)
			w := tt.want
			if !attrsEqual(d.Attrs, w.a) {
				t.Errorf("Attrs = %s\nwant    %s", fmtAttrs(d.Attrs), fmtAttrs(w.a))
			}
			got := [...]Status{d.Mode, d.UID, d.GID, d.Mtime, d.Atime}
			exp := [...]Status{w.mode, w.uid, w.gid, w.mtime, w.atime}
			if got != exp {
				t.Errorf("status mode,uid,gid,mtime,atime = %v; want %v", got, exp)
			}
			var codes []string
			for _, p := range d.Problems {
				codes = append(codes, p.Code)
				if p.Reason == "" || p.Key == "" || !strings.Contains(p.Error(), "x-amz-meta-"+p.Key) {
					t.Errorf("problem %q lacks key or reason", p.Error())
				}
			}
			if strings.Join(codes, ",") != strings.Join(w.codes, ",") {
				t.Errorf("problem codes = %v; want %v (%v)", codes, w.codes, d.Err())
			}
			if (d.Err() == nil) != (len(w.codes) == 0) {
				t.Errorf("Err() = %v with %d problems", d.Err(), len(d.Problems))
			}
			if d.HasPOSIX() != (w.mode == Valid || w.uid == Valid || w.gid == Valid || w.mtime == Valid || w.atime == Valid) {
				t.Errorf("HasPOSIX() = %v", d.HasPOSIX())
			}
		})
	}
}

func TestDecodeErrIs(t *testing.T) {
	d := Decode(map[string]string{KeyPermissions: "0040755"}, false, lastMod)
	var he *HeaderError
	if !errors.As(d.Err(), &he) || he.Code != CodeTypeMismatch || he.Key != KeyPermissions || he.Value != "0040755" {
		t.Fatalf("Err() = %v; want a HeaderError for %s", d.Err(), KeyPermissions)
	}
}

func TestMerge(t *testing.T) {
	current := Attrs{Mode: 0o100600, UID: 1000, GID: 1000, Mtime: time.Unix(100, 0), Atime: time.Unix(200, 0)}
	tests := []struct {
		name string
		meta map[string]string
		want Attrs
	}{
		// Changed object without POSIX metadata: keep mode/owner/atime,
		// mtime becomes LastModified.
		{"no metadata", nil, Attrs{Mode: 0o100600, UID: 1000, GID: 1000, Mtime: lastMod, Atime: time.Unix(200, 0)}},
		{"invalid metadata counts as none", map[string]string{KeyOwner: "bob", KeyPermissions: "x"},
			Attrs{Mode: 0o100600, UID: 1000, GID: 1000, Mtime: lastMod, Atime: time.Unix(200, 0)}},
		{"valid headers win", map[string]string{KeyOwner: "7", KeyPermissions: "0100444", KeyMtime: "5ns"},
			Attrs{Mode: 0o100444, UID: 7, GID: 1000, Mtime: time.Unix(0, 5), Atime: time.Unix(200, 0)}},
		{"type comes from the object", map[string]string{KeyPermissions: "0120777"},
			Attrs{Mode: 0o120777, UID: 1000, GID: 1000, Mtime: lastMod, Atime: time.Unix(200, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decode(tt.meta, false, lastMod).Merge(current)
			if !attrsEqual(got, tt.want) {
				t.Errorf("Merge = %s\nwant    %s", fmtAttrs(got), fmtAttrs(tt.want))
			}
		})
	}
	// A symlink replaced by a plain object without metadata becomes a file.
	link := Attrs{Mode: 0o120777, Mtime: time.Unix(1, 0), Atime: time.Unix(1, 0)}
	if got := Decode(nil, false, lastMod).Merge(link); got.Mode != DefaultFileMode {
		t.Errorf("Merge over a symlink = %#o; want %#o", got.Mode, DefaultFileMode)
	}
}

func TestForeignAndForExport(t *testing.T) {
	imported := map[string]string{
		"file-permissions": "0100644", "File-Owner": "0", "user-agent": "aws-datasync",
		"project": "climate", "Content-Origin": "sensor-7",
	}
	f := Foreign(imported)
	want := map[string]string{"project": "climate", "Content-Origin": "sensor-7"}
	if !maps.Equal(f, want) {
		t.Errorf("Foreign = %v; want %v", f, want)
	}
	if Foreign(nil) == nil {
		t.Error("Foreign(nil) = nil; want an empty map")
	}
	a := Attrs{Mode: 0o100640, UID: 1, GID: 2, Mtime: lastMod, Atime: lastMod}
	out, err := ForExport(a, "v9", imported)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := Encode(a, "v9")
	for k, v := range enc {
		if out[k] != v {
			t.Errorf("ForExport[%s] = %q; want %q", k, out[k], v)
		}
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("ForExport lost foreign %s=%q", k, v)
		}
	}
	if _, stale := out["File-Owner"]; stale || len(out) != len(enc)+len(want) {
		t.Errorf("ForExport kept a stale own key: %v", out)
	}
	if !IsOwnKey("USER-AGENT") || IsOwnKey("file-ownerx") {
		t.Error("IsOwnKey wrong")
	}

	big := map[string]string{"blob": strings.Repeat("x", MaxMetadataSize)}
	if _, err := ForExport(a, "v9", big); !errors.Is(err, ErrMetadataTooLarge) {
		t.Errorf("ForExport with 2 KB of foreign metadata: %v; want ErrMetadataTooLarge", err)
	}
	if _, err := ForExport(Attrs{}, "v9", nil); err == nil {
		t.Error("ForExport of zero Attrs succeeded")
	}
}

func TestCheckSymlinkTarget(t *testing.T) {
	for _, tt := range []struct {
		target string
		ok     bool
	}{
		{"../lib/x.so", true}, {"/etc/passwd", true}, {"a", true},
		{"", false}, {"a\x00b", false}, {strings.Repeat("a", MaxSymlinkTarget), true},
		{strings.Repeat("a", MaxSymlinkTarget+1), false},
	} {
		if err := CheckSymlinkTarget([]byte(tt.target)); (err == nil) != tt.ok {
			t.Errorf("CheckSymlinkTarget(%.20q) = %v; want ok=%v", tt.target, err, tt.ok)
		}
	}
}

func attrsEqual(a, b Attrs) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.Mtime.Equal(b.Mtime) && a.Atime.Equal(b.Atime)
}

func fmtAttrs(a Attrs) string {
	return strings.Join([]string{
		"mode=0" + strconvOct(a.Mode), "uid=" + itoa(a.UID), "gid=" + itoa(a.GID),
		"mtime=" + a.Mtime.UTC().Format(time.RFC3339Nano), "atime=" + a.Atime.UTC().Format(time.RFC3339Nano),
	}, " ")
}
