package log

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Record is one log record as read from the log: its header, whether its
// CRC matched, and its ops, split after the cycle data was put back.
type Record struct {
	Block   int64 // log block of the record header
	Header  *RecordHeader
	HBlocks int    // header blocks: the header and its extended headers
	CRC     uint32 // CRC32C of the record as written
	CRCOK   bool   // CRC equals h_crc
	Ops     []Op
	// Err says why the ops could not be split (a bad client id, an op
	// running past h_len); Ops then holds those before it.
	Err error
}

// Blocks is the size of the record in log blocks.
func (r *Record) Blocks() int64 { return int64(r.HBlocks) + int64(r.Header.DataBlocks()) }

// Op is one op of a record: its header and the payload that follows it.
type Op struct {
	Header OpHeader
	Data   []byte
}

// RecordError is a record that failed verification: a bad header, length
// or CRC. Recovery tells torn writes at the head from corruption by where
// the first one is.
type RecordError struct {
	Block int64 // log block of the record header
	Err   error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("log record at block %d: %v", e.Block, e.Err)
}
func (e *RecordError) Unwrap() error { return e.Err }

// maxICLogs is XLOG_MAX_ICLOGS: how many records can be in flight at once,
// hence how far back from the head a bad record counts as a torn write.
const maxICLogs = 8

// checkHeader applies xlog_valid_rec_header: the magic, a known version and
// 0 < h_len <= bufSize, where bufSize is the h_size recovery uses.
func checkHeader(h *RecordHeader, bufSize int) error {
	if h.Magic != HeaderMagic {
		return ondisk.Corruptf("no record header (magic 0x%08x)", h.Magic)
	}
	if h.Version == 0 || h.Version&^(1|Version2) != 0 {
		return ondisk.Corruptf("unknown log version 0x%x", h.Version)
	}
	if h.Len == 0 || uint64(h.Len) > uint64(bufSize) {
		return ondisk.Corruptf("record length %d outside 1..%d", h.Len, bufSize)
	}
	return nil
}

// hblksFor is xlog_logrec_hblks for a given h_size and version.
func hblksFor(version, hsize uint32) int {
	if version&Version2 != 0 && hsize > DefaultHSize {
		return int((hsize + DefaultHSize - 1) / DefaultHSize)
	}
	return 1
}

// recordCRC is xlog_cksum over the header blocks and the data as written:
// the header with h_crc zeroed (hdrLen bytes of it), the cycle words and
// cycle data of the extended headers that h_len needs, then h_len bytes.
func recordCRC(hdr []byte, data []byte, hdrLen int) uint32 {
	var zero [4]byte
	c := ondisk.CRC32CUpdate(0, hdr[:HeaderCRCOff])
	c = ondisk.CRC32CUpdate(c, zero[:])
	c = ondisk.CRC32CUpdate(c, hdr[HeaderCRCOff+4:hdrLen])
	xheads := (len(data) + DefaultHSize - 1) / DefaultHSize
	for i := 1; i < xheads; i++ {
		c = ondisk.CRC32CUpdate(c, hdr[i*ondisk.BBSize:i*ondisk.BBSize+extHdrCRCLen])
	}
	return ondisk.CRC32CUpdate(c, data)
}

