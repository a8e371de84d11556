package agf

import (
	"encoding/binary"
	"math/bits"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Bucket is one bin of a free-extent histogram.
type Bucket struct {
	From    uint64 `json:"from"`
	To      uint64 `json:"to"`
	Extents uint64 `json:"extents"`
	Blocks  uint64 `json:"blocks"`
}

// Histogram bins free extents by length in powers of two, as xfs_db's
// freesp does: bins start at 1, 2, 4, ... below maxLen, and the last bin
// runs to maxLen (the AG size).
type Histogram struct {
	Buckets []Bucket
	Extents uint64
	Blocks  uint64
}

// NewHistogram makes empty bins for extents up to maxLen blocks.
func NewHistogram(maxLen uint64) *Histogram {
	h := &Histogram{}
	for low := uint64(1); low < maxLen || low == 1; low <<= 1 {
		h.Buckets = append(h.Buckets, Bucket{From: low, To: low*2 - 1})
	}
	h.Buckets[len(h.Buckets)-1].To = max(maxLen, 1)
	return h
}

// Add counts the free extents recs.
func (h *Histogram) Add(recs []ondisk.AllocRec) {
	for _, r := range recs {
		h.AddOne(r)
	}
}

// AddOne counts one free extent.
func (h *Histogram) AddOne(r ondisk.AllocRec) {
	n := uint64(r.BlockCount)
	h.Extents++
	h.Blocks += n
	if n == 0 {
		return // a zero-length record is damage; it belongs to no bin
	}
	// Bin i starts at 2^i; the last bin takes everything above.
	i := min(bits.Len64(n)-1, len(h.Buckets)-1)
	h.Buckets[i].Extents++
	h.Buckets[i].Blocks += n
}

// AddPacked counts the free extents of packed on-disk allocation records
// (a leaf's worth: this is the loop inspect freesp spends its time in).
func (h *Histogram) AddPacked(recs []byte) {
	var ext, blk [64]uint64
	var total uint64
	n := len(recs) / ondisk.AllocRecSize
	for i := range n {
		c := uint64(binary.BigEndian.Uint32(recs[i*ondisk.AllocRecSize+4:]))
		b := bits.Len64(c) & 63 // bin b-1; b == 0 is a damaged empty record
		ext[b]++
		blk[b] += c
		total += c
	}
	h.Extents += uint64(n)
	h.Blocks += total
	last := len(h.Buckets) - 1
	for b := 1; b < 64; b++ {
		if ext[b] > 0 {
			i := min(b-1, last)
			h.Buckets[i].Extents += ext[b]
			h.Buckets[i].Blocks += blk[b]
		}
	}
}

// Merge adds another histogram with the same bins.
func (h *Histogram) Merge(o *Histogram) {
	h.Extents += o.Extents
	h.Blocks += o.Blocks
	for i := range h.Buckets {
		h.Buckets[i].Extents += o.Buckets[i].Extents
		h.Buckets[i].Blocks += o.Buckets[i].Blocks
	}
}

// NonEmpty returns the bins that hold at least one extent.
func (h *Histogram) NonEmpty() []Bucket {
	var out []Bucket
	for _, b := range h.Buckets {
		if b.Extents > 0 {
			out = append(out, b)
		}
	}
	return out
}
