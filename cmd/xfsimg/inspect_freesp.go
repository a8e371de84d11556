package main

import (
	"fmt"
	"sync"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

type freespTree struct {
	Buckets []agf.Bucket `json:"histogram"`
	Extents uint64       `json:"extents"`
	Blocks  uint64       `json:"blocks"`
}

type freespJSON struct {
	AGs []uint32 `json:"ags"`
	// Histogram is xfs_db's: the bnobt's extents plus each AGFL block as a
	// one-block extent, so its total is the free-block count.
	Histogram freespTree `json:"freesp"`
	Bnobt     freespTree `json:"bnobt"`
	Cntbt     freespTree `json:"cntbt"`
	Freeblks  uint64     `json:"freeblks"` // sum of the AGF freeblks counters
	Flcount   uint64     `json:"flcount"`  // sum of the AGF flcount counters
	Agree     bool       `json:"agree"`
}

// inspectFreesp builds xfs_db's freesp histogram from both free-space
// btrees and checks them against each other and the AGF counters.
func inspectFreesp(f *xfs.FS, onlyAG int) error {
	var ags []uint32
	if onlyAG >= 0 {
		agno, err := parseAgno(f, fmt.Sprint(onlyAG))
		if err != nil {
			return err
		}
		ags = []uint32{agno}
	} else {
		for a := uint32(0); a < f.Geo.AGCount; a++ {
			ags = append(ags, a)
		}
	}
	// The AGs are independent: each reads its trees into histograms of its
	// own, in parallel; they are added up in AG order. A few AGs at a time
	// keep the device busy, and each walk reads ahead of itself into the
	// shared metadata cache: more walks at once than it holds windows for
	// would evict each other's blocks before they are used.
	const agsAtOnce = 4
	sem := make(chan struct{}, agsAtOnce)
	maxLen := uint64(f.Geo.AGBlocks)
	type agFree struct {
		all, bno, cnt *agf.Histogram
		agf           *ondisk.AGF
		err           error
	}
	res := make([]agFree, len(ags))
	var wg sync.WaitGroup
	for i, agno := range ags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := &res[i]
			r.all, r.bno, r.cnt = agf.NewHistogram(maxLen), agf.NewHistogram(maxLen), agf.NewHistogram(maxLen)
			// The AGFL is needed after the walks: have it read meanwhile
			// rather than wait for it then.
			f.Prefetch([]int64{f.Geo.AGFLDaddr(agno)}, f.Geo.SectSize)
			ag, err := f.FreeSpace(agno)
			if err != nil {
				r.err = err
				return
			}
			r.agf = ag.AGF
			// The two trees are read at the same time too: their blocks
			// are scattered, so more reads in flight is what pays.
			var cntErr error
			cntDone := make(chan struct{})
			go func() {
				defer close(cntDone)
				cntErr = ag.CountFree(ag.CntTree(), r.cnt)
			}()
			r.err = ag.CountFree(ag.BnoTree(), r.bno)
			<-cntDone
			if r.err == nil {
				r.err = cntErr
			}
			if r.err != nil {
				return
			}
			agfl, err := f.AGFL(agno)
			if err != nil {
				r.err = err
				return
			}
			fl, err := agfl.Active(ag.AGF)
			if err != nil {
				r.err = fmt.Errorf("agfl %d: %w", agno, err)
				return
			}
			// xfs_db counts each AGFL block as a free extent of one block,
			// on top of the bnobt's extents.
			r.all.Merge(r.bno)
			for _, blk := range fl {
				r.all.AddOne(ondisk.AllocRec{StartBlock: blk, BlockCount: 1})
			}
		}()
	}
	wg.Wait()
	all, bno, cnt := agf.NewHistogram(maxLen), agf.NewHistogram(maxLen), agf.NewHistogram(maxLen)
	var freeblks, flcount uint64
	for _, r := range res {
		if r.err != nil {
			return r.err
		}
		all.Merge(r.all)
		bno.Merge(r.bno)
		cnt.Merge(r.cnt)
		freeblks += uint64(r.agf.FreeBlks)
		flcount += uint64(r.agf.FLCount)
	}
	out := freespJSON{
		AGs:       ags,
		Histogram: freespTree{all.NonEmpty(), all.Extents, all.Blocks},
		Bnobt:     freespTree{bno.NonEmpty(), bno.Extents, bno.Blocks},
		Cntbt:     freespTree{cnt.NonEmpty(), cnt.Extents, cnt.Blocks},
		Freeblks:  freeblks,
		Flcount:   flcount,
	}
	out.Agree = bno.Extents == cnt.Extents && bno.Blocks == cnt.Blocks && bno.Blocks == freeblks
	if err := output(out, func() error { return printFreesp(&out, all) }); err != nil {
		return err
	}
	if !out.Agree {
		return fmt.Errorf("free space disagrees: bnobt %d extents/%d blocks, cntbt %d/%d, AGF freeblks %d",
			bno.Extents, bno.Blocks, cnt.Extents, cnt.Blocks, freeblks)
	}
	return nil
}

func printFreesp(out *freespJSON, h *agf.Histogram) error {
	t := newTable()
	fmt.Fprintf(t, "from\tto\textents\tblocks\tpct\t\n")
	for _, b := range out.Histogram.Buckets {
		pct := 0.0
		if h.Blocks > 0 {
			pct = float64(b.Blocks) * 100 / float64(h.Blocks)
		}
		fmt.Fprintf(t, "%d\t%d\t%d\t%d\t%.2f\t\n", b.From, b.To, b.Extents, b.Blocks, pct)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	avg := 0.0
	if h.Extents > 0 {
		avg = float64(h.Blocks) / float64(h.Extents)
	}
	_, err := fmt.Fprintf(stdout, "total free extents %d\ntotal free blocks %d\naverage free extent size %.2f\n"+
		"bnobt: %d extents, %d blocks; cntbt: %d extents, %d blocks; AGF freeblks %d, AGFL %d blocks\n",
		h.Extents, h.Blocks, avg, out.Bnobt.Extents, out.Bnobt.Blocks, out.Cntbt.Extents, out.Cntbt.Blocks, out.Freeblks, out.Flcount)
	return err
}
