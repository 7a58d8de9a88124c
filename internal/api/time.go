package api

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Time is an FSx timestamp. It marshals to the text aws CLI v2 prints by
// default — Python's datetime.isoformat() of the instant in its zone:
// "2006-01-02T15:04:05+00:00", or with ".ffffff" microseconds when they are
// not zero. It unmarshals from that form, any RFC 3339 string, or a JSON
// number of epoch seconds (FSx's wire form and aws CLI v1's output).
//
// The zone printed is the one the time carries: NewTime gives local time,
// as aws CLI v2 shows times in the local zone of the machine running it.
type Time struct {
	time.Time
}

// NewTime returns t in the local zone, truncated to microseconds (the
// precision aws prints).
func NewTime(t time.Time) Time {
	return Time{t.Truncate(time.Microsecond).Local()}
}

// Now is NewTime(time.Now()).
func Now() Time { return NewTime(time.Now()) }

// TimePtr returns a pointer to NewTime(t), for optional members.
func TimePtr(t time.Time) *Time {
	v := NewTime(t)
	return &v
}

const (
	isoSeconds = "2006-01-02T15:04:05-07:00"
	isoMicros  = "2006-01-02T15:04:05.000000-07:00"
)

// String formats the time as aws CLI v2 does.
func (t Time) String() string {
	if t.Nanosecond()/1000 == 0 {
		return t.Time.Format(isoSeconds)
	}
	return t.Time.Truncate(time.Microsecond).Format(isoMicros)
}

// MarshalJSON writes the aws CLI v2 text as a JSON string.
func (t Time) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, t.String()), nil
}

// UnmarshalJSON reads a string (ISO 8601 / RFC 3339) or a number of epoch
// seconds with an optional fraction.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	if b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return fmt.Errorf("timestamp %s: %w", b, err)
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("timestamp %q is not ISO 8601 (e.g. 2024-01-02T03:04:05.123000+00:00): %w", s, err)
		}
		t.Time = v
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("timestamp %s is neither an ISO 8601 string nor epoch seconds", b)
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).Local()
	return nil
}
