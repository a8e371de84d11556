package convert

import (
	"fmt"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// ioend is one data write and what its completion does: contiguous file
// blocks going to contiguous disk blocks.
type ioend struct {
	ip        *inode
	off       uint64 // first file block
	dblk      uint64 // its file system block
	pages     []*page
	buf       []byte // the data, copied from the pages when they joined
	unwritten bool   // some of it maps unwritten blocks: flip them at completion
}

var ioBufs = sync.Pool{New: func() any { return ondisk.AlignedBuffer(maxIOBytes, 4096) }}

func (s *Session) newIoend(ip *inode, off, dblk uint64) *ioend {
	return &ioend{ip: ip, off: off, dblk: dblk, buf: ioBufs.Get().([]byte)[:0]}
}

// addPage copies page p into the I/O. Bytes of the EOF block past EOF go
// out as zeros, as the kernel zeroes the EOF folio's tail at writeback.
func (s *Session) addPage(io *ioend, p *page) {
	ip := io.ip
	ip.ilock.RLock()
	size := ip.size
	ip.ilock.RUnlock()
	bs := int64(len(p.data))
	n := len(io.buf)
	io.buf = io.buf[:n+int(bs)]
	ip.pc.mu.Lock()
	copy(io.buf[n:], p.data)
	ip.pc.mu.Unlock()
	if base := int64(p.blk) * bs; base+bs > size {
		clear(io.buf[n+int(max(size-base, 0)):])
	}
	io.pages = append(io.pages, p)
}

// runIO writes the data, then completes the I/O.
func (s *Session) runIO(io *ioend) error {
	_, err := s.cdev.writeData(io.buf, s.g.FSBOffset(io.dblk))
	if err != nil {
		err = fmt.Errorf("inode %d: write file blocks [%d,+%d): %w", io.ip.ino, io.off, len(io.pages), err)
	} else {
		err = s.endIO(io)
	}
	buf := io.buf
	io.buf = nil
	ioBufs.Put(buf[:cap(buf)])
	ip, bs := io.ip, int64(s.g.BlockSize)
	pc := &ip.pc
	pc.mu.Lock()
	for _, p := range io.pages {
		p.busy = false
		if err != nil {
			// The data did not make it: keep it to write again.
			p.dirty = true
		}
		if !p.dirty {
			pc.t.Delete(p)
			s.cache.add(-bs)
			s.bufs.put(p.data)
			p.data = nil
		}
	}
	pc.cond.Broadcast()
	pc.mu.Unlock()
	if err == nil {
		s.addStats(func(st *Stats) {
			st.DataWrites++
			st.DataBytes += int64(len(io.pages)) * bs
		})
	}
	return err
}

// endIO is xfs_end_ioend: the written range becomes written (only it: the
// rest of a converted extent stays unwritten), and the on-disk size moves
// up to the end of the data, never past the in-core size. The data is on
// the device already; the journal flushes the device before a checkpoint,
// so the data is durable before the change that exposes it.
func (s *Session) endIO(io *ioend) error {
	ip := io.ip
	n := uint64(len(io.pages))
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	end := int64(io.off+n) * int64(s.g.BlockSize)
	newSize := min(ip.size, end)
	grow := newSize > ip.diskSize
	if !io.unwritten && !grow {
		return nil
	}
	t, err := s.beginRsvd(ip.ino)
	if err != nil {
		return err
	}
	seq := t.f.Seq()
	if io.unwritten {
		if err := t.f.SetState(io.off, n, false); err != nil {
			t.cancel()
			return err
		}
	}
	if grow {
		t.f.Core().Size = newSize
	}
	if ip.timesDirty {
		t.touch()
		ip.timesDirty = false
	}
	changed := t.f.Seq() != seq
	if err := t.commit(); err != nil {
		return err
	}
	if changed {
		ip.seq.Add(1)
	}
	if grow {
		ip.diskSize = newSize
	}
	return nil
}
