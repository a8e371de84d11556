package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/xfs"
)

type recordJSON struct {
	Block        int64   `json:"block"`
	LSN          lsnJSON `json:"lsn"`
	Tail         lsnJSON `json:"tail"`
	Len          uint32  `json:"len"`
	HeaderBlocks int     `json:"header_blocks"`
	Size         uint32  `json:"h_size"`
	NumLogOps    uint32  `json:"num_logops"`
	Ops          int     `json:"ops"`
	CRC          string  `json:"crc"`
	CRCOK        bool    `json:"crc_ok"`
	Cleared      int64   `json:"cleared,omitempty"` // a run of this many empty headers
	Error        string  `json:"error,omitempty"`
}

type txJSON struct {
	Tid       string         `json:"tid"`
	LSN       lsnJSON        `json:"lsn"`
	CommitLSN *lsnJSON       `json:"commit_lsn,omitempty"`
	Committed bool           `json:"committed"`
	Items     []log.ItemInfo `json:"items"`
}

type logJSON struct {
	Logstart      uint64       `json:"logstart"`
	Logblocks     uint32       `json:"logblocks"`
	HeadCycle     uint32       `json:"head_cycle"`
	HeadBlock     uint32       `json:"head_block"`
	TailCycle     uint32       `json:"tail_cycle"`
	TailBlock     uint32       `json:"tail_block"`
	LastRecord    int64        `json:"last_record"`
	Clean         bool         `json:"clean"`
	Empty         bool         `json:"empty"`
	TornWriteFrom *lsnJSON     `json:"torn_write_from,omitempty"`
	TailMovedFrom *lsnJSON     `json:"tail_moved_from,omitempty"`
	All           bool         `json:"all"` // records are every one in the log, not tail to head
	Records       []recordJSON `json:"records"`
	Transactions  []txJSON     `json:"transactions"`
	Error         string       `json:"error,omitempty"`
}