// ParseRecord decodes the record whose header blocks are hdr and whose data
// blocks are data, as read from the log at block blk. bufSize is the largest
// h_len accepted (the h_size recovery works with). It checks the header,
// computes the CRC over the bytes as written, then puts the cycle data back
// (modifying data) and splits the ops. The returned record's ops point into
// data. A header that fails its checks returns a *RecordError.
func ParseRecord(blk int64, hdr, data []byte, bufSize int) (*Record, error) {
	if len(hdr) < ondisk.BBSize || len(hdr)%ondisk.BBSize != 0 {
		return nil, &RecordError{blk, ondisk.Corruptf("record header of %d bytes", len(hdr))}
	}
	h := decodeRecordHeader(hdr)
	if err := checkHeader(h, bufSize); err != nil {
		return nil, &RecordError{blk, err}
	}
	hblks := len(hdr) / ondisk.BBSize
	n := h.DataBlocks()
	if len(data) < n*ondisk.BBSize {
		return nil, &RecordError{blk, ondisk.Corruptf("record of %d data blocks, %d read", n, len(data)/ondisk.BBSize)}
	}
	hlen := int(h.Len)
	if xheads := (hlen + DefaultHSize - 1) / DefaultHSize; xheads > hblks {
		return nil, &RecordError{blk, ondisk.Corruptf("record length %d needs %d header blocks, h_size gives %d", hlen, xheads, hblks)}
	}
	r := &Record{Block: blk, Header: h, HBlocks: hblks}
	r.CRC = recordCRC(hdr, data[:hlen], headerCRCLen)
	r.CRCOK = r.CRC == h.CRC
	if !r.CRCOK && h.CRC != 0 {
		// Kernels once summed 324 bytes of header (without the struct's
		// tail padding); recovery accepts either.
		if alt := recordCRC(hdr, data[:hlen], headerCRCLen-4); alt == h.CRC {
			r.CRC, r.CRCOK = alt, true
		}
	}
	unpackCycleData(h, hdr, data[:n*ondisk.BBSize])
	r.Ops, r.Err = splitOps(h, data[:hlen])
	return r, nil
}

// unpackCycleData undoes xlog_pack_data: the first word of each data block
// was replaced by the cycle number and saved in the header's cycle data
// (blocks 0-63) or an extended header's (block 64j+k in header j, slot k).
// ParseRecord checked that the header blocks cover every data block.
func unpackCycleData(h *RecordHeader, hdr, data []byte) {
	be := binary.BigEndian
	for i := 0; i*ondisk.BBSize < len(data); i++ {
		var w uint32
		if i < cycleDataSlots {
			w = h.CycleData[i]
		} else {
			j, k := i/cycleDataSlots, i%cycleDataSlots
			w = be.Uint32(hdr[j*ondisk.BBSize+4+4*k:])
		}
		be.PutUint32(data[i*ondisk.BBSize:], w)
	}
}

// splitOps splits the record data into ops as xlog_recover_process_data
// walks it: at most h_num_logops ops, each header and payload inside h_len,
// each from a known client.
func splitOps(h *RecordHeader, data []byte) ([]Op, error) {
	end := len(data)
	left := h.NumLogOps
	ops := make([]Op, 0, min(int(left), end/OpHeaderSize))
	for off := 0; off < end && left > 0; left-- {
		if end-off < OpHeaderSize {
			return ops, ondisk.Corruptf("op %d: header at offset %d runs past the record end %d", len(ops), off, end)
		}
		oh := DecodeOpHeader(data[off:])
		if oh.ClientID != ClientTransaction && oh.ClientID != ClientLog {
			return ops, ondisk.Corruptf("op %d: unknown client id 0x%x", len(ops), oh.ClientID)
		}
		off += OpHeaderSize
		if uint64(oh.Len) > uint64(end-off) {
			return ops, ondisk.Corruptf("op %d: length %d at offset %d runs past the record end %d", len(ops), oh.Len, off, end)
		}
		n := int(oh.Len)
		ops = append(ops, Op{Header: oh, Data: data[off : off+n : off+n]})
		off += n
	}
	return ops, nil
}

// rangeReader reads the log blocks of a range that starts at log block
// start and may wrap past the physical end, addressed by distance from
// start. It reads the device in large sequential chunks and keeps up to
// maxCache bytes, so that the passes of recovery read a range that fits
// once.
type rangeReader struct {
	a      *Area
	start  int64 // log block at distance 0
	n      int64 // blocks in the range
	buf    []byte
	wstart int64 // distance of buf[0]
	wlen   int64 // blocks of buf filled
	reads  int64 // device reads issued, for tests
}

const (
	readChunkBlocks = 8192      // 4 MiB per device read
	maxCacheBytes   = 256 << 20 // whole ranges up to this size stay in memory
	maxCacheBlocks  = maxCacheBytes / ondisk.BBSize
)

func (a *Area) newRangeReader(start, n int64) *rangeReader {
	capBlocks := min(n, maxCacheBlocks)
	return &rangeReader{a: a, start: start, n: n, buf: ondisk.AlignedBuffer(int(capBlocks)*ondisk.BBSize, 4096)}
}

