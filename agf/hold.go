package agf

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// AGFHold is a transaction's hold on one AG's AGF for a tree that is
// rooted in the AGF but not the allocator's own: the refcount btree. It
// shares the allocator's buffer and decoded AGF, so that one transaction
// never holds two copies of the AGF (whose CRC write-back would then let
// one copy's changes overwrite the other's).
type AGFHold struct{ ag *txAG }

// HoldAGF takes AG agno's AGF in the allocator's transaction, in the same
// increasing AG order as allocations (ErrLockOrder otherwise), or returns
// the hold the transaction already has.
func (a *Allocator) HoldAGF(agno uint32) (*AGFHold, error) {
	if agno >= a.g.AGCount {
		return nil, fmt.Errorf("agf %d: no such AG", agno)
	}
	ag, err := a.lockAG(agno)
	if err != nil {
		return nil, err
	}
	return &AGFHold{ag: ag}, nil
}

// AGF is the transaction's decoded AGF. Holders change only their own
// tree's fields in it and log them (LogRefcount); the allocator keeps the
// free-space fields.
func (h *AGFHold) AGF() *ondisk.AGF { return h.ag.agf }

// AGFRefcountOff is where agf_refcount_blocks, agf_refcount_root and
// agf_refcount_level lie in the AGF sector, in that order.
const AGFRefcountOff = 84

// LogRefcount writes the refcount btree's blocks, root and level from
// AGF() into the buffer and logs those 12 bytes (the kernel's
// XFS_AGF_REFCOUNT_BLOCKS | ROOT | LEVEL); the CRC is the journal's at
// write-back.
func (h *AGFHold) LogRefcount() {
	be := binary.BigEndian
	d := h.ag.agfBuf.Data
	f := h.ag.agf
	be.PutUint32(d[AGFRefcountOff:], f.RefcountBlocks)
	be.PutUint32(d[AGFRefcountOff+4:], f.RefcountRoot)
	be.PutUint32(d[AGFRefcountOff+8:], f.RefcountLevel)
	h.ag.a.tx.LogBuf(h.ag.agfBuf, AGFRefcountOff, 12)
}
