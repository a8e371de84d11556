package bmbt

import (
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

// TestContiguous pins the merge rule: adjacent in the file and on disk,
// the same state, and no longer than a record can hold.
func TestContiguous(t *testing.T) {
	a := ondisk.Extent{StartOff: 10, StartBlock: 100, BlockCount: 5}
	cases := []struct {
		name string
		b    ondisk.Extent
		want bool
	}{
		{"follows", ondisk.Extent{StartOff: 15, StartBlock: 105, BlockCount: 3}, true},
		{"file gap", ondisk.Extent{StartOff: 16, StartBlock: 105, BlockCount: 3}, false},
		{"disk gap", ondisk.Extent{StartOff: 15, StartBlock: 106, BlockCount: 3}, false},
		{"state", ondisk.Extent{StartOff: 15, StartBlock: 105, BlockCount: 3, Unwritten: true}, false},
		{"exactly max", ondisk.Extent{StartOff: 15, StartBlock: 105, BlockCount: ondisk.MaxExtLen - 5}, true},
		{"over max", ondisk.Extent{StartOff: 15, StartBlock: 105, BlockCount: ondisk.MaxExtLen - 4}, false},
	}
	for _, c := range cases {
		if got := contiguous(a, c.b); got != c.want {
			t.Errorf("%s: contiguous(%v, %v) = %v, want %v", c.name, a, c.b, got, c.want)
		}
	}
}
