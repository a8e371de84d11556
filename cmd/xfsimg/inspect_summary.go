package main

import (
	"fmt"
	"strings"

	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

type deviceJSON struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	SectorSize  int    `json:"sector_size"`
	BlockDevice bool   `json:"block_device"`
	Direct      bool   `json:"direct"`
}

type agSummary struct {
	Seqno     uint32 `json:"seqno"`
	Freeblks  uint32 `json:"freeblks"`
	Longest   uint32 `json:"longest"`
	Flcount   uint32 `json:"flcount"`
	Btreeblks uint32 `json:"btreeblks"`
	Count     uint32 `json:"count"`
	Freecount uint32 `json:"freecount"`
	Error     string `json:"error,omitempty"`
}

type logSummary struct {
	Logstart  uint64 `json:"logstart"`
	Logblocks uint32 `json:"logblocks"`
	HeadCycle uint32 `json:"head_cycle"`
	HeadBlock uint32 `json:"head_block"`
	TailCycle uint32 `json:"tail_cycle"`
	TailBlock uint32 `json:"tail_block"`
	Clean     bool   `json:"clean"`
	Error     string `json:"error,omitempty"`
}

type summary struct {
	Device    deviceJSON  `json:"device"`
	UUID      string      `json:"uuid"`
	Label     string      `json:"fname"`
	Blocksize uint32      `json:"blocksize"`
	Sectsize  uint16      `json:"sectsize"`
	Inodesize uint16      `json:"inodesize"`
	Dblocks   uint64      `json:"dblocks"`
	Agcount   uint32      `json:"agcount"`
	Agblocks  uint32      `json:"agblocks"`
	Dirblk    int         `json:"dirblocksize"`
	Features  []string    `json:"features"`
	Rootino   uint64      `json:"rootino"`
	Icount    uint64      `json:"icount"`
	Ifree     uint64      `json:"ifree"`
	Fdblocks  uint64      `json:"fdblocks"`
	Log       logSummary  `json:"log"`
	AGs       []agSummary `json:"ags"`
}

func deviceInfo(f *xfs.FS, path string) deviceJSON {
	d := deviceJSON{Path: path, Size: f.Dev.Size(), SectorSize: f.Dev.SectorSize()}
	if dev, ok := f.Dev.(*ondisk.Device); ok {
		d.BlockDevice, d.Direct = dev.IsBlockDevice(), dev.Direct()
	}
	return d
}

// logState reads where the log stands.
func logState(f *xfs.FS) (*log.State, error) {
	return log.NewArea(f.Dev, f.Geo, f.SB.UUID).FindState()
}

func inspectSummary(f *xfs.FS, path string) error {
	sb, g := f.SB, f.Geo
	s := summary{
		Device:    deviceInfo(f, path),
		UUID:      sb.UUID.String(),
		Label:     strings.TrimRight(string(sb.FName[:]), "\x00"),
		Blocksize: sb.BlockSize,
		Sectsize:  sb.SectSize,
		Inodesize: sb.InodeSize,
		Dblocks:   sb.DBlocks,
		Agcount:   sb.AGCount,
		Agblocks:  sb.AGBlocks,
		Dirblk:    g.DirBlkSize,
		Features:  sb.FeatureList(),
		Rootino:   sb.RootIno,
		Icount:    sb.ICount,
		Ifree:     sb.IFree,
		Fdblocks:  sb.FDBlocks,
		Log:       logSummary{Logstart: sb.LogStart, Logblocks: sb.LogBlocks},
	}
	var damaged []string
	if st, err := logState(f); err != nil {
		s.Log.Error = err.Error()
		damaged = append(damaged, "log: "+err.Error())
	} else {
		s.Log.HeadCycle, s.Log.HeadBlock = st.Head.Cycle(), st.Head.Block()
		s.Log.TailCycle, s.Log.TailBlock = st.Tail.Cycle(), st.Tail.Block()
		s.Log.Clean = st.Clean
	}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		row := agSummary{Seqno: agno}
		var errs []string
		if a, err := f.AGF(agno); err != nil {
			errs = append(errs, err.Error())
		} else {
			row.Freeblks, row.Longest, row.Flcount, row.Btreeblks = a.FreeBlks, a.Longest, a.FLCount, a.BtreeBlks
		}
		if a, err := f.AGI(agno); err != nil {
			errs = append(errs, err.Error())
		} else {
			row.Count, row.Freecount = a.Count, a.FreeCount
		}
		if len(errs) > 0 {
			row.Error = strings.Join(errs, "; ")
			damaged = append(damaged, errs...)
		}
		s.AGs = append(s.AGs, row)
	}
	if err := output(s, func() error { return printSummary(&s, g) }); err != nil {
		return err
	}
	if len(damaged) > 0 {
		return fmt.Errorf("%d damaged structures: %s", len(damaged), damaged[0])
	}
	return nil
}

