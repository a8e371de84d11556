package xfs

import (
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/xfsimg/xfsimg/bmbt"
	"github.com/xfsimg/xfsimg/ondisk"
)

// FileReader reads a regular file's contents. Holes, unwritten extents and
// the space past the last extent up to the file size read as zeros.
type FileReader struct {
	fs   *FS
	ino  uint64
	exts []ondisk.Extent
	size int64

	// A window of the file kept for small reads, as a page cache would:
	// byte-at-a-time readers would otherwise cost a device read each.
	mu     sync.Mutex
	win    []byte
	winOff int64 // file offset of win; -1 when empty
}

// OpenFile opens a regular file inode for reading.
func (ip *Inode) OpenFile() (*FileReader, error) {
	if !ip.Core.IsReg() {
		return nil, fmt.Errorf("inode %d: not a regular file", ip.Ino)
	}
	if ip.Core.Size < 0 {
		return nil, ondisk.Corruptf("inode %d: negative size %d", ip.Ino, ip.Core.Size)
	}
	exts, err := ip.Extents(bmbt.DataFork)
	if err != nil {
		return nil, err
	}
	return &FileReader{fs: ip.fs, ino: ip.Ino, exts: exts, size: ip.Core.Size, winOff: -1}, nil
}

// Size is the file size.
func (r *FileReader) Size() int64 { return r.size }

// segment is a run of the file that is either zeros (phys < 0) or
// physically contiguous written data.
type segment struct {
	off, len int64 // file byte range
	phys     int64 // device byte offset, or -1 for zeros
}

// segments describes the byte range [off, end) of the file as zero and
// data runs, merging physically contiguous extents.
func (r *FileReader) segments(off, end int64) []segment {
	g := r.fs.Geo
	bs := int64(g.BlockSize)
	var segs []segment
	add := func(s segment) {
		if s.len <= 0 {
			return
		}
		if n := len(segs); n > 0 {
			p := &segs[n-1]
			if p.off+p.len == s.off && ((p.phys < 0 && s.phys < 0) || (p.phys >= 0 && p.phys+p.len == s.phys)) {
				p.len += s.len
				return
			}
		}
		segs = append(segs, s)
	}
	i := sort.Search(len(r.exts), func(i int) bool { return int64(r.exts[i].End())*bs > off })
	pos := off
	for ; i < len(r.exts) && pos < end; i++ {
		e := r.exts[i]
		estart, eend := int64(e.StartOff)*bs, int64(e.End())*bs
		if estart > pos {
			add(segment{off: pos, len: min(estart, end) - pos, phys: -1})
			pos = min(estart, end)
		}
		if pos >= end {
			break
		}
		n := min(eend, end) - pos
		if e.Unwritten {
			add(segment{off: pos, len: n, phys: -1})
		} else {
			add(segment{off: pos, len: n, phys: g.FSBOffset(e.StartBlock) + (pos - estart)})
		}
		pos += n
	}
	add(segment{off: pos, len: end - pos, phys: -1})
	return segs
}

// windowSize is the unit small reads are served in.
const windowSize = 64 << 10

// ReadAt implements io.ReaderAt over the file contents. It is safe for
// concurrent use.
func (r *FileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("inode %d: negative offset", r.ino)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	if end-off < windowSize/4 {
		return r.readSmall(p, off, end)
	}
	return r.readDirect(p, off, end)
}

