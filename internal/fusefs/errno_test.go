package fusefs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// An interrupted wait for a listing or a fetch answers EINTR (the caller
// retries), never EIO; store errors keep their errno; anything else is EIO.
func TestErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{fmt.Errorf("list ExtData: %w", context.Canceled), syscall.EINTR},
		{fmt.Errorf("open: %w", syscall.ENOENT), syscall.ENOENT},
		{errors.New("repository unreachable"), syscall.EIO},
	} {
		if got := errno(c.err); got != c.want {
			t.Errorf("errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
