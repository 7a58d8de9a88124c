package mounts

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// MountInfo is the top mount on a path, from /proc/self/mountinfo.
type MountInfo struct {
	MountPoint string
	FSType     string // e.g. "fuse.ferry"
	Source     string
}

// Mounted returns the mount on top of dir (absolute and clean), if any.
func Mounted(dir string) (MountInfo, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountInfo{}, false, err
	}
	defer f.Close()
	return parseMountInfo(f, dir)
}

// parseMountInfo finds the last mount on dir in a mountinfo table: the
// one on top.
func parseMountInfo(r io.Reader, dir string) (MountInfo, bool, error) {
	var m MountInfo
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional…] - fstype source superoptions
		fs := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fs); i++ {
			if fs[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fs) {
			continue
		}
		if unescape(fs[4]) == dir {
			m, found = MountInfo{MountPoint: dir, FSType: fs[sep+1], Source: unescape(fs[sep+2])}, true
		}
	}
	return m, found, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 is a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
