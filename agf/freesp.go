package agf

import (
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
