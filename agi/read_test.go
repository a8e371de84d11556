package agi_test

import (
	"math/bits"
	"slices"
	"testing"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/agi"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// TestChunksAgreeWithAGI reads both inode btrees of every AG of every
// fixture: the records sum to the AGI's count and freecount, the finobt
// holds exactly the inobt records with free inodes, and each record's
// counts agree with its masks.
func TestChunksAgreeWithAGI(t *testing.T) {
	for _, name := range images.Names() {
		t.Run(name, func(t *testing.T) {
			f, err := xfs.Open(images.Extract(t, name), ondisk.OpenOptions{Buffered: true})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for agno := uint32(0); agno < f.Geo.AGCount; agno++ {
				a, err := f.AGI(agno)
				if err != nil {
					t.Fatal(err)
				}
				ag := &agi.AG{Geo: f.Geo, Agno: agno, AGI: a, Sparse: f.SB.HasSpinodes(),
					Store: agf.AGStore{Geo: f.Geo, Agno: agno, Read: f.ReadMeta}}
				ino, err := ag.Chunks(ag.InoTree())
				if err != nil {
					t.Fatal(err)
				}
				fino, err := ag.Chunks(ag.FinoTree())
				if err != nil {
					t.Fatal(err)
				}
				var count, free uint32
				var withFree []ondisk.InobtRec
				for _, r := range ino {
					holes := agi.HoleMask(r)
					if got := 64 - bits.OnesCount64(holes); got != int(r.Count) {
						t.Errorf("ag %d chunk %d: count %d, holemask leaves %d", agno, r.StartIno, r.Count, got)
					}
					if got := bits.OnesCount64(r.Free &^ holes); got != int(r.FreeCount) {
						t.Errorf("ag %d chunk %d: freecount %d, free mask has %d", agno, r.StartIno, r.FreeCount, got)
					}
					count += uint32(r.Count)
					free += uint32(r.FreeCount)
					if r.FreeCount > 0 {
						withFree = append(withFree, r)
					}
				}
				if count != a.Count || free != a.FreeCount {
					t.Errorf("ag %d: records count %d free %d, AGI %d/%d", agno, count, free, a.Count, a.FreeCount)
				}
				if !slices.Equal(fino, withFree) {
					t.Errorf("ag %d: finobt %v, inobt records with free inodes %v", agno, fino, withFree)
				}
				if ag.MaxChunks() < len(ino) {
					t.Errorf("ag %d: MaxChunks %d below %d records", agno, ag.MaxChunks(), len(ino))
				}
			}
		})
	}
}
