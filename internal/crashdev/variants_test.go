package crashdev

import (
	"math/rand/v2"
	"testing"
)

func TestVariants(t *testing.T) {
	log := func(o Op) bool { return o.Off == 0 }
	win := []Op{{Off: 0, Data: make([]byte, 4*512)}, {Off: 4096, Data: make([]byte, 512)}, {Off: 0, Data: make([]byte, 2*512)}}
	for _, tc := range []struct {
		name      string
		win       []Op
		opt       VariantOptions
		wantTears int
		minN      int
	}{
		{"empty window", nil, VariantOptions{Subsets: 5}, 0, 1},
		{"first log write, one cut", win, VariantOptions{Subsets: 3}, 1, 3},
		{"every log write, one cut", win, VariantOptions{TearAll: true}, 2, 4},
		{"every log write, edge cuts", win, VariantOptions{TearAll: true, EdgeCuts: true}, 4, 6}, // 1,2,3 of 4; 1 of 2
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := Variants(tc.win, log, tc.opt, rand.New(rand.NewPCG(1, 2)))
			tears, names := 0, map[string]bool{}
			for _, v := range vs {
				if names[v.Name] {
					t.Errorf("variant %q twice", v.Name)
				}
				names[v.Name] = true
				if v.Tear != nil {
					tears++
					if v.Keep(v.Tear.Index) || !v.Keep(v.Tear.Index-1) && v.Tear.Index > 0 {
						t.Errorf("%s keeps the wrong writes", v.Name)
					}
					if n := len(tc.win[v.Tear.Index].Data) / 512; v.Tear.Sectors < 1 || v.Tear.Sectors >= n {
						t.Errorf("%s: cut %d of %d sectors", v.Name, v.Tear.Sectors, n)
					}
				}
			}
			if tears != tc.wantTears || len(vs) < tc.minN {
				t.Errorf("%d variants, %d torn; want at least %d, %d torn: %v", len(vs), tears, tc.minN, tc.wantTears, names)
			}
		})
	}
}
