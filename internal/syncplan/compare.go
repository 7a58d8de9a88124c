package syncplan

import (
	"math"
	"time"
)

// ShouldCopy applies aws's compare rules to a file present on both sides
// (awscli's syncstrategy: SizeAndLastModifiedSync, SizeOnlySync,
// ExactTimestampsSync):
//
//   - sizes differ: copy (every mode);
//   - CompareSizeOnly: nothing else;
//   - Upload and Copy: copy when the source is newer than the destination
//     (dest - src < 0);
//   - Download, CompareDefault: copy when the local file (the destination) is
//     newer than the object (dest - src > 0). A same-size object newer than
//     the local file is not downloaded: that is aws's rule, reproduced;
//   - Download, CompareExactTimestamps: copy unless the times are equal.
//     For uploads and copies --exact-timestamps changes nothing.
//
// Times are compared the way aws sees them: as Python datetimes, which have
// microsecond resolution. S3 times (LastModified, milliseconds in listings)
// are taken to the microsecond; a local mtime goes through os.stat's float
// st_mtime and datetime.fromtimestamp, i.e. it is rounded half-to-even to the
// microsecond from a float64 that itself carries ~0.1µs of rounding error at
// today's epoch. So a local mtime 1ns (or 0.4µs) after the object's time is
// the same time for aws, and for ferry.
func ShouldCopy(src, dst Entry, dir Direction, mode CompareMode) bool {
	if src.Size != dst.Size {
		return true
	}
	if mode == CompareSizeOnly {
		return false
	}
	var s, d int64 // microseconds since the epoch, as aws sees them
	switch dir {
	case Upload:
		s, d = localMicros(src.ModTime), s3Micros(dst.ModTime)
	case Download:
		s, d = s3Micros(src.ModTime), localMicros(dst.ModTime)
	default:
		s, d = s3Micros(src.ModTime), s3Micros(dst.ModTime)
	}
	delta := d - s // aws: delta = dest_time - src_time; only its sign matters
	if dir == Download {
		if mode == CompareExactTimestamps {
			return delta != 0
		}
		return delta > 0
	}
	return delta < 0
}

// s3Micros is an S3 timestamp as botocore parses it: a datetime, so whole
// microseconds (listings carry milliseconds, so nothing is lost).
func s3Micros(t time.Time) int64 { return t.UnixMicro() }

// localMicros is a local mtime as aws sees it: CPython's os.stat computes
// st_mtime = (double)sec + (double)nsec*1e-9, and datetime.fromtimestamp
// splits that float with modf and rounds the fraction to microseconds
// half-to-even (_PyTime_DoubleToDenominator).
func localMicros(t time.Time) int64 {
	// The explicit float64 conversions keep the compiler from fusing the
	// multiply and add, which would round differently from C.
	f := float64(float64(t.Unix()) + float64(float64(t.Nanosecond())*1e-9))
	intpart, frac := math.Modf(f)
	us := math.RoundToEven(float64(frac * 1e6))
	if us >= 1e6 {
		us -= 1e6
		intpart++
	} else if us < 0 {
		us += 1e6
		intpart--
	}
	return int64(intpart)*1_000_000 + int64(us)
}