func printSummary(s *summary, g *ondisk.Geometry) error {
	bs := uint64(s.Blocksize)
	kind := "image file"
	if s.Device.BlockDevice {
		kind = "block device"
	}
	io := "O_DIRECT"
	if !s.Device.Direct {
		io = "buffered"
	}
	tw := newLeftTable()
	left := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	left("device", fmt.Sprintf("%s (%s, %s, %s, %d-byte sectors)", s.Device.Path, kind, humanBytes(uint64(s.Device.Size)), io, s.Device.SectorSize))
	left("uuid", s.UUID)
	left("label", fmt.Sprintf("%q", s.Label))
	left("geometry", fmt.Sprintf("%d blocks of %s (%s), %d AGs of %d blocks (%s)",
		s.Dblocks, humanBytes(bs), humanBytes(s.Dblocks*bs), s.Agcount, s.Agblocks, humanBytes(uint64(s.Agblocks)*bs)))
	left("sizes", fmt.Sprintf("sector %s, inode %s, directory block %s", humanBytes(uint64(s.Sectsize)), humanBytes(uint64(s.Inodesize)), humanBytes(uint64(s.Dirblk))))
	left("features", joinNames(s.Features))
	left("root inode", fmt.Sprint(s.Rootino))
	left("inodes", fmt.Sprintf("%d allocated, %d free (superblock counters)", s.Icount, s.Ifree))
	left("free space", fmt.Sprintf("%d blocks, %s (superblock counter)", s.Fdblocks, humanBytes(s.Fdblocks*bs)))
	logLine := fmt.Sprintf("internal, %d blocks (%s) at block %d", s.Log.Logblocks, humanBytes(uint64(s.Log.Logblocks)*bs), s.Log.Logstart)
	if s.Log.Error != "" {
		logLine += "; cannot find head: " + s.Log.Error
	} else {
		state := "clean"
		if !s.Log.Clean {
			state = "DIRTY (needs recovery: mount it, or run xfsimg recover)"
		}
		logLine += fmt.Sprintf("; head (%d,%d), tail (%d,%d), %s", s.Log.HeadCycle, s.Log.HeadBlock, s.Log.TailCycle, s.Log.TailBlock, state)
	}
	left("log", logLine)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	t := newTable()
	fmt.Fprintf(t, "AG\tfree blocks\tfree space\tlongest\tAGFL\tbtree blocks\tinodes\tfree inodes\t\n")
	for _, a := range s.AGs {
		if a.Error != "" {
			fmt.Fprintf(t, "%d\t%s\t\t\t\t\t\t\t\n", a.Seqno, "error: "+a.Error)
			continue
		}
		fmt.Fprintf(t, "%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t\n", a.Seqno, a.Freeblks, humanBytes(uint64(a.Freeblks)*bs), a.Longest, a.Flcount, a.Btreeblks, a.Count, a.Freecount)
	}
	return t.Flush()
}
