package log

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// logWriter lays transactions out as v2 log records at the head of the log,
// continuing the cycle and block where the kernel or mkfs left them.
type logWriter struct {
	a        *Area
	uuid     ondisk.UUID
	hsize    int   // h_size: the iclog size every record declares
	hblks    int   // header blocks per record
	roundoff int   // records are padded to a multiple of this (bytes)
	capacity int   // data bytes one record holds
	head     int64 // log block the next record starts at
	cycle    uint32
	prev     int64 // log block of the last record header; -1 for none
	splits   int   // records written across the physical end
}

func newLogWriter(a *Area, sb *ondisk.Superblock, st *State) (*logWriter, error) {
	// The kernel pads each record to the log stripe unit when there is one
	// (l_iclog_roundoff), else to a basic block; the log sector size is the
	// smallest unit the log device may be written in.
	roundoff := ondisk.BBSize
	if sb.VersionNum&ondisk.VersionLogV2Bit != 0 && sb.LogSUnit > 1 {
		roundoff = int(sb.LogSUnit)
	}
	roundoff = max(roundoff, int(sb.LogSectSize))
	if roundoff%ondisk.BBSize != 0 || roundoff > maxRecordBytes {
		return nil, ondisk.Unsupportedf("log: stripe unit of %d bytes", roundoff)
	}
	// h_size: 32 KiB, or the stripe unit when that is larger, as the
	// kernel sizes its iclogs (m_logbsize follows sb_logsunit above 32 KiB).
	hsize := DefaultHSize
	if roundoff > hsize {
		hsize = roundoff
	}
	hsize = (hsize + roundoff - 1) / roundoff * roundoff
	hblks := 1
	if hsize > DefaultHSize {
		hblks = (hsize + DefaultHSize - 1) / DefaultHSize
	}
	w := &logWriter{
		a: a, uuid: sb.UUID, hsize: hsize, hblks: hblks, roundoff: roundoff,
		capacity: hsize - hblks*ondisk.BBSize,
		prev:     -1,
	}
	if st.Empty {
		w.head, w.cycle = 0, 1
	} else {
		w.head, w.cycle, w.prev = int64(st.Head.Block()), st.Head.Cycle(), st.LastRecord
	}
	sect := int64(max(int(sb.LogSectSize), ondisk.BBSize) / ondisk.BBSize)
	if w.head%sect != 0 || a.BBs%int64(roundoff/ondisk.BBSize) != 0 {
		return nil, ondisk.Unsupportedf("log: head at block %d of %d with %d-byte records", w.head, a.BBs, roundoff)
	}
	if a.BBs*ondisk.BBSize < int64(8*hsize) {
		return nil, ondisk.Unsupportedf("log: %d blocks is too small for %d-byte records", a.BBs, hsize)
	}
	return w, nil
}

// maxCheckpointBytes bounds the log space of one checkpoint: any two
// consecutive checkpoints must fit in the log together, so that the records
// of one never overwrite the previous one, whose tail the last record on
// disk still names, and a torn write of the head can never reach it.
func (w *logWriter) maxCheckpointBytes() int64 {
	return w.a.BBs*ondisk.BBSize/2 - 2*int64(w.hsize)
}

// recordOverhead bounds the bytes records add to n bytes of ops: headers,
// padding, and room lost where an op does not fit at the end of a record.
func (w *logWriter) recordOverhead(n int64) int64 {
	recs := n/int64(w.capacity-2*OpHeaderSize) + 1
	return recs * int64(w.hblks*ondisk.BBSize+w.roundoff+2*OpHeaderSize)
}

// op is one log operation: an op header and its payload.
type op struct {
	client uint8
	flags  uint8
	data   []byte
	split  bool // the payload may continue in the next record
}

// record is one log record's data before it is laid out.
type record struct {
	data []byte
	nops int
}

// recStats counts the bytes of a write.
type recStats struct {
	total, header, ops, pad, regions int64
}

