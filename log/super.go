package log

import (
	"bytes"
	"fmt"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Superblock changes made through the journal.

// LabelMax is the size of sb_fname; a label of exactly 12 bytes has no
// terminating NUL.
const LabelMax = 12

const sbFNameOff = 108

// Label returns the label as the committed superblock has it (up to the
// first NUL).
func (j *Journal) Label() (string, error) {
	b, err := j.ReadMeta(0, int(j.sb.SectSize))
	if err != nil {
		return "", err
	}
	name := b[sbFNameOff : sbFNameOff+LabelMax]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return string(name), nil
}

// SetLabel changes the label as `xfs_admin -L` and the kernel's
// FS_IOC_SETFSLABEL do: the primary superblock in one logged transaction,
// checkpointed at once; then the secondary superblocks in place.
//
// The secondaries are not journaled, by the kernel (xfs_ioc_setlabel logs
// only the primary, then xfs_update_secondary_sbs writes the others
// directly) or by xfs_db. Nothing reads a label from a secondary except
// xfs_repair when the primary is lost, and `xfs_repair -n` does not compare
// labels (checked: a primary-only label change passes it), so a crash
// between the two steps leaves a consistent file system whose secondaries
// still carry the old label, as the kernel's would.
func (j *Journal) SetLabel(label string) error {
	if len(label) > LabelMax {
		return fmt.Errorf("label %q is %d bytes long, at most %d fit", label, len(label), LabelMax)
	}
	if bytes.IndexByte([]byte(label), 0) >= 0 {
		return fmt.Errorf("label contains a NUL byte")
	}
	tx, err := j.Begin(Reservation{})
	if err != nil {
		return err
	}
	b, err := tx.ReadBuf(0, int(j.sb.SectSize), BufSB)
	if err != nil {
		tx.Cancel()
		return err
	}
	name := b.Data[sbFNameOff : sbFNameOff+LabelMax]
	clear(name)
	copy(name, label)
	tx.LogBuf(b, sbFNameOff, LabelMax)
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := j.Checkpoint(); err != nil {
		return err
	}
	return j.writeSecondaryLabels(label)
}

// writeSecondaryLabels copies the label into every secondary superblock,
// leaving their other fields (and LSN) as they are, as xfs_db does.
func (j *Journal) writeSecondaryLabels(label string) error {
	j.ckptMu.Lock()
	defer j.ckptMu.Unlock()
	if err := j.Err(); err != nil {
		return err
	}
	ss := int(j.sb.SectSize)
	for ag := uint32(1); ag < j.g.AGCount; ag++ {
		daddr := j.g.AGBDaddr(ag, 0)
		j.mu.Lock()
		var held bool
		j.overlapping(daddr, daddr+int64(ss>>ondisk.BBShift), func(*cbuf) { held = true })
		j.mu.Unlock()
		if held {
			return fmt.Errorf("secondary superblock %d is in the buffer cache", ag)
		}
		buf := ondisk.AlignedBuffer(ss, 4096)
		if _, err := j.dev.ReadAt(buf, daddr<<ondisk.BBShift); err != nil {
			return err
		}
		sb, err := ondisk.DecodeSuperblock(buf)
		if err != nil {
			return fmt.Errorf("secondary superblock %d: %w", ag, err)
		}
		if !sb.CRCOK() || sb.UUID != j.sb.UUID {
			return ondisk.Corruptf("secondary superblock %d: bad CRC or another file system's UUID", ag)
		}
		name := buf[sbFNameOff : sbFNameOff+LabelMax]
		clear(name)
		copy(name, label)
		ondisk.StampCRC(buf, ondisk.SBCRCOff)
		if _, err := j.dev.WriteAt(buf, daddr<<ondisk.BBShift); err != nil {
			return j.shutdown(err)
		}
	}
	if err := j.dev.Flush(); err != nil {
		return j.shutdown(err)
	}
	return nil
}
