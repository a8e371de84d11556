package log

import (
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Delayed allocation takes its blocks from the in-core free count when the
// data is written, long before a transaction allocates them: the kernel's
// xfs_dec_fdblocks at write time. ENOSPC is decided there. Writeback then
// hands the reservation to the transaction that converts the delayed
// extent (TakeReserved), which must not fail for space, and gives back
// what the conversion leaves delayed (ReturnReserved); what the
// transaction did not use returns to the free count at commit.

// Reserve takes n blocks from the in-core free count for a delayed
// allocation, leaving at least keep blocks (reservations the kernel holds
// back from ordinary allocations) beyond the set-aside. It fails with an
// error wrapping ondisk.ErrNoSpace, changing nothing.
func (j *Journal) Reserve(n, keep int64) error {
	if n < 0 {
		return fmt.Errorf("reserve %d blocks", n)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if avail := j.fdblocks - j.reserved - j.setAside - keep; n > avail {
		return fmt.Errorf("reserve %d blocks with %d available: %w", n, max(avail, 0), ondisk.ErrNoSpace)
	}
	j.reserved += n
	j.delalloc += n
	return nil
}

// Unreserve gives back n blocks of delayed allocation (punched, truncated
// or left over after conversion).
func (j *Journal) Unreserve(n int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if n > j.delalloc {
		j.err = fmt.Errorf("%w: unreserve %d delayed blocks with %d reserved", ErrShutdown, n, j.delalloc)
		return
	}
	j.reserved -= n
	j.delalloc -= n
}

// Delalloc is the number of blocks held by delayed allocations.
func (j *Journal) Delalloc() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.delalloc
}

// TakeReserved moves n blocks of delayed-allocation reservation into the
// transaction, which may then allocate them.
func (tx *Tx) TakeReserved(n int64) error {
	j := tx.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if n < 0 || n > j.delalloc {
		return fmt.Errorf("take %d delayed blocks with %d reserved", n, j.delalloc)
	}
	j.delalloc -= n
	tx.res += n
	return nil
}

// ReturnReserved moves n blocks of the transaction's reservation back to
// delayed allocation: those the part of an extent it did not convert
// still needs.
func (tx *Tx) ReturnReserved(n int64) error {
	j := tx.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if n < 0 || n > tx.res+tx.dfd {
		return fmt.Errorf("return %d blocks of a transaction reservation of %d with %d used", n, tx.res, -tx.dfd)
	}
	tx.res -= n
	j.delalloc += n
	return nil
}
