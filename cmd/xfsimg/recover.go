package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/refcount"
)

type lsnJSON struct {
	Cycle uint32 `json:"cycle"`
	Block uint32 `json:"block"`
}

func lsnOf(l log.LSN) lsnJSON { return lsnJSON{l.Cycle(), l.Block()} }

// stateMarks are the LSNs a log state notes: where a torn write begins,
// and where the tail was before the head overwrote it (nil when neither).
func stateMarks(st *log.State) (torn, tailFrom *lsnJSON) {
	if st.Torn {
		l := lsnOf(st.TornFrom)
		torn = &l
	}
	if st.TailMoved {
		l := lsnOf(st.OrigTail)
		tailFrom = &l
	}
	return torn, tailFrom
}

func (l lsnJSON) String() string { return fmt.Sprintf("(%d,%d)", l.Cycle, l.Block) }

type countsJSON struct {
	Replayed  int `json:"replayed"`
	Skipped   int `json:"skipped"`
	Cancelled int `json:"cancelled"`
}

type counterJSON struct {
	Before uint64 `json:"before"`
	After  uint64 `json:"after"`
}

type recoverJSON struct {
	Clean         bool           `json:"clean"`
	DryRun        bool           `json:"dry_run"`
	Head          lsnJSON        `json:"head"`
	Tail          lsnJSON        `json:"tail"`
	TornWriteFrom *lsnJSON       `json:"torn_write_dropped_from,omitempty"`
	TailMovedFrom *lsnJSON       `json:"tail_moved_from,omitempty"`
	Records       int            `json:"records"`
	Transactions  int            `json:"transactions"`
	Uncommitted   int            `json:"uncommitted_dropped"`
	Items         map[string]int `json:"items"`
	Buffers       countsJSON     `json:"buffer_items"`
	Inodes        countsJSON     `json:"inode_items"`
	InodeChunks   countsJSON     `json:"inode_chunks"`
	IntentsDone   int            `json:"intents_done"`
	Written       struct {
		Buffers int   `json:"buffers"`
		Bytes   int64 `json:"bytes"`
	} `json:"written"`
	Counters struct {
		ICount   counterJSON `json:"icount"`
		IFree    counterJSON `json:"ifree"`
		FDBlocks counterJSON `json:"fdblocks"`
	} `json:"counters"`
	// COW staging extents freed after the replay (reflink file systems).
	CowFreed *refcount.CowLeftovers `json:"cow_staging_freed,omitempty"`
	NewHead  lsnJSON                `json:"new_head"`
	Seconds  float64                `json:"seconds"`
}

func newRecoverCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover IMAGE",
		Short: "Replay a dirty log as mount would, and leave the log clean",
		Long: `recover replays the committed transactions of a dirty XFS log into the file
system, the way the kernel does when it mounts it after a crash: buffer and
inode changes, new inode chunks, cancelled buffers, with the kernel's rules for
what is already on disk. It then recomputes the superblock counters from the
AG headers and writes an unmount record, so that the log is clean. On a
reflink file system it then frees the copy-on-write staging extents the crash
left, as the kernel does after recovery (not with rmapbt: mount to free those).

The whole log is replayed in memory and checked first; nothing is written
when the log is damaged or holds something xfsimg does not replay (intents
whose work is not done, quota items, files deleted but not yet freed). Such
a log is left for the kernel: mount the file system.

--dry-run reads and replays without writing anything.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dev, err := ondisk.Open(args[0], ondisk.OpenOptions{
				Write:    !dryRun,
				Buffered: gflags.buffered,
				Warnf: func(format string, a ...any) {
					fmt.Fprintf(stderr, "xfsimg: "+format+"\n", a...)
				},
			})
			if err != nil {
				return err
			}
			defer dev.Close()
			start := time.Now()
			rep, err := log.Recover(dev, log.RecoverOptions{DryRun: dryRun})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			// The kernel frees the COW staging extents a crash left
			// once it recovered a dirty log: nothing owns them.
			var left *refcount.CowLeftovers
			if !rep.Clean && !rep.DryRun {
				l, err := refcount.RecoverCowOnDevice(dev)
				if err != nil {
					return fmt.Errorf("%s: the log is replayed and clean, but: %w", args[0], err)
				}
				left = &l
			}
			out := recoverOut(rep, time.Since(start))
			if out.CowFreed = left; left != nil && left.Extents > 0 {
				// The frees moved the free count and the log head.
				if err := rereadAfterCow(dev, &out); err != nil {
					return err
				}
			}
			return output(out, func() error { return printRecover(&out) })
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "replay in memory and report, writing nothing")
	return cmd
}

func recoverOut(rep *log.Report, d time.Duration) recoverJSON {
	st := rep.State
	out := recoverJSON{
		Clean: rep.Clean, DryRun: rep.DryRun,
		Head: lsnOf(st.Head), Tail: lsnOf(st.Tail),
		Records: rep.Records, Transactions: rep.Transactions, Uncommitted: rep.Uncommitted,
		Items:       rep.Items,
		Buffers:     countsJSON{rep.BufsReplayed, rep.BufsSkipped, rep.BufsCancelled},
		Inodes:      countsJSON{rep.InodesReplayed, rep.InodesSkipped, rep.InodesCancelled},
		InodeChunks: countsJSON{Replayed: rep.ICreates, Cancelled: rep.ICreatesCancelled},
		IntentsDone: rep.IntentsDone,
		NewHead:     lsnOf(rep.NewHead),
		Seconds:     d.Seconds(),
	}
	out.TornWriteFrom, out.TailMovedFrom = stateMarks(&st)
	out.Written.Buffers, out.Written.Bytes = rep.BuffersWritten, rep.BytesWritten
	out.Counters.ICount = counterJSON{rep.OldICount, rep.ICount}
	out.Counters.IFree = counterJSON{rep.OldIFree, rep.IFree}
	out.Counters.FDBlocks = counterJSON{rep.OldFDBlocks, rep.FDBlocks}
	return out
}

func printRecover(r *recoverJSON) error {
	tw := newLeftTable()
	if r.Clean {
		fmt.Fprintf(tw, "log\tclean, head %s: nothing to recover\n", r.Head)
		if r.TornWriteFrom != nil {
			verb := "cleared"
			if r.DryRun {
				verb = "would clear"
			}
			fmt.Fprintf(tw, "torn write\t%s the records after the unmount record, up to %s\n", verb, r.TornWriteFrom)
		}
		return tw.Flush()
	}
	fmt.Fprintf(tw, "log\tdirty: tail %s, head %s\n", r.Tail, r.Head)
	if r.TornWriteFrom != nil {
		fmt.Fprintf(tw, "torn write\tdropped the records from %s to %s (bad CRC), as the kernel does\n", r.Head, r.TornWriteFrom)
	}
	if r.TailMovedFrom != nil {
		fmt.Fprintf(tw, "tail\tmoved from %s: the head had overwritten it\n", r.TailMovedFrom)
	}
	fmt.Fprintf(tw, "read\t%d records, %d committed transactions", r.Records, r.Transactions)
	if r.Uncommitted > 0 {
		fmt.Fprintf(tw, " (%d without a commit dropped)", r.Uncommitted)
	}
	fmt.Fprintln(tw)
	var names []string
	for n := range r.Items {
		names = append(names, n)
	}
	sort.Strings(names)
	var items []string
	for _, n := range names {
		items = append(items, fmt.Sprintf("%s %d", n, r.Items[n]))
	}
	fmt.Fprintf(tw, "items\t%s\n", strings.Join(items, ", "))
	fmt.Fprintf(tw, "buffers\t%d replayed, %d skipped (newer on disk), %d cancelled\n", r.Buffers.Replayed, r.Buffers.Skipped, r.Buffers.Cancelled)
	fmt.Fprintf(tw, "inodes\t%d replayed, %d skipped (newer on disk), %d cancelled\n", r.Inodes.Replayed, r.Inodes.Skipped, r.Inodes.Cancelled)
	if r.InodeChunks.Replayed+r.InodeChunks.Cancelled > 0 {
		fmt.Fprintf(tw, "inode chunks\t%d initialised, %d cancelled\n", r.InodeChunks.Replayed, r.InodeChunks.Cancelled)
	}
	if r.IntentsDone > 0 {
		fmt.Fprintf(tw, "intents\t%d done in the log already: nothing to do\n", r.IntentsDone)
	}
	verb := "written"
	if r.DryRun {
		verb = "would write"
	}
	fmt.Fprintf(tw, "%s\t%d metadata buffers (%s)\n", verb, r.Written.Buffers, humanBytes(uint64(r.Written.Bytes)))
	c := r.Counters
	fmt.Fprintf(tw, "counters\ticount %d -> %d, ifree %d -> %d, fdblocks %d -> %d\n",
		c.ICount.Before, c.ICount.After, c.IFree.Before, c.IFree.After, c.FDBlocks.Before, c.FDBlocks.After)
	if r.CowFreed != nil && r.CowFreed.Extents > 0 {
		fmt.Fprintf(tw, "COW leftovers\t%d staging extents freed (%d blocks), as the kernel frees them after recovery\n", r.CowFreed.Extents, r.CowFreed.Blocks)
	}
	if r.DryRun {
		fmt.Fprintf(tw, "dry run\tnothing written; the log is still dirty\n")
	} else {
		fmt.Fprintf(tw, "log\tclean, head %s\n", r.NewHead)
	}
	fmt.Fprintf(tw, "time\t%.3f s\n", r.Seconds)
	return tw.Flush()
}

// rereadAfterCow puts the free count and the log head recoverCow left into
// the report.
func rereadAfterCow(dev *ondisk.Device, out *recoverJSON) error {
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil {
		return err
	}
	out.Counters.FDBlocks.After = sb.FDBlocks
	a := log.NewArea(dev, ondisk.NewGeometry(sb), sb.UUID)
	a.LogSUnit = sb.LogSUnit
	st, err := a.FindState()
	if err != nil {
		return err
	}
	out.NewHead = lsnOf(st.Head)
	return nil
}
