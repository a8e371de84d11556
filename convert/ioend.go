package convert

import (
	"fmt"
)

// ioend is one data write and what its completion does: contiguous file
// blocks going to contiguous disk blocks.
type ioend struct {
	ip        *inode
	off       uint64 // first file block
	dblk      uint64 // its file system block
	pages     []*page
	bufs      [][]byte // what goes to the device: the pages' own buffers
	unwritten bool     // some of it maps unwritten blocks: flip them at completion
	cow       bool     // it goes to COW blocks: remap them at completion
}

func (s *Session) newIoend(ip *inode, off, dblk uint64) *ioend {
	return &ioend{ip: ip, off: off, dblk: dblk}
}

// addPage adds page p to the I/O. The write goes out of the page's own
// buffer, not a copy (a write into the page meanwhile continues it in a
// new buffer: page.inflight). Only the EOF block is copied: the bytes
// past EOF go out as zeros, as the kernel zeroes the EOF folio's tail at
// writeback, but they are zeroed in the copy, never in the page, which
// the next write may extend.
func (s *Session) addPage(io *ioend, p *page) {
	ip := io.ip
	ip.ilock.RLock()
	size := ip.size
	ip.ilock.RUnlock()
	pc := &ip.pc
	pc.mu.Lock()
	bs := int64(len(p.data))
	data := p.data
	if base := int64(p.blk) * bs; base+bs > size {
		data = s.bufs.get(int(bs))
		copy(data, p.data[:max(size-base, 0)])
	} else {
		p.inflight = true
	}
	pc.mu.Unlock()
	io.pages = append(io.pages, p)
	io.bufs = append(io.bufs, data)
}

// runIO writes the data, then completes the I/O.
func (s *Session) runIO(io *ioend) error {
	_, err := s.cdev.writeData(io.bufs, s.g.FSBOffset(io.dblk))
	if err != nil {
		err = fmt.Errorf("inode %d: write file blocks [%d,+%d): %w", io.ip.ino, io.off, len(io.pages), err)
	} else {
		err = s.endIO(io)
	}
	ip, bs := io.ip, int64(s.g.BlockSize)
	pc := &ip.pc
	pc.mu.Lock()
	for i, p := range io.pages {
		// The buffer written is the page's, or a copy (of the EOF
		// block, or left behind by a writer): that is free now.
		if buf := io.bufs[i]; &buf[0] == &p.data[0] {
			p.inflight = false
		} else {
			s.bufs.put(buf)
		}
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
	s.cache.ioDone()
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
	if io.cow {
		return s.endCow(io)
	}
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
