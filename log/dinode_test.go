package log

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestDinodeSwapRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		disk := make([]byte, LogDinodeSize)
		for j := range disk {
			disk[j] = byte(r.Uint32())
		}
		logged := make([]byte, LogDinodeSize)
		DiskToLogDinode(logged, disk)
		back := make([]byte, LogDinodeSize)
		LogToDiskDinode(back, logged)
		if !bytes.Equal(back, disk) {
			t.Fatalf("round trip changed the core")
		}
		// Spot checks: size and ino are plain 64-bit fields.
		if binary.LittleEndian.Uint64(logged[56:]) != binary.BigEndian.Uint64(disk[56:]) ||
			binary.LittleEndian.Uint64(logged[152:]) != binary.BigEndian.Uint64(disk[152:]) {
			t.Fatalf("size/ino not swapped")
		}
		bigtime := binary.BigEndian.Uint64(disk[dinodeFlags2Off:])&flags2Bigtime != 0
		if bigtime && binary.LittleEndian.Uint64(logged[32:]) != binary.BigEndian.Uint64(disk[32:]) {
			t.Fatalf("bigtime atime not swapped as one u64")
		}
		if !bigtime && binary.LittleEndian.Uint32(logged[36:]) != binary.BigEndian.Uint32(disk[36:]) {
			t.Fatalf("legacy atime nsec not swapped as its own u32")
		}
	}
}
