package importer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
)

// BenchmarkEnsureListed5000 measures the first listing of a directory of
// 5,000 objects with POSIX headers: one ListObjectsV2 per 1,000 keys and a
// HEAD per object (Concurrency in flight), stubs created. Each iteration
// lists into a fresh store.
//
//	go test -run '^$' -bench EnsureListed5000 -benchtime 3x ./internal/importer
func BenchmarkEnsureListed5000(b *testing.B) {
	for _, conc := range []int{1, 16, 32} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			e := newEnv(b, Config{Concurrency: conc})
			putMany(b, e, "data/many/", 5000)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				st, err := store.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				cat, err := catalog.OpenSQLite(context.Background(), st.MetaPath()+"/catalog.db", catalog.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := st.MkdirAll("ExtData/many", 0o755); err != nil {
					b.Fatal(err)
				}
				im := New(Config{Store: st, Catalog: cat, S3: e.cfg.S3, Concurrency: conc})
				im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{e.a}, nil))
				b.StartTimer()
				if err := im.EnsureListed(context.Background(), "ExtData/many"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if s := im.Stats(); s.StubsCreated != 5000 {
					b.Fatalf("%d stubs", s.StubsCreated)
				}
				im.Close()
				cat.Close()
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/listing")
		})
	}
}

func putMany(b *testing.B, e *env, prefix string, n int) {
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			_, err := e.cfg.S3.S3.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(e.bucket), Key: aws.String(fmt.Sprintf("%sf%05d", prefix, i)),
				Body: bytes.NewReader([]byte("x")),
				Metadata: map[string]string{
					"file-permissions": "0100640", "file-owner": "1000", "file-group": "1000",
					"file-mtime": "1595002920000000000ns",
				},
			})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRestore measures hydration of a 256 MiB object into the store
// without a mount (Restore: windows of Readahead+1 chunks in parallel),
// next to the raw parallel ranged GET ceiling into memory.
//
//	go test -run '^$' -bench 'Restore|RawGET' -benchtime 3x ./internal/importer
func BenchmarkRestore(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b, Config{})
	e.put("data/big", randBytes(size, 1), nil)
	e.listed("ExtData")
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if err := e.im.Restore(context.Background(), "ExtData/big", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.im.Release(context.Background(), "ExtData/big"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkRawGET(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b, Config{})
	e.put("data/big", randBytes(size, 1), nil)
	for _, part := range []int64{4 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("part=%dMiB/conc=8", part>>20), func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				var wg sync.WaitGroup
				sem := make(chan struct{}, 8)
				for off := int64(0); off < size; off += part {
					wg.Add(1)
					sem <- struct{}{}
					go func(off int64) {
						defer wg.Done()
						defer func() { <-sem }()
						out, err := e.cfg.S3.S3.GetObject(context.Background(), &s3.GetObjectInput{
							Bucket: aws.String(e.bucket), Key: aws.String("data/big"),
							Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+part-1)),
						})
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, out.Body)
						out.Body.Close()
					}(off)
				}
				wg.Wait()
			}
		})
	}
}

// BenchmarkSequentialEnsureData is a sequential reader of a cold 256 MiB
// file in 128 KiB reads (the size the kernel's FUSE readahead asks), without
// a mount: the importer's own pipeline (readahead, GETs, commits).
//
//	go test -run '^$' -bench SequentialEnsureData -benchtime 3x ./internal/importer
func BenchmarkSequentialEnsureData(b *testing.B) {
	const size = 256 << 20
	e := newEnv(b, Config{})
	e.put("data/big", randBytes(size, 1), nil)
	e.listed("ExtData")
	b.SetBytes(size)
	buf := make([]byte, 128<<10)
	b.ResetTimer()
	for range b.N {
		f, err := e.st.OpenFile("ExtData/big", 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += int64(len(buf)) {
			if err := e.im.EnsureData(context.Background(), "ExtData/big", f, off, int64(len(buf))); err != nil {
				b.Fatal(err)
			}
			if _, err := f.ReadAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		b.StopTimer()
		if err := e.im.Release(context.Background(), "ExtData/big"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