// pack fills records with ops. An op header never straddles records; a
// payload that may be split continues in the next record under a WAS_CONT
// op header, as xlog_write_partial does; the others move to the next
// record whole.
func (w *logWriter) pack(tid uint32, ops []op) ([]record, int64, error) {
	var recs []record
	cur := make([]byte, 0, w.capacity)
	nops := 0
	var regions int64
	flush := func() {
		recs = append(recs, record{cur, nops})
		cur, nops = make([]byte, 0, w.capacity), 0
	}
	put := func(client, flags uint8, payload []byte) {
		var h [OpHeaderSize]byte
		OpHeader{Tid: tid, Len: uint32(len(payload)), ClientID: client, Flags: flags}.Encode(h[:])
		cur = append(cur, h[:]...)
		cur = append(cur, payload...)
		nops++
	}
	for _, o := range ops {
		regions += int64(len(o.data))
		if !o.split || len(o.data) == 0 || OpHeaderSize+len(o.data) <= w.capacity-len(cur) {
			if OpHeaderSize+len(o.data) > w.capacity-len(cur) {
				if len(cur) == 0 {
					return nil, 0, fmt.Errorf("log: op of %d bytes does not fit a record", len(o.data))
				}
				flush()
			}
			put(o.client, o.flags, o.data)
			continue
		}
		left := o.data
		first := true
		for len(left) > 0 {
			room := w.capacity - len(cur) - OpHeaderSize
			if room < 4 {
				flush()
				continue
			}
			n := min(len(left), room&^3)
			flags := o.flags
			switch {
			case first && n < len(left):
				flags |= OpContinue
			case !first && n < len(left):
				flags |= OpWasCont | OpContinue
			case !first:
				flags |= OpWasCont | OpEnd
			}
			put(o.client, flags, left[:n])
			left, first = left[n:], false
		}
	}
	if len(cur) > 0 || len(recs) == 0 {
		flush()
	}
	return recs, regions, nil
}

// layout turns records into the bytes to write from the head on, stamping
// cycles, packing the first word of every data block into the header and
// computing each record's CRC. A record that runs past the physical end of
// the log continues at block 0, its blocks there stamped with the next
// cycle (xlog_split_iclog). It returns the bytes, the LSN of the first
// record, and advances the writer.
func (w *logWriter) layout(recs []record, tail LSN) ([]byte, LSN, recStats) {
	var st recStats
	total := 0
	lens := make([]int, len(recs))
	for i, r := range recs {
		hdr := w.hblks * ondisk.BBSize
		lens[i] = (hdr+len(r.data)+w.roundoff-1)/w.roundoff*w.roundoff - hdr
		total += hdr + lens[i]
	}
	out := ondisk.AlignedBuffer(total, 4096)
	first := MakeLSN(w.cycle, uint32(w.head))
	off := 0
	for i, r := range recs {
		hdrBytes := w.hblks * ondisk.BBSize
		n := hdrBytes + lens[i]
		b := out[off : off+n]
		w.encodeRecord(b, r, lens[i], tail)
		st.header += int64(hdrBytes)
		st.ops += int64(len(r.data))
		st.pad += int64(lens[i] - len(r.data))
		st.total += int64(n)
		blocks := int64(n / ondisk.BBSize)
		w.prev = w.head
		w.head += blocks
		if w.head >= w.a.BBs {
			w.head -= w.a.BBs
			w.cycle++
		}
		off += n
	}
	return out, first, st
}

