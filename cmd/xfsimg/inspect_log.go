package main

import (
	"fmt"

	"github.com/xfsimg/xfsimg/xfs"
)

type logJSON struct {
	Logstart   uint64 `json:"logstart"`
	Logblocks  uint32 `json:"logblocks"`
	HeadCycle  uint32 `json:"head_cycle"`
	HeadBlock  uint32 `json:"head_block"`
	TailCycle  uint32 `json:"tail_cycle"`
	TailBlock  uint32 `json:"tail_block"`
	LastRecord int64  `json:"last_record"`
	Clean      bool   `json:"clean"`
	Empty      bool   `json:"empty"`
}

func inspectLog(f *xfs.FS) error {
	st, err := logState(f)
	if err != nil {
		return err
	}
	out := logJSON{
		Logstart: f.SB.LogStart, Logblocks: f.SB.LogBlocks,
		HeadCycle: st.Head.Cycle(), HeadBlock: st.Head.Block(),
		TailCycle: st.Tail.Cycle(), TailBlock: st.Tail.Block(),
		LastRecord: st.LastRecord, Clean: st.Clean, Empty: st.Empty,
	}
	return output(out, func() error {
		state := "clean"
		if !st.Clean {
			state = "dirty"
		}
		tw := newLeftTable()
		fmt.Fprintf(tw, "log\t%d blocks (%d basic blocks) at fs block %d\n", f.SB.LogBlocks, f.Geo.LogBBs(), f.SB.LogStart)
		fmt.Fprintf(tw, "head\tcycle %d block %d\n", out.HeadCycle, out.HeadBlock)
		fmt.Fprintf(tw, "tail\tcycle %d block %d\n", out.TailCycle, out.TailBlock)
		fmt.Fprintf(tw, "last record\tblock %d\n", out.LastRecord)
		fmt.Fprintf(tw, "state\t%s\n", state)
		return tw.Flush()
	})
}
