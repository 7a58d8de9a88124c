package progress

import (
	"fmt"
	"math"
)

var humanSuffixes = [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// HumanSize renders a byte count the way the AWS CLI does for
// `s3 ls --human-readable` (awscli.customizations.s3.utils.human_readable_size):
// "1 Byte", "12 Bytes" below 1024, otherwise one decimal and the largest IEC
// unit whose value does not round to 1024 ("1.0 KiB", "3.4 MiB").
//
// The float operations follow the Python code step by step, including its
// round-half-to-even round(), so the borders match: 1048575 is "1.0 MiB",
// not "1024.0 KiB".
func HumanSize(n int64) string {
	const base = 1024.0
	v := float64(n)
	if v == 1 {
		return "1 Byte"
	}
	if v < base {
		return fmt.Sprintf("%d Bytes", n)
	}
	for i, suffix := range humanSuffixes {
		unit := math.Pow(base, float64(i+2))
		if math.RoundToEven(v/unit*base) < base {
			return fmt.Sprintf("%.1f %s", base*v/unit, suffix)
		}
	}
	// Unreachable for int64 (at most 8 EiB); Python returns None here.
	return fmt.Sprintf("%.1f EiB", v/math.Pow(base, 6))
}
