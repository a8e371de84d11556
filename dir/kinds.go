package dir

import (
	"errors"
	"strings"
)

// Kinds of problems Verify reports, as stable machine names for checkers.
// Each problem Verify joins is a *Problem carrying one of them.
const (
	KindCRC   = "crc"         // a directory block fails its CRC
	KindBlock = "dir-block"   // a block fails its own verification or cannot be read
	KindForm  = "dir-form"    // format, size or holes do not make a directory
	KindDots  = "dir-dots"    // "." and ".." do not lead block 0, or "." is not the directory
	KindHash  = "dir-hash"    // the hash index disagrees with the entries
	KindBests = "dir-bests"   // a bests table disagrees with the data blocks' free space
	KindTree  = "dir-dabtree" // dabtree levels, keys, siblings or loops
)

// Problem is one problem found by Verify, with its kind.
type Problem struct {
	Kind string
	Err  error
}

func (p *Problem) Error() string { return p.Err.Error() }
func (p *Problem) Unwrap() error { return p.Err }

// KindOf returns the kind of a problem Verify (or a block read) reported;
// errors without one are KindBlock.
func KindOf(err error) string {
	var p *Problem
	if errors.As(err, &p) {
		return p.Kind
	}
	return KindBlock
}

// kinded wraps err with kind unless it already carries one.
func kinded(kind string, err error) error {
	if err == nil {
		return nil
	}
	var p *Problem
	if errors.As(err, &p) {
		return err
	}
	return &Problem{Kind: kind, Err: err}
}

// blockErr classifies a block verification failure: a bad CRC is its own
// kind, since it says the block was damaged rather than built wrong.
func blockErr(crcOK bool, err error) error {
	if err == nil {
		return nil
	}
	if !crcOK {
		return kinded(KindCRC, err)
	}
	return kinded(KindBlock, err)
}

// dataBlockErr classifies a data block that decodes but fails
// verification: the single-block form's hash index and the bestfree table
// have kinds of their own.
func dataBlockErr(crcOK bool, err error) error {
	if crcOK {
		switch msg := err.Error(); {
		case strings.Contains(msg, "leaf entr"):
			return kinded(KindHash, err)
		case strings.Contains(msg, "bestfree"):
			return kinded(KindBests, err)
		}
	}
	return blockErr(crcOK, err)
}

// noteLSN remembers the newest LSN stamped in the blocks read, so that a
// checker can compare it with the log head.
func (d *Dir) noteLSN(lsn uint64, daddr int64) {
	if lsn > d.maxLSN && lsn != ^uint64(0) {
		d.maxLSN, d.maxLSNDaddr = lsn, daddr
	}
}

// MaxLSN returns the largest LSN in the directory blocks read so far and
// the disk address of that block (0, -1 when none was read).
func (d *Dir) MaxLSN() (lsn uint64, daddr int64) {
	if d.maxLSN == 0 {
		return 0, -1
	}
	return d.maxLSN, d.maxLSNDaddr
}