// readSmall serves a small read from the cached window around it.
func (r *FileReader) readSmall(p []byte, off, end int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.winOff < 0 || off < r.winOff || end > r.winOff+int64(len(r.win)) {
		start := off / windowSize * windowSize
		wend := min(start+2*windowSize, r.size) // two windows: a read may straddle one boundary
		if r.win == nil {
			r.win = ondisk.AlignedBuffer(2*windowSize, 4096)
		}
		if _, err := r.readDirect(r.win[:wend-start], start, wend); err != nil && err != io.EOF {
			r.winOff = -1
			return 0, err
		}
		r.win, r.winOff = r.win[:wend-start], start
	}
	n := copy(p, r.win[off-r.winOff:end-r.winOff])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readDirect reads [off, end) of the file into p from the device.
func (r *FileReader) readDirect(p []byte, off, end int64) (int, error) {
	for _, s := range r.segments(off, end) {
		dst := p[s.off-off : s.off-off+s.len]
		if s.phys < 0 {
			clear(dst)
			continue
		}
		if _, err := r.fs.Dev.ReadAt(dst, s.phys); err != nil {
			return int(s.off - off), fmt.Errorf("inode %d: read at %d: %w", r.ino, s.off, err)
		}
	}
	n := int(end - off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunkSize is the largest single device read of WriteTo: large enough to
// stream at device speed, small enough to keep memory flat.
const chunkSize = 4 << 20

// readers is how many device reads WriteTo keeps in flight: one more than
// a plain sequential reader, so the device queue never runs dry while a
// chunk is being written out.
const readers = 2

// chunk is one piece of the file to produce: zeros, or a device read.
type chunk struct {
	n    int
	phys int64 // device offset, -1 for zeros
	off  int64 // file offset, for messages
}

type filled struct {
	buf []byte
	n   int
	err error
}

// plan cuts the file into chunks of at most chunkSize.
func (r *FileReader) plan() []chunk {
	var cs []chunk
	for _, s := range r.segments(0, r.size) {
		for done := int64(0); done < s.len; {
			n := min(s.len-done, chunkSize)
			c := chunk{n: int(n), phys: -1, off: s.off + done}
			if s.phys >= 0 {
				c.phys = s.phys + done
			}
			cs = append(cs, c)
			done += n
		}
	}
	return cs
}

// WriteTo streams the whole file to w. Reads are block-aligned (so they
// go straight to the device under O_DIRECT); chunk i is read by reader
// i%readers while the caller's goroutine writes the chunks out in order.
func (r *FileReader) WriteTo(w io.Writer) (int64, error) {
	bs := int64(r.fs.Geo.BlockSize)
	align := max(r.fs.Dev.SectorSize(), 4096)
	chunks := r.plan()
	stop := make(chan struct{})
	outs := make([]chan filled, readers)
	frees := make([]chan []byte, readers)
	for k := range readers {
		outs[k] = make(chan filled, 2)
		frees[k] = make(chan []byte, 2)
		for range 2 {
			frees[k] <- ondisk.AlignedBuffer(chunkSize, align)
		}
		go func(k int) {
			defer close(outs[k])
			for i := k; i < len(chunks); i += readers {
				c := chunks[i]
				var buf []byte
				select {
				case buf = <-frees[k]:
				case <-stop:
					return
				}
				f := filled{buf: buf, n: c.n}
				if c.phys < 0 {
					clear(buf[:c.n])
				} else {
					// Round up to whole blocks: only the file's last block
					// is partial, and it is allocated whole.
					rn := (int64(c.n) + bs - 1) / bs * bs
					if _, err := r.fs.Dev.ReadAt(buf[:rn], c.phys); err != nil {
						f.err = fmt.Errorf("inode %d: read at %d: %w", r.ino, c.off, err)
					}
				}
				select {
				case outs[k] <- f:
				case <-stop:
					return
				}
				if f.err != nil {
					return
				}
			}
		}(k)
	}
	var total int64
	var err error
	for i := range chunks {
		k := i % readers
		f, ok := <-outs[k]
		if !ok {
			err = fmt.Errorf("inode %d: reader stopped early", r.ino)
			break
		}
		if f.err != nil {
			err = f.err
			break
		}
		n, werr := w.Write(f.buf[:f.n])
		total += int64(n)
		if werr != nil {
			err = werr
			break
		}
		frees[k] <- f.buf
	}
	close(stop)
	return total, err
}
