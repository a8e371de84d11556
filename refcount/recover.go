package refcount

import (
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/log"
	"github.com/xfsimg/xfsimg/ondisk"
)

// CowLeftovers counts the staging extents RecoverCow freed.
type CowLeftovers struct {
	Extents int   `json:"extents"`
	Blocks  int64 `json:"blocks"`
}

// RecoverCowOnDevice is RecoverCow on dev with a journal of its own, as
// xfsimg recover runs it after log recovery replayed a dirty log: it opens
// the (now clean) log, frees the staging extents and leaves the log clean.
// On a file system without reflink it does nothing.
func RecoverCowOnDevice(dev ondisk.Storage) (CowLeftovers, error) {
	sb, err := ondisk.ReadSuperblock(dev)
	if err != nil || !sb.HasReflink() {
		return CowLeftovers{}, err
	}
	j, err := log.Open(dev, sb, ondisk.NewGeometry(sb), log.Options{})
	if err != nil {
		return CowLeftovers{}, err
	}
	left, err := RecoverCow(j, j.Geometry(), sb)
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	return left, err
}

// RecoverCow frees every COW staging extent of the file system, as the
// kernel does after it recovered a dirty log (xfs_reflink_recover_cow):
// after a crash no COW fork owns them, and nothing else would free them.
// Each goes in its own transaction, its record removed and its blocks
// freed, as xfs_refcount_recover_cow_leftovers does.
func RecoverCow(j *log.Journal, g *ondisk.Geometry, sb *ondisk.Superblock) (CowLeftovers, error) {
	var got CowLeftovers
	if !sb.HasReflink() {
		return got, nil
	}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		for {
			done, n, err := freeFirstCow(j, g, agno)
			if err != nil {
				return got, fmt.Errorf("agf %d: recover COW staging extents: %w", agno, err)
			}
			if done {
				break
			}
			got.Extents++
			got.Blocks += int64(n)
		}
	}
	return got, nil
}

// freeFirstCow frees the first staging extent of AG agno; done when there
// is none.
func freeFirstCow(j *log.Journal, g *ondisk.Geometry, agno uint32) (done bool, n uint32, err error) {
	// Freeing may split a free-space btree block and join refcountbt
	// blocks; the reserve covers both, as for the kernel's
	// XFS_TRANS_RESERVE frees.
	tx, err := j.Begin(log.Reservation{Blocks: int64(2 * ondisk.AllocMaxLevels(g)), Rsvd: true})
	if err != nil {
		return false, 0, err
	}
	al := agf.NewAllocator(tx, g)
	w, err := open(tx, g, al, agno)
	if err != nil {
		tx.Cancel()
		return false, 0, err
	}
	r, err := w.at(0, true, btree.GE)
	if err != nil || !r.valid || !r.cow {
		tx.Cancel()
		return err == nil, 0, err
	}
	if tx.Journal().Superblock().HasRmapbt() {
		// Freeing them would change rmapbt records too.
		tx.Cancel()
		return false, 0, fmt.Errorf("staging extent %v with rmapbt: %w (mount the file system to free it)", r, ondisk.ErrUnsupported)
	}
	if err := w.FreeCow(r.start, r.len); err != nil {
		tx.Cancel()
		return false, 0, err
	}
	if err := al.Free(g.FSB(agno, r.start), r.len); err != nil {
		tx.Cancel()
		return false, 0, err
	}
	return false, r.len, tx.Commit()
}