// blocks returns cnt blocks at distance d; the slice is valid until the
// next call.
func (r *rangeReader) blocks(d, cnt int64) ([]byte, error) {
	if d < 0 || cnt < 0 || d+cnt > r.n {
		return nil, ondisk.Corruptf("log: blocks %d..%d past the end of the range (%d blocks)", d, d+cnt, r.n)
	}
	capBlocks := int64(len(r.buf) / ondisk.BBSize)
	if cnt > capBlocks {
		return nil, fmt.Errorf("log: read of %d blocks exceeds the %d-block cache", cnt, capBlocks)
	}
	if d < r.wstart || d+cnt > r.wstart+capBlocks {
		r.wstart, r.wlen = d, 0 // slide the window
	}
	if end := d + cnt - r.wstart; end > r.wlen {
		want := min(max(end, r.wlen+readChunkBlocks), capBlocks, r.n-r.wstart)
		if err := r.fill(r.wlen, want); err != nil {
			return nil, err
		}
		r.wlen = want
	}
	off := (d - r.wstart) * ondisk.BBSize
	return r.buf[off : off+cnt*ondisk.BBSize], nil
}

// fill reads window blocks [from, to), splitting at the physical end of
// the log.
func (r *rangeReader) fill(from, to int64) error {
	for from < to {
		blk := (r.start + r.wstart + from) % r.a.BBs
		n := min(to-from, r.a.BBs-blk)
		dst := r.buf[from*ondisk.BBSize : (from+n)*ondisk.BBSize]
		r.reads++
		if _, err := r.a.Dev.ReadAt(dst, (r.a.Start+blk)<<ondisk.BBShift); err != nil {
			return fmt.Errorf("log block %d: %w", blk, err)
		}
		from += n
	}
	return nil
}

// readerFor returns a reader holding the range [start, start+n): the one
// kept from the last pass when it covers the range (then off is where the
// range begins in it), else a new one, kept in turn.
func (a *Area) readerFor(start, n int64) (rr *rangeReader, off int64) {
	if c := a.rr; c != nil {
		if off := a.distance(c.start, start); off+n <= c.n {
			return c, off
		}
	}
	a.rr = a.newRangeReader(start, n)
	return a.rr, 0
}

// distance is how many blocks lie from block from forward to block to,
// wrapping; from == to is an empty range.
func (a *Area) distance(from, to int64) int64 { return ((to-from)%a.BBs + a.BBs) % a.BBs }

// scanner walks the records of [tail, head) in order, the way
// xlog_do_recovery_pass does: records follow each other with no gap, every
// header block count and the largest h_len come from the tail record.
type scanner struct {
	a      *Area
	tail   int64
	n      int64 // blocks from tail to head
	base   int64 // distance of the tail in rr
	hblks  int
	hsize  int
	rr     *rangeReader
	logBSz int // mount-time log buffer size, for the mkfs h_size quirk
}

// newScanner reads the tail record's header to learn h_size. tail == head
// is an empty range.
func (a *Area) newScanner(tail, head int64) (*scanner, error) {
	s := &scanner{a: a, tail: tail, n: a.distance(tail, head)}
	if s.n == 0 {
		return s, nil
	}
	s.rr, s.base = a.readerFor(tail, s.n)
	b, err := s.rr.blocks(s.base, 1)
	if err != nil {
		return nil, err
	}
	h := decodeRecordHeader(b)
	hsize := int(h.Size)
	// mkfs once wrote records longer than the h_size it claimed (padded
	// to the log stripe unit); the kernel then sizes by the stripe unit.
	if int(h.Len) > hsize && int(h.Len) <= a.logBufSize() && h.NumLogOps == 1 {
		hsize = a.logBufSize()
	}
	if hsize > maxRecordBytes {
		return nil, &RecordError{tail, ondisk.Corruptf("h_size %d larger than the largest log buffer (%d)", hsize, maxRecordBytes)}
	}
	if err := checkHeader(h, hsize); err != nil {
		return nil, &RecordError{tail, err}
	}
	s.hsize, s.hblks = hsize, hblksFor(h.Version, uint32(hsize))
	return s, nil
}

