package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Transaction is one log transaction reassembled from its ops, which may
// be spread over many records.
type Transaction struct {
	Tid uint32
	// LSN is h_lsn of the record holding the START op: the LSN recovery
	// replays the transaction with (current_lsn) and stamps into metadata.
	LSN       LSN
	CommitLSN LSN // h_lsn of the record holding the COMMIT op
	Header    TransHeader
	Items     []Item
	Committed bool

	hdr    [TransHeaderSize]byte // the header as its pieces arrive
	hdrLen int
	done   bool // committed or ended by an unmount op
	// started is set once the header is whole: the kernel then queues an
	// empty item that the first region fills.
	started bool
}

// Item is one log item: its regions (ops) in order; the first is the
// format structure whose type and region count lead it.
type Item struct {
	Type    uint16
	Regions [][]byte
	total   int // regions the format region announces
}

// TypeName names the item's type, e.g. "BUF".
func (it *Item) TypeName() string { return ItemName(it.Type) }

// assembler turns a stream of records into transactions by tid, following
// xlog_recover_process_ophdr and xlog_recovery_process_trans.
type assembler struct {
	live    map[uint32]*Transaction
	order   []*Transaction // live transactions by first appearance, for a stable report
	deliver func(*Transaction) error
}

func newAssembler(deliver func(*Transaction) error) *assembler {
	return &assembler{live: map[uint32]*Transaction{}, deliver: deliver}
}

func (as *assembler) addRecord(r *Record) error {
	for i := range r.Ops {
		if err := as.addOp(r, &r.Ops[i]); err != nil {
			return &RecordError{r.Block, fmt.Errorf("op %d (tid 0x%08x): %w", i, r.Ops[i].Header.Tid, err)}
		}
	}
	return nil
}

func (as *assembler) addOp(r *Record, op *Op) error {
	t := as.live[op.Header.Tid]
	if t == nil {
		// Ops of unknown transactions without START are slack or the
		// tails of transactions that began before the tail: skipped.
		if op.Header.Flags&OpStart != 0 {
			t = &Transaction{Tid: op.Header.Tid, LSN: r.Header.LSN}
			as.live[t.Tid] = t
			as.order = append(as.order, t)
		}
		return nil
	}
	flags := op.Header.Flags &^ OpEnd
	if flags&OpWasCont != 0 {
		flags &^= OpContinue
	}
	switch flags {
	case 0, OpContinue:
		return t.addRegion(op.Data)
	case OpWasCont:
		return t.continueRegion(op.Data)
	case OpCommit:
		as.remove(t)
		if err := t.finish(); err != nil {
			return err
		}
		t.CommitLSN, t.Committed = r.Header.LSN, true
		if as.deliver != nil {
			return as.deliver(t)
		}
		return nil
	case OpUnmount:
		as.remove(t)
		return nil
	}
	return ondisk.Corruptf("bad op flags 0x%x", op.Header.Flags)
}

func (as *assembler) remove(t *Transaction) {
	delete(as.live, t.Tid)
	t.done = true
	if len(as.order) > 64 && len(as.live) < len(as.order)/2 {
		as.order = as.open()
	}
}

func (as *assembler) open() []*Transaction {
	var out []*Transaction
	for _, t := range as.order {
		if !t.done {
			out = append(out, t)
		}
	}
	return out
}

// uncommitted returns the transactions still open, in the order they began.
func (as *assembler) uncommitted() []*Transaction {
	out := as.open()
	for _, t := range out {
		if t.hdrLen == TransHeaderSize {
			t.Header, _ = DecodeTransHeader(t.hdr[:])
		}
		t.Items = t.trimmed()
	}
	return out
}

// addRegion is xlog_recover_add_to_trans: the first data of a transaction
// is its header (possibly in pieces); after it every op starts a region,
// and a region whose item is full starts the next item.
func (t *Transaction) addRegion(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if !t.started {
		if len(b) < 4 || binary.LittleEndian.Uint32(b) != TransMagic {
			return ondisk.Corruptf("transaction header without its magic")
		}
		if len(b) > TransHeaderSize {
			return ondisk.Corruptf("transaction header of %d bytes", len(b))
		}
		copy(t.hdr[:], b)
		t.hdrLen = len(b)
		if len(b) == TransHeaderSize {
			t.started = true
			t.Items = append(t.Items, Item{})
		}
		return nil
	}
	it := &t.Items[len(t.Items)-1]
	if it.total != 0 && it.total == len(it.Regions) {
		t.Items = append(t.Items, Item{})
		it = &t.Items[len(t.Items)-1]
	}
	if it.total == 0 {
		if len(b) < 4 {
			return ondisk.Corruptf("item format region of %d bytes", len(b))
		}
		n := int(binary.LittleEndian.Uint16(b[2:]))
		if n == 0 || n > MaxRegionsInItem {
			return ondisk.Corruptf("item of type 0x%04x announces %d regions", binary.LittleEndian.Uint16(b), n)
		}
		it.total, it.Type = n, binary.LittleEndian.Uint16(b)
	}
	it.Regions = append(it.Regions, b)
	return nil
}

// continueRegion is xlog_recover_add_to_cont_trans: the op carries the
// rest of the region (or header) the previous op began.
func (t *Transaction) continueRegion(b []byte) error {
	if !t.started {
		if t.hdrLen+len(b) > TransHeaderSize {
			return ondisk.Corruptf("transaction header continued to %d bytes", t.hdrLen+len(b))
		}
		// The kernel copies the rest to the end of the header.
		copy(t.hdr[TransHeaderSize-len(b):], b)
		t.hdrLen = TransHeaderSize
		t.started = true
		t.Items = append(t.Items, Item{})
		return nil
	}
	it := &t.Items[len(t.Items)-1]
	if len(it.Regions) == 0 {
		return ondisk.Corruptf("continued region with no region to continue")
	}
	last := it.Regions[len(it.Regions)-1]
	joined := make([]byte, 0, len(last)+len(b))
	it.Regions[len(it.Regions)-1] = append(append(joined, last...), b...)
	return nil
}

// finish checks a committed transaction the way recovery would before
// replaying it: every item holds all the regions it announced.
func (t *Transaction) finish() error {
	if t.started {
		h, err := DecodeTransHeader(t.hdr[:])
		if err != nil {
			return err
		}
		t.Header = h
	}
	for i := range t.Items {
		it := &t.Items[i]
		if len(it.Regions) == 0 {
			return ondisk.Corruptf("committed log item %d has no regions", i)
		}
		if len(it.Regions) != it.total {
			return ondisk.Corruptf("committed %s item %d has %d of its %d regions", ItemName(it.Type), i, len(it.Regions), it.total)
		}
	}
	return nil
}

// trimmed drops the empty item a started transaction keeps ready.
func (t *Transaction) trimmed() []Item {
	if n := len(t.Items); n > 0 && len(t.Items[n-1].Regions) == 0 {
		return t.Items[:n-1]
	}
	return t.Items
}
