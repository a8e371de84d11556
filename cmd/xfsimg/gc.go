package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
)

// firstGCHeap is the heap a command may grow to before its first garbage
// collection.
const firstGCHeap = 64 << 20

var (
	gcMu    sync.Mutex
	gcTuned bool // a command set its own pacing (tuneRuntime): leave it
)

// deferFirstGC lets a short command finish without a collection. The
// collector's first goal is a 4 MiB heap, which reading a few MiB of
// metadata passes at once; that collection finds nearly everything live
// (the metadata cache, up to 64 MiB) and only takes CPU from the reading:
// about a tenth of inspect freesp over 100,000 free extents. So the first
// collection waits until the heap reaches firstGCHeap, and from then on the
// usual pacing (GOGC=100) holds. A user's GOGC or GOMEMLIMIT is left alone.
func deferFirstGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(firstGCHeap)
	// The sentinel dies in the first collection, and its cleanup, run
	// after it, restores the usual pacing.
	runtime.AddCleanup(new([2]*byte), func(struct{}) {
		gcMu.Lock()
		defer gcMu.Unlock()
		if !gcTuned {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
		}
	}, struct{}{})
}