// logBufSize is the kernel's default log buffer size: 32 KiB or the log
// stripe unit if larger.
func (a *Area) logBufSize() int { return max(DefaultHSize, int(min(a.LogSUnit, maxRecordBytes))) }

// walk reads every record of the range and calls fn with it. With ops
// false only headers and CRCs are checked (the kernel's CRC pass; a zero
// h_crc, which mkfs writes, is accepted there). Header, length and CRC
// failures return a *RecordError naming the record.
func (s *scanner) walk(ops bool, fn func(*Record) error) error {
	for d := int64(0); d < s.n; {
		blk := (s.tail + d) % s.a.BBs
		if d+int64(s.hblks) > s.n {
			return &RecordError{blk, ondisk.Corruptf("record header runs past the head")}
		}
		hb, err := s.rr.blocks(s.base+d, int64(s.hblks))
		if err != nil {
			return err
		}
		hdr := append([]byte(nil), hb...)
		h := decodeRecordHeader(hdr)
		if err := checkHeader(h, s.hsize); err != nil {
			return &RecordError{blk, err}
		}
		if hb := hblksFor(h.Version, h.Size); ops && hb != s.hblks {
			// Recovery sizes every record's header by the tail record's
			// h_size; a record that says otherwise would be misread.
			return &RecordError{blk, ondisk.Corruptf("h_size %d (%d header blocks) differs from the tail record's %d (%d)", h.Size, hb, s.hsize, s.hblks)}
		}
		nd := int64(h.DataBlocks())
		if d+int64(s.hblks)+nd > s.n {
			return &RecordError{blk, ondisk.Corruptf("record of %d blocks runs past the head", int64(s.hblks)+nd)}
		}
		db, err := s.rr.blocks(s.base+d+int64(s.hblks), nd)
		if err != nil {
			return err
		}
		data := make([]byte, len(db))
		copy(data, db)
		r, err := ParseRecord(blk, hdr, data, s.hsize)
		if err != nil {
			return err
		}
		if ops {
			if !r.CRCOK {
				return &RecordError{blk, ondisk.Corruptf("bad CRC 0x%08x, record sums to 0x%08x", h.CRC, r.CRC)}
			}
			if err := checkRecordPlace(r, blk); err != nil {
				return &RecordError{blk, err}
			}
			if r.Err != nil {
				return &RecordError{blk, r.Err}
			}
		} else if !r.CRCOK && h.CRC != 0 {
			return &RecordError{blk, ondisk.Corruptf("bad CRC 0x%08x, record sums to 0x%08x", h.CRC, r.CRC)}
		}
		if err := fn(r); err != nil {
			return err
		}
		d += int64(s.hblks) + nd
	}
	return nil
}

// checkRecordPlace checks what recovery takes on trust from each header:
// that it was written where it is, in the cycle it says, for this log.
func checkRecordPlace(r *Record, blk int64) error {
	h := r.Header
	if h.LSN.Block() != uint32(blk) || h.LSN.Cycle() != h.Cycle {
		return ondisk.Corruptf("record at block %d says it is at (%d,%d) in cycle %d", blk, h.LSN.Cycle(), h.LSN.Block(), h.Cycle)
	}
	if h.Fmt != FmtLinuxLE {
		return ondisk.Corruptf("record format %d, not Linux little-endian (1)", h.Fmt)
	}
	return nil
}

// seekHeaders looks for record headers (by magic) walking forward from
// block from towards block to (exclusive, wrapping), and returns the blocks
// of the first count found, as xlog_seek_logrec_hdr does.
func (a *Area) seekHeaders(from, to int64, count int) ([]int64, error) {
	var found []int64
	n := a.distance(from, to)
	if n == 0 {
		n = a.BBs
	}
	const chunk = 1024
	for d := int64(0); d < n && len(found) < count; {
		blk := (from + d) % a.BBs
		c := min(n-d, chunk, a.BBs-blk)
		b, err := a.ReadBlocks(blk, int(c))
		if err != nil {
			return nil, err
		}
		for i := int64(0); i < c && len(found) < count; i++ {
			if binary.BigEndian.Uint32(b[i*ondisk.BBSize:]) == HeaderMagic {
				found = append(found, blk+i)
			}
		}
		d += c
	}
	return found, nil
}

