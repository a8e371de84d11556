package check_test

import (
	"testing"

	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/ondisk"
	"github.com/xfsimg/xfsimg/xfs"
)

// FuzzCheckImage replaces bytes of one metadata block of a small image
// (any block, sector or inode the checker reads) and checks the result:
// the checker must never panic, whatever the bytes. restamp makes the CRC
// good again so that the checks behind it see the bytes.
func FuzzCheckImage(f *testing.F) {
	o, _, regions := metadataRegions(f, fixture(f, "sample"))
	for i, reg := range regions {
		if i%7 != 0 {
			continue
		}
		buf := make([]byte, min(reg.len, 64))
		o.base.ReadAt(buf, reg.off)
		buf[len(buf)/2] ^= 0x10
		f.Add(uint16(i), uint16(0), buf, true)
		f.Add(uint16(i), uint16(reg.len/2), []byte{0xff, 0xff, 0xff, 0xff}, false)
	}
	f.Fuzz(func(t *testing.T, sel, off uint16, data []byte, restamp bool) {
		reg := regions[int(sel)%len(regions)]
		buf := make([]byte, reg.len)
		o.base.ReadAt(buf, reg.off)
		copy(buf[int(off)%reg.len:], data)
		if restamp && reg.crcOff >= 0 {
			ondisk.StampCRC(buf, reg.crcOff)
		}
		ov := &overlay{base: o.base, patches: map[int64][]byte{reg.off: buf}}
		fs, err := xfs.New(ov)
		if err != nil {
			return
		}
		if _, err := check.Run(fs, check.Options{Workers: 1}); err != nil {
			t.Logf("check: %v", err)
		}
	})
}
