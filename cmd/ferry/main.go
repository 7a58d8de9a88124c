// Command ferry moves data between POSIX file systems and S3-compatible
// stores: `ferry s3 sync|cp|ls` with aws semantics, and (later) a FUSE mount
// with data repository associations.
package main

import (
	"os"

	"github.com/ferry-hpc/ferry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