// rseekHeaders walks back from block from (exclusive) towards block to
// (inclusive, wrapping) and returns the blocks of the first count record
// headers met, nearest first, as xlog_rseek_logrec_hdr does.
func (a *Area) rseekHeaders(from, to int64, count int) ([]int64, error) {
	var found []int64
	n := a.distance(to, from) // blocks in [to, from)
	if n == 0 {
		n = a.BBs
	}
	const chunk = 1024
	for d := int64(0); d < n && len(found) < count; {
		// Read the c blocks ending just before from-d.
		end := ((from-d)%a.BBs + a.BBs) % a.BBs
		if end == 0 {
			end = a.BBs
		}
		c := min(n-d, chunk, end)
		b, err := a.ReadBlocks(end-c, int(c))
		if err != nil {
			return nil, err
		}
		for i := c - 1; i >= 0 && len(found) < count; i-- {
			if binary.BigEndian.Uint32(b[i*ondisk.BBSize:]) == HeaderMagic {
				found = append(found, end-c+i)
			}
		}
		d += c
	}
	return found, nil
}

// readHeader reads and decodes the record header at log block blk.
func (a *Area) readHeader(blk int64) (*RecordHeader, error) {
	b, err := a.ReadBlocks(blk, 1)
	if err != nil {
		return nil, err
	}
	return decodeRecordHeader(b), nil
}

// VerifyState finishes what the kernel does at mount on a dirty log
// (xlog_verify_head and xlog_verify_tail): it CRC-checks the last records
// before the head; a failure there is a torn write, and the head moves back
// to the first bad record (the tail and the clean/dirty verdict then come
// from the last good one). It then CRC-checks the whole range from the tail
// and, when the bad record is within reach of a head that wrapped over the
// old tail, moves the tail past it. A bad record anywhere else is
// corruption: the error is a *RecordError. st is updated in place; a clean
// or empty log is left as it is.
func (a *Area) VerifyState(st *State) error {
	if st.Clean || st.Empty {
		return nil
	}
	head, tail := int64(st.Head.Block()), int64(st.Tail.Block())
	if tail >= a.BBs {
		return ondisk.Corruptf("log: tail block %d outside the log (%d blocks)", tail, a.BBs)
	}
	hdrs, err := a.rseekHeaders(head, tail, maxICLogs)
	if err != nil {
		return err
	}
	if len(hdrs) > 0 {
		first := hdrs[len(hdrs)-1]
		s, err := a.newScanner(first, head)
		if err == nil {
			err = s.walk(false, func(*Record) error { return nil })
		}
		var re *RecordError
		if errors.As(err, &re) {
			if err := a.truncateHead(st, re.Block, tail); err != nil {
				return err
			}
			if st.Clean || st.Head.Block() == st.Tail.Block() {
				return nil
			}
		} else if err != nil {
			return err
		}
	}
	return a.verifyTail(st)
}

// truncateHead makes bad, the first record that failed near the head, the
// new head, and takes the last record before it as the last one written.
func (a *Area) truncateHead(st *State, bad, tail int64) error {
	st.TornFrom = st.Head
	prev, err := a.rseekHeaders(bad, tail, 1)
	if err != nil {
		return err
	}
	if len(prev) == 0 {
		return ondisk.Corruptf("log: torn write at block %d and no good record before it", bad)
	}
	rblk := prev[0]
	h, err := a.readHeader(rblk)
	if err != nil {
		return err
	}
	cycle := h.Cycle
	if rblk >= bad {
		cycle++ // the last good record is before the physical end, the head after it
	}
	st.Torn = true
	st.Head = MakeLSN(cycle, uint32(bad))
	st.Tail = h.TailLSN
	st.LastRecord, st.LastLSN = rblk, h.LSN
	clean, err := a.isUnmountRecord(rblk, h, bad)
	if err != nil {
		return err
	}
	if clean {
		st.Clean, st.Tail = true, st.Head
	}
	return nil
}

