package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercent reads the collector's GOGC setting.
func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

// The first collection waits for firstGCHeap; after it the usual pacing
// holds, unless a command set its own meanwhile.
func TestDeferFirstGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	// Commands run in process by other tests may have set their own
	// pacing; start as a fresh process does.
	gcMu.Lock()
	gcTuned = false
	gcMu.Unlock()
	defer func() { gcTuned = false }()

	restored := func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			runtime.GC()
			if gcPercent() == 100 {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}
	deferFirstGC()
	if p, l := gcPercent(), debug.SetMemoryLimit(-1); p != -1 || l != firstGCHeap {
		t.Fatalf("before the first collection: GOGC %d, limit %d; want off, %d", p, l, firstGCHeap)
	}
	if !restored() {
		t.Fatalf("GOGC still %d after collections", gcPercent())
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Fatalf("memory limit %d after the first collection, want none", l)
	}

	// A command's own pacing (the write engine's) is not undone.
	deferFirstGC()
	gcMu.Lock()
	gcTuned = true
	debug.SetGCPercent(400)
	gcMu.Unlock()
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercent(); p != 400 {
		t.Fatalf("GOGC %d after the engine set 400", p)
	}
}
