package crashdev

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/xfsimg/xfsimg/ondisk"
)

// Variant is one crash image of a window of pending writes: which writes
// reached the disk (Keep, by index in the window) and the one torn, if any.
type Variant struct {
	Name string
	Keep func(i int) bool
	Tear *Tear
}

// VariantOptions say how many crash images a window gives.
type VariantOptions struct {
	// Subsets: at most this many distinct random subsets of the writes
	// besides none and all.
	Subsets int
	// TearAll tears every log write of the window, not only the first.
	TearAll bool
	// EdgeCuts tears each after its first, middle and last sector
	// instead of after one random sector.
	EdgeCuts bool
}

// Variants lists the crash images of window win: nothing kept, everything
// kept, seeded random subsets, and torn log writes (isLog says which
// writes are the log's; a torn write keeps the writes before it).
func Variants(win []Op, isLog func(Op) bool, opt VariantOptions, rng *rand.Rand) []Variant {
	if len(win) == 0 {
		return []Variant{{Name: "no pending writes"}}
	}
	out := []Variant{
		{Name: "none kept", Keep: func(int) bool { return false }},
		{Name: "all kept", Keep: func(int) bool { return true }},
	}
	if len(win) > 1 {
		seen := map[string]bool{}
		for s := 0; s < opt.Subsets && len(seen) < 1<<min(len(win), 20)-2; s++ {
			mask := make([]bool, len(win))
			key := make([]byte, len(win))
			for i := range mask {
				mask[i] = rng.IntN(2) == 1
				key[i] = '0'
				if mask[i] {
					key[i] = '1'
				}
			}
			k := string(key)
			if seen[k] || !strings.Contains(k, "1") || !strings.Contains(k, "0") {
				continue
			}
			seen[k] = true
			out = append(out, Variant{Name: "kept " + k, Keep: func(i int) bool { return mask[i] }})
		}
	}
	for i, o := range win {
		if !isLog(o) || len(o.Data) <= ondisk.BBSize {
			continue
		}
		sectors := len(o.Data) / ondisk.BBSize
		cuts := []int{1 + rng.IntN(sectors-1)}
		if opt.EdgeCuts {
			cuts = []int{1, sectors / 2, sectors - 1}
		}
		for k, c := range cuts {
			// A short write has fewer distinct cuts than three.
			if c < 1 || c >= sectors || k > 0 && c <= cuts[k-1] {
				continue
			}
			idx := i
			out = append(out, Variant{
				Name: fmt.Sprintf("write %d torn after %d of %d sectors", i, c, sectors),
				Keep: func(j int) bool { return j < idx },
				Tear: &Tear{Index: idx, Sectors: c},
			})
		}
		if !opt.TearAll {
			break
		}
	}
	return out
}