// verifyTail CRC-checks [tail, head). A bad record within the reach of the
// in-flight records of a head that wrapped round (8 records of h_size) was
// overwritten by them after the tail moved: the tail moves past it.
func (a *Area) verifyTail(st *State) error {
	head, tail := int64(st.Head.Block()), int64(st.Tail.Block())
	h, err := a.readHeader(st.LastRecord)
	if err != nil {
		return err
	}
	hsize := int64(h.Size)
	first, err := a.seekHeaders(tail, head, 1)
	if err != nil {
		return err
	}
	if len(first) == 0 {
		return ondisk.Corruptf("log: no record header between the tail (block %d) and the head (block %d)", tail, head)
	}
	if first[0] != tail {
		st.TailMoved, st.OrigTail = true, st.Tail
		st.Tail = MakeLSN(st.Tail.Cycle(), uint32(first[0]))
		tail = first[0]
	}
	for range a.BBs {
		s, err := a.newScanner(tail, head)
		if err == nil {
			err = s.walk(false, func(*Record) error { return nil })
		}
		var re *RecordError
		if !errors.As(err, &re) {
			return err
		}
		if re.Block == 0 || a.distance(head, re.Block) > maxICLogs*hsize/ondisk.BBSize {
			return err
		}
		next, err2 := a.seekHeaders(re.Block, head, 2)
		if err2 != nil {
			return err2
		}
		if len(next) < 2 {
			return err
		}
		if !st.TailMoved {
			st.TailMoved, st.OrigTail = true, st.Tail
		}
		nh, err2 := a.readHeader(next[1])
		if err2 != nil {
			return err2
		}
		tail = next[1]
		st.Tail = MakeLSN(nh.Cycle, uint32(tail))
	}
	return ondisk.Corruptf("log: cannot find a good tail")
}

// Walk says what to call while reading a range of the log.
type Walk struct {
	// Record is called for each record, in log order.
	Record func(*Record) error
	// Transaction is called for each committed transaction when its
	// COMMIT op is read, in commit order.
	Transaction func(*Transaction) error
}

// Walk reads the records from st.Tail to st.Head as recovery does (headers,
// lengths and CRCs checked, ops split) and reassembles the transactions in
// them. It returns the transactions left without a COMMIT (dropped by
// recovery). Call VerifyState first on a dirty log; a clean log has nothing
// between tail and head.
func (a *Area) Walk(st *State, w Walk) ([]*Transaction, error) {
	if st.Clean || st.Empty {
		return nil, nil
	}
	return a.walkRange(int64(st.Tail.Block()), int64(st.Head.Block()), w)
}

func (a *Area) walkRange(tail, head int64, w Walk) ([]*Transaction, error) {
	s, err := a.newScanner(tail, head)
	if err != nil {
		return nil, err
	}
	as := newAssembler(w.Transaction)
	err = s.walk(true, func(r *Record) error {
		if r.Header.FSUUID != a.UUID {
			return &RecordError{r.Block, ondisk.Corruptf("record belongs to file system %v, not %v", r.Header.FSUUID, a.UUID)}
		}
		if w.Record != nil {
			if err := w.Record(r); err != nil {
				return err
			}
		}
		return as.addRecord(r)
	})
	if err != nil {
		return nil, err
	}
	return as.uncommitted(), nil
}

// Records reads the records of [from, to) (log blocks; the range wraps
// when to <= from, and from == to is empty).
func (a *Area) Records(from, to int64) ([]*Record, error) {
	var out []*Record
	s, err := a.newScanner(from, to)
	if err != nil {
		return nil, err
	}
	err = s.walk(true, func(r *Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// Transactions reassembles every transaction between st.Tail and st.Head:
// the committed ones in commit order, then those left without a COMMIT.
func (a *Area) Transactions(st *State) ([]*Transaction, error) {
	var out []*Transaction
	rest, err := a.Walk(st, Walk{Transaction: func(t *Transaction) error {
		out = append(out, t)
		return nil
	}})
	return append(out, rest...), err
}