func recordOut(r *log.Record) recordJSON {
	h := r.Header
	out := recordJSON{Block: r.Block, LSN: lsnOf(h.LSN), Tail: lsnOf(h.TailLSN), Len: h.Len, HeaderBlocks: r.HBlocks,
		Size: h.Size, NumLogOps: h.NumLogOps, Ops: len(r.Ops), CRC: fmt.Sprintf("0x%08x", h.CRC), CRCOK: r.CRCOK}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

func txOut(t *log.Transaction) txJSON {
	out := txJSON{Tid: fmt.Sprintf("0x%08x", t.Tid), LSN: lsnOf(t.LSN), Committed: t.Committed, Items: []log.ItemInfo{}}
	if t.Committed {
		l := lsnOf(t.CommitLSN)
		out.CommitLSN = &l
	}
	for i := range t.Items {
		out.Items = append(out.Items, t.Items[i].Describe())
	}
	return out
}

// inspectLog shows where the log stands and what is in it: the records
// between tail and head and the transactions they hold (a dirty log), or
// with all every record found in the log.
func inspectLog(f *xfs.FS, all bool) error {
	a := log.NewArea(f.Dev, f.Geo, f.SB.UUID)
	a.LogSUnit = f.SB.LogSUnit
	st, err := a.FindState()
	if err != nil {
		return err
	}
	out := logJSON{Logstart: f.SB.LogStart, Logblocks: f.SB.LogBlocks, All: all,
		Records: []recordJSON{}, Transactions: []txJSON{}}
	var failed error
	if !st.Clean && !st.Empty {
		failed = a.VerifyState(st)
	}
	out.HeadCycle, out.HeadBlock = st.Head.Cycle(), st.Head.Block()
	out.TailCycle, out.TailBlock = st.Tail.Cycle(), st.Tail.Block()
	out.LastRecord, out.Clean, out.Empty = st.LastRecord, st.Clean, st.Empty
	out.TornWriteFrom, out.TailMovedFrom = stateMarks(st)
	if all {
		entries, err := a.Scan()
		for _, e := range entries {
			switch {
			case e.Cleared > 0:
				out.Records = append(out.Records, recordJSON{Block: e.Block, Cleared: e.Cleared})
			case e.Record != nil:
				out.Records = append(out.Records, recordOut(e.Record))
			default:
				out.Records = append(out.Records, recordJSON{Block: e.Block, Error: e.Err.Error()})
			}
		}
		failed = errors.Join(failed, err)
	} else if !st.Clean && !st.Empty {
		rest, err := a.Walk(st, log.Walk{
			Record: func(r *log.Record) error {
				out.Records = append(out.Records, recordOut(r))
				return nil
			},
			Transaction: func(t *log.Transaction) error {
				out.Transactions = append(out.Transactions, txOut(t))
				return nil
			},
		})
		for _, t := range rest {
			out.Transactions = append(out.Transactions, txOut(t))
		}
		if failed == nil {
			failed = err
		}
	}
	if failed != nil {
		out.Error = failed.Error()
	}
	if err := output(out, func() error { return printLog(f, &out) }); err != nil {
		return err
	}
	if failed != nil {
		return fmt.Errorf("log: %w", failed)
	}
	return nil
}

func printLog(f *xfs.FS, out *logJSON) error {
	state := "clean"
	switch {
	case out.Empty:
		state = "empty (never written)"
	case !out.Clean:
		state = "dirty: mount or xfsimg recover replays it"
	}
	tw := newLeftTable()
	fmt.Fprintf(tw, "log\t%d blocks (%d basic blocks) at fs block %d\n", f.SB.LogBlocks, f.Geo.LogBBs(), f.SB.LogStart)
	fmt.Fprintf(tw, "head\tcycle %d block %d\n", out.HeadCycle, out.HeadBlock)
	fmt.Fprintf(tw, "tail\tcycle %d block %d\n", out.TailCycle, out.TailBlock)
	fmt.Fprintf(tw, "last record\tblock %d\n", out.LastRecord)
	fmt.Fprintf(tw, "state\t%s\n", state)
	if out.TornWriteFrom != nil {
		fmt.Fprintf(tw, "torn write\trecords from the head to %s failed their CRC: recovery drops them\n", out.TornWriteFrom)
	}
	if out.TailMovedFrom != nil {
		fmt.Fprintf(tw, "tail moved\tfrom %s: the head had overwritten the records there\n", out.TailMovedFrom)
	}
	if !out.All && !out.Clean && !out.Empty {
		var bytes int64
		for _, r := range out.Records {
			bytes += int64(r.HeaderBlocks)*512 + int64(r.Len)
		}
		fmt.Fprintf(tw, "records\t%d between tail and head (%s), %d transactions\n", len(out.Records), humanBytes(uint64(bytes)), len(out.Transactions))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Records) > 0 {
		fmt.Fprintln(stdout)
		tw = newLeftTable()
		fmt.Fprintf(tw, "BLOCK\tLSN\tTAIL\tLEN\tOPS\tCRC\n")
		for _, r := range out.Records {
			switch {
			case r.Cleared > 0:
				fmt.Fprintf(tw, "%d\t\t\t\t\t%d cleared blocks (empty headers) to %d\n", r.Block, r.Cleared, r.Block+r.Cleared-1)
			case r.LSN == (lsnJSON{}) && r.Error != "":
				fmt.Fprintf(tw, "%d\t\t\t\t\tbad header: %s\n", r.Block, r.Error)
			default:
				crc := "ok"
				switch {
				case !r.CRCOK && r.CRC == "0x00000000":
					crc = "none (zero, as mkfs writes)"
				case !r.CRCOK:
					crc = "BAD " + r.CRC
				}
				if r.Error != "" {
					crc += "; " + r.Error
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", r.Block, r.LSN, r.Tail, r.Len, r.Ops, crc)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var b strings.Builder
	for _, t := range out.Transactions {
		status := "no commit: recovery drops it"
		if t.Committed && t.CommitLSN != nil {
			status = "committed at " + t.CommitLSN.String()
		}
		fmt.Fprintf(&b, "\ntransaction %s at %s, %s, %d items\n", t.Tid, t.LSN, status, len(t.Items))
		for _, it := range t.Items {
			fmt.Fprintf(&b, "  %s\n", itemLine(&it))
		}
	}
	_, err := fmt.Fprint(stdout, b.String())
	return err
}

func itemLine(it *log.ItemInfo) string {
	var s string
	switch {
	case it.Buf != nil:
		bf := it.Buf
		var runs []string
		for _, r := range bf.Chunks {
			if r[1]-r[0] == 1 {
				runs = append(runs, fmt.Sprint(r[0]))
			} else {
				runs = append(runs, fmt.Sprintf("%d-%d", r[0], r[1]-1))
			}
		}
		s = fmt.Sprintf("BUF     daddr %d len %d %s", bf.Daddr, bf.Len, bf.Type)
		if len(bf.Flags) > 0 {
			s += " [" + strings.Join(bf.Flags, ",") + "]"
		}
		if bf.Magic != "" {
			s += " " + bf.Magic
		}
		s += " chunks " + strings.Join(runs, ",")
	case it.Inode != nil:
		in := it.Inode
		s = fmt.Sprintf("INODE   ino %d (%s) cluster daddr %d len %d offset %d mode %s %s size %d nlink %d nblocks %d nextents %d",
			in.Ino, strings.Join(in.Fields, "|"), in.Daddr, in.Len, in.Offset, in.Mode, in.Format, in.Size, in.Nlink, in.NBlocks, in.NExtents)
		if in.ANExtents > 0 || in.ForkOff > 0 {
			s += fmt.Sprintf(" forkoff %d anextents %d", in.ForkOff, in.ANExtents)
		}
	case it.ICreate != nil:
		ic := it.ICreate
		s = fmt.Sprintf("ICREATE AG %d agbno %d: %d inodes of %d bytes in %d blocks, gen 0x%x", ic.AG, ic.AGBno, ic.Count, ic.ISize, ic.Length, ic.Gen)
	case it.Intent != nil:
		s = fmt.Sprintf("%-7s id %s, %d extents", it.Type, it.Intent.ID, it.Intent.NExtents)
	default:
		s = fmt.Sprintf("%-7s %d regions, %d bytes", it.Type, it.Regions, it.Bytes)
	}
	if it.Error != "" {
		s += " (" + it.Error + ")"
	}
	return s
}
