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

type chunk struct {
	buf []byte
	n   int
	err error
}

// WriteTo streams the whole file to w. Reads are block-aligned (so they
// go straight to the device under O_DIRECT) and overlap the writes: one
// goroutine reads ahead while the caller's goroutine writes.
func (r *FileReader) WriteTo(w io.Writer) (int64, error) {
	bs := int64(r.fs.Geo.BlockSize)
	align := max(r.fs.Dev.SectorSize(), 4096)
	const depth = 3
	free := make(chan []byte, depth)
	for range depth {
		free <- ondisk.AlignedBuffer(chunkSize, align)
	}
	full := make(chan chunk, depth)
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for _, s := range r.segments(0, r.size) {
			for done := int64(0); done < s.len; {
				n := min(s.len-done, chunkSize)
				var buf []byte
				select {
				case buf = <-free:
				case <-stop:
					return
				}
				c := chunk{buf: buf, n: int(n)}
				if s.phys < 0 {
					clear(buf[:n])
				} else {
					// Round the read up to whole blocks: only the file's
					// last block is partial, and it is allocated whole.
					rn := (n + bs - 1) / bs * bs
					if _, err := r.fs.Dev.ReadAt(buf[:rn], s.phys+done); err != nil {
						c.err = fmt.Errorf("inode %d: read at %d: %w", r.ino, s.off+done, err)
					}
				}
				full <- c
				if c.err != nil {
					return
				}
				done += n
			}
		}
	}()
	var total int64
	var werr error
	for c := range full {
		if werr == nil && c.err != nil {
			werr = c.err
		}
		if werr == nil {
			n, err := w.Write(c.buf[:c.n])
			total += int64(n)
			werr = err
		}
		if werr != nil {
			close(stop)
			for range full {
			}
			break
		}
		free <- c.buf
	}
	return total, werr
}
