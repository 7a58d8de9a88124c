package store

import (
	"errors"
	"fmt"
	"math/bits"
)

// Range is a byte range [Off, Off+Len) of a file.
type Range struct {
	Off, Len int64
}

// End is the first byte after r.
func (r Range) End() int64 { return r.Off + r.Len }

func (r Range) String() string { return fmt.Sprintf("[%d,%d)", r.Off, r.End()) }

// ChunkMap says which chunks of a released file are local. Chunk i covers
// bytes [i*ChunkSize, min((i+1)*ChunkSize, Size)); the last chunk may be
// short. It is the per-file range set of rclone's vfscache, in units of the
// association's chunk size (ImportedFileChunkSize).
//
// A ChunkMap is not safe for concurrent use; its owner (the per-file state
// object of the mount) serialises access.
type ChunkMap interface {
	Size() int64
	ChunkSize() int64
	// Mark records the chunks entirely inside r as local. A chunk r only
	// partly covers is not marked (a partial chunk is never treated as
	// local, invariant 3); r reaching the end of the file covers the last,
	// short chunk.
	Mark(r Range)
	// Has returns the missing parts of r, as chunk-aligned ranges clipped
	// to the file size, in order; none when all of r is local. The parts
	// are what must be fetched before r can be read.
	Has(r Range) (missing []Range)
	// Complete reports whether every chunk is local.
	Complete() bool
}

// MapStore keeps chunk maps too large for an extended attribute (they
// live in the catalog: docs/invariants.md, "File states"). The state
// record then holds only the map's id. Implemented by the catalog.
type MapStore interface {
	LoadChunkMap(id MapID) ([]byte, error) // the bitmap bytes as Bitmap.Bytes returns them
	SaveChunkMap(id MapID, bitmap []byte) error
	DeleteChunkMap(id MapID) error
}

// MapID names a chunk map kept in a MapStore. It is random, so it stays
// unique across nodes and moves with the file (it is in the file's xattr).
type MapID [16]byte

// MaxInlineChunks is the largest number of chunks whose map is kept in the
// state xattr: 2 KiB of bitmap, which with the rest of the record stays
// under ext4's 4 KiB limit for all of an inode's xattrs. With 1 MiB chunks
// that is a 16 GiB file; with FSx's default 1 GiB chunks, 16 TiB.
const MaxInlineChunks = 2048 * 8

// ErrMapTooLarge: the file has more than MaxInlineChunks chunks and the store
// has no MapStore.
var ErrMapTooLarge = errors.New("chunk map too large for an extended attribute and no catalog map store is set")

// Bitmap is a ChunkMap held as one bit per chunk.
type Bitmap struct {
	size, chunk int64
	n           int64 // number of chunks
	set         int64 // number of bits set
	w           []uint64
}

// NewBitmap returns an empty map (nothing local) of a file of size bytes in
// chunks of chunk bytes.
func NewBitmap(size, chunk int64) (*Bitmap, error) {
	if size < 0 || chunk <= 0 {
		return nil, fmt.Errorf("chunk map of a %d-byte file in %d-byte chunks: %w", size, chunk, errors.New("invalid size or chunk size"))
	}
	n := size / chunk
	if size%chunk != 0 {
		n++
	}
	return &Bitmap{size: size, chunk: chunk, n: n, w: make([]uint64, (n+63)/64)}, nil
}

// Chunks returns the number of chunks of a file of size bytes.
func Chunks(size, chunk int64) int64 { return (size + chunk - 1) / chunk }

func (b *Bitmap) Size() int64      { return b.size }
func (b *Bitmap) ChunkSize() int64 { return b.chunk }
func (b *Bitmap) Len() int64       { return b.n }
func (b *Bitmap) Count() int64     { return b.set }
func (b *Bitmap) Complete() bool   { return b.set == b.n }

func (b *Bitmap) get(i int64) bool { return b.w[i>>6]&(1<<(uint(i)&63)) != 0 }

// MarkChunks marks chunks [first, end) as local.
func (b *Bitmap) MarkChunks(first, end int64) {
	first, end = max(first, 0), min(end, b.n)
	for i := first; i < end; {
		wi, bit := i>>6, uint(i)&63
		k := min(int64(64-bit), end-i)
		var m uint64
		if k == 64 {
			m = ^uint64(0)
		} else {
			m = ((1 << uint(k)) - 1) << bit
		}
		b.set += int64(bits.OnesCount64(m &^ b.w[wi]))
		b.w[wi] |= m
		i += k
	}
}

func (b *Bitmap) Mark(r Range) {
	if r.Len <= 0 {
		return
	}
	first := (max(r.Off, 0) + b.chunk - 1) / b.chunk
	end := r.End() / b.chunk
	if r.End() >= b.size {
		end = b.n
	}
	b.MarkChunks(first, end)
}

func (b *Bitmap) Has(r Range) []Range {
	off, end := max(r.Off, 0), min(r.End(), b.size)
	if r.Len <= 0 || off >= end {
		return nil
	}
	first, last := off/b.chunk, (end-1)/b.chunk+1
	var out []Range
	for i := first; i < last; {
		// Skip local chunks a word at a time.
		if w := b.w[i>>6] >> (uint(i) & 63); w&1 != 0 {
			i += int64(bits.TrailingZeros64(^w))
			continue
		}
		j := i + 1
		for j < last && !b.get(j) {
			j++
		}
		r := Range{Off: i * b.chunk, Len: min(j*b.chunk, b.size) - i*b.chunk}
		if n := len(out); n > 0 && out[n-1].End() == r.Off {
			out[n-1].Len += r.Len
		} else {
			out = append(out, r)
		}
		i = j
	}
	return out
}

// Bytes returns the map as bytes, chunk i in bit i%8 of byte i/8, with
// trailing zero bytes trimmed (a map filled from the front, as sequential
// reads fill it, stays short).
func (b *Bitmap) Bytes() []byte {
	out := make([]byte, (b.n+7)/8)
	for i := range out {
		out[i] = byte(b.w[i/8] >> (8 * (i % 8)))
	}
	for len(out) > 0 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return out
}

// BitmapFromBytes rebuilds a map from Bytes' output for a file of size bytes
// in chunks of chunk bytes. Bits beyond the last chunk are an error.
func BitmapFromBytes(size, chunk int64, p []byte) (*Bitmap, error) {
	b, err := NewBitmap(size, chunk)
	if err != nil {
		return nil, err
	}
	if int64(len(p)) > (b.n+7)/8 {
		return nil, fmt.Errorf("chunk map of %d bytes for %d chunks", len(p), b.n)
	}
	for i, c := range p {
		b.w[i/8] |= uint64(c) << (8 * (i % 8))
	}
	if rem := b.n & 63; rem != 0 && len(b.w) > 0 && b.w[len(b.w)-1]>>uint(rem) != 0 {
		return nil, fmt.Errorf("chunk map has bits set beyond its %d chunks", b.n)
	}
	for _, w := range b.w {
		b.set += int64(bits.OnesCount64(w))
	}
	return b, nil
}
