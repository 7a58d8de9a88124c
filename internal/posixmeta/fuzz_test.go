package posixmeta

import (
	"strconv"
	"testing"
	"time"
)

func strconvOct(m uint32) string { return strconv.FormatUint(uint64(m), 8) }
func itoa(n uint32) string       { return strconv.FormatUint(uint64(n), 10) }

// FuzzDecode: Decode never panics; whatever it accepts as valid can be
// encoded again and decodes to the same attributes; every Invalid header is
// reported once.
func FuzzDecode(f *testing.F) {
	f.Add("0100664", "1000", "100", "1595002920000000000ns", "1595002920000", false)
	f.Add("0040755", "0", "0", "0ns", "-1", true)
	f.Add("0120777", "4294967294", "4294967295", "9223372036854775807ns", "9223372036855", false)
	f.Add("0106755", "-1", "root", "ns", "", false)
	f.Add("777777777777777777777", "99999999999999999999", "+1", "1e9", " 12 ", true)
	f.Add("0", "007", "0x10", "-9223372036854775808ns", "-9223372036854", false)
	f.Fuzz(func(t *testing.T, mode, uid, gid, mtime, atime string, dir bool) {
		meta := map[string]string{KeyPermissions: mode, KeyOwner: uid, KeyGroup: gid, KeyMtime: mtime, KeyAtime: atime}
		d := Decode(meta, dir, lastMod)
		invalid := 0
		for _, s := range [...]Status{d.Mode, d.UID, d.GID, d.Mtime, d.Atime} {
			switch s {
			case Invalid:
				invalid++
			case Missing:
				t.Fatalf("present header reported missing: %+v", d)
			}
		}
		if invalid != len(d.Problems) {
			t.Fatalf("%d invalid headers, %d problems", invalid, len(d.Problems))
		}
		if d.Attrs.IsDir() != dir {
			t.Fatalf("dir=%v decoded to mode %#o", dir, d.Attrs.Mode)
		}
		if d.Attrs.Mode&setIDBits != 0 {
			t.Fatalf("setuid/setgid survived: %#o", d.Attrs.Mode)
		}
		enc, err := Encode(d.Attrs, "fuzz")
		if err != nil {
			t.Fatalf("decoded attrs %s do not encode: %v", fmtAttrs(d.Attrs), err)
		}
		d2 := Decode(enc, dir, time.Time{})
		if !attrsEqual(d2.Attrs, d.Attrs) || d2.Err() != nil {
			t.Fatalf("round trip: %s -> %v -> %s (%v)", fmtAttrs(d.Attrs), enc, fmtAttrs(d2.Attrs), d2.Err())
		}
	})
}

// FuzzEncodeDecode: every valid Attrs survives Encode then Decode, modulo
// setuid/setgid.
func FuzzEncodeDecode(f *testing.F) {
	f.Add(uint32(0o100664), uint32(1000), uint32(100), int64(1595002920000000000), int64(-1))
	f.Add(uint32(0o047777), uint32(0), uint32(0), int64(0), int64(1<<62))
	f.Add(uint32(0o120777), uint32(1<<32-2), uint32(1<<32-1), int64(-1<<63), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, mode, uid, gid uint32, mtime, atime int64) {
		a := Attrs{Mode: mode, UID: uid, GID: gid, Mtime: time.Unix(0, mtime), Atime: time.Unix(0, atime)}
		enc, err := Encode(a, "fuzz")
		if err != nil {
			if a.Validate() == nil {
				t.Fatalf("Encode refused valid %s: %v", fmtAttrs(a), err)
			}
			return
		}
		d := Decode(enc, a.IsDir(), time.Time{})
		want := a
		want.Mode = a.Mode &^ setIDBits
		if !attrsEqual(d.Attrs, want) || d.Err() != nil || !d.HasPOSIX() {
			t.Fatalf("%s -> %v -> %s (%v)", fmtAttrs(a), enc, fmtAttrs(d.Attrs), d.Err())
		}
	})
}