// encodeRecord writes one record (headers, data, padding) into b for the
// writer's current head and cycle.
func (w *logWriter) encodeRecord(b []byte, r record, hlen int, tail LSN) {
	be := binary.BigEndian
	hdrBytes := w.hblks * ondisk.BBSize
	data := b[hdrBytes:]
	copy(data, r.data)
	lsn := MakeLSN(w.cycle, uint32(w.head))
	be.PutUint32(b[0:], HeaderMagic)
	be.PutUint32(b[4:], w.cycle)
	be.PutUint32(b[8:], Version2)
	be.PutUint32(b[12:], uint32(hlen))
	be.PutUint64(b[16:], uint64(lsn))
	be.PutUint64(b[24:], uint64(tail))
	prev := int32(-1)
	if w.prev >= 0 {
		prev = int32(w.prev)
	}
	be.PutUint32(b[36:], uint32(prev))
	be.PutUint32(b[40:], uint32(r.nops))
	be.PutUint32(b[0x12c:], FmtLinuxLE)
	copy(b[0x130:0x140], w.uuid[:])
	be.PutUint32(b[0x140:], uint32(w.hsize))
	for j := 1; j < w.hblks; j++ {
		be.PutUint32(b[j*ondisk.BBSize:], w.cycle)
	}
	// xlog_pack_data: the first word of each data block moves into the
	// cycle data of the header (or extended header) and the cycle
	// takes its place, so that every written block shows its cycle.
	for i := 0; i < hlen/ondisk.BBSize; i++ {
		word := data[i*ondisk.BBSize : i*ondisk.BBSize+4]
		slot := 44 + 4*i
		if i >= cycleDataSlots {
			slot = (i/cycleDataSlots)*ondisk.BBSize + 4 + 4*(i%cycleDataSlots)
		}
		copy(b[slot:slot+4], word)
		be.PutUint32(word, w.cycle)
	}
	// Blocks past the physical end land at the start of the log in the
	// next cycle, so they carry the next cycle number.
	if end := w.head + int64(len(b)/ondisk.BBSize); end > w.a.BBs {
		w.splits++
		split := int(w.a.BBs-w.head) * ondisk.BBSize
		for o := split; o < len(b); o += ondisk.BBSize {
			c := be.Uint32(b[o:]) + 1
			if c == HeaderMagic {
				c++
			}
			be.PutUint32(b[o:], c)
		}
	}
	binary.LittleEndian.PutUint32(b[HeaderCRCOff:], writtenCRC(b, hlen))
}

// writtenCRC is the CRC of a laid-out record b carrying hlen data bytes.
func writtenCRC(b []byte, hlen int) uint32 {
	be := binary.BigEndian
	hblks := hblksFor(be.Uint32(b[8:]), be.Uint32(b[0x140:]))
	return recordCRC(b[:hblks*ondisk.BBSize], b[hblks*ondisk.BBSize:hblks*ondisk.BBSize+hlen], headerCRCLen)
}

// writeOut writes laid-out records that started at log block start. Where
// they wrap, the part up to the physical end is written and flushed before
// the part at block 0: a crash must never keep blocks of the next cycle at
// the start of the log without the records before them at the end, which
// the kernel's head search cannot place.
func (w *logWriter) writeOut(out []byte, start int64) error {
	dev := w.a.Dev
	first := min(int64(len(out)), (w.a.BBs-start)*ondisk.BBSize)
	if _, err := dev.WriteAt(out[:first], (w.a.Start+start)*ondisk.BBSize); err != nil {
		return fmt.Errorf("log write: %w", err)
	}
	if first == int64(len(out)) {
		return nil
	}
	if err := dev.Flush(); err != nil {
		return fmt.Errorf("log flush: %w", err)
	}
	if _, err := dev.WriteAt(out[first:], w.a.Start*ondisk.BBSize); err != nil {
		return fmt.Errorf("log write: %w", err)
	}
	return nil
}

// writeUnmount ends the log with an unmount record: one op with the
// UNMOUNT flag carrying xfs_unmount_log_format, in a record of its own,
// which is what makes the kernel find the log clean.
func (w *logWriter) writeUnmount() (int, recStats, error) {
	payload := make([]byte, unmountSize)
	binary.LittleEndian.PutUint16(payload, UnmountMagic)
	recs, regions, err := w.pack(newTid(), []op{{client: ClientLog, flags: OpUnmount, data: payload}})
	if err != nil {
		return 0, recStats{}, err
	}
	start := w.head
	out, _, st := w.layout(recs, MakeLSN(w.cycle, uint32(w.head)))
	st.regions = regions
	return len(out), st, w.writeOut(out, start)
}
