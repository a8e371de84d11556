package btree

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Writer is the Store of a tree being changed inside a transaction: the
// bytes ReadBlock returns are the transaction's own copy, which the engine
// changes in place and then logs.
type Writer interface {
	Store
	// LogBlock records that bytes [off, off+n) of block ptr changed.
	LogBlock(ptr uint64, off, n int)
	// AllocBlock returns a new zeroed block for the tree, near hint when
	// the allocator can (hint is a block of the same tree, or 0).
	AllocBlock(hint uint64) (ptr uint64, buf []byte, daddr int64, err error)
	// FreeBlock gives a block of the tree back.
	FreeBlock(ptr uint64) error
}

// RootWriter is a Root that can change.
type RootWriter interface {
	Root
	// SetRoot moves a block-rooted tree's root (AGF/AGI root and level).
	SetRoot(ptr uint64, height int)
	// LogInodeRoot records that the in-inode root's bytes changed; the
	// owner writes them back to the fork in on-disk (bmdr) form.
	LogInodeRoot()
}

func (t *Tree) writer() (Writer, RootWriter, error) {
	w, ok := t.Store.(Writer)
	if !ok {
		return nil, nil, fmt.Errorf("%v: tree is read-only", t)
	}
	r, ok := t.Root.(RootWriter)
	if !ok {
		return nil, nil, fmt.Errorf("%v: root is read-only", t)
	}
	return w, r, nil
}

// Helpers that change one block and log what they change.

func (t *Tree) logRange(b *block, off, n int) {
	if n <= 0 {
		return
	}
	if b.ptr == ondisk.NullFSBlock {
		t.Root.(RootWriter).LogInodeRoot()
		return
	}
	t.Store.(Writer).LogBlock(b.ptr, off, n)
}

func (t *Tree) logHeader(b *block) {
	b.hdr.Encode(b.buf)
	t.logRange(b, 0, HeaderSize(t.Ops))
}

func (t *Tree) logRecs(b *block, first, end int) {
	t.logRange(b, t.recOff(first), (end-first)*t.Ops.RecSize())
}

func (t *Tree) logKeys(b *block, first, end int) {
	t.logRange(b, t.keyOff(first), (end-first)*t.Ops.KeySize())
}

func (t *Tree) logPtrs(b *block, first, end int) {
	t.logRange(b, t.ptrOff(b.buf, first), (end-first)*PtrSize(t.Ops))
}

func (t *Tree) setPtr(b *block, i int, p uint64) {
	o := t.ptrOff(b.buf, i)
	if t.Ops.Long() {
		binary.BigEndian.PutUint64(b.buf[o:], p)
	} else {
		binary.BigEndian.PutUint32(b.buf[o:], uint32(p))
	}
}

// entry is one record (leaf) or key and pointer (node) being moved.
type entry struct {
	rec []byte // leaf record, or node key
	ptr uint64 // node child
}

func (t *Tree) entryAt(b *block, i int) entry {
	if b.level() == 0 {
		return entry{rec: append([]byte(nil), t.rec(b, i)...)}
	}
	return entry{rec: append([]byte(nil), t.key(b, i)...), ptr: t.ptr(b, i)}
}

func (t *Tree) putEntry(b *block, i int, e entry) {
	if b.level() == 0 {
		copy(t.rec(b, i), e.rec)
		return
	}
	copy(t.key(b, i), e.rec)
	t.setPtr(b, i, e.ptr)
}

// moveEntries shifts entries [from, n) of b by delta positions (either
// way) and logs the result.
func (t *Tree) moveEntries(b *block, from, n, delta int) {
	if from >= n || delta == 0 {
		return
	}
	if b.level() == 0 {
		rs := t.Ops.RecSize()
		src := b.buf[t.recOff(from):t.recOff(n)]
		copy(b.buf[t.recOff(from+delta):], src)
		_ = rs
		t.logRecs(b, min(from, from+delta), n+max(delta, 0))
		return
	}
	copy(b.buf[t.keyOff(from+delta):], b.buf[t.keyOff(from):t.keyOff(n)])
	po := t.ptrOff(b.buf, from)
	pe := t.ptrOff(b.buf, n)
	copy(b.buf[t.ptrOff(b.buf, from+delta):], b.buf[po:pe])
	t.logKeys(b, min(from, from+delta), n+max(delta, 0))
	t.logPtrs(b, min(from, from+delta), n+max(delta, 0))
}

// insertAt puts e at index i of b, which must have room.
func (t *Tree) insertAt(b *block, i int, e entry) {
	n := b.numRecs()
	t.moveEntries(b, i, n, 1)
	t.putEntry(b, i, e)
	if b.level() == 0 {
		t.logRecs(b, i, i+1)
	} else {
		t.logKeys(b, i, i+1)
		t.logPtrs(b, i, i+1)
	}
	b.hdr.NumRecs++
	t.logHeader(b)
}

// removeAt deletes entry i of b.
func (t *Tree) removeAt(b *block, i int) {
	n := b.numRecs()
	t.moveEntries(b, i+1, n, -1)
	b.hdr.NumRecs--
	t.logHeader(b)
}

// firstKey is the key of b's first entry.
func (t *Tree) firstKey(b *block) []byte {
	k := make([]byte, t.Ops.KeySize())
	return append(k[:0], t.keyAt(b, 0, k)...)
}
