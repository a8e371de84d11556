package check_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xfsimg/xfsimg/btree"
	"github.com/xfsimg/xfsimg/check"
	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/images"
	"github.com/xfsimg/xfsimg/internal/checktest"
	"github.com/xfsimg/xfsimg/internal/oracle"
)

// corruption is one damage made with xfs_db -x on a copy of a fixture,
// breaking one invariant, and the finding kind check must report for it.
type corruption struct {
	name    string
	fixture string
	// damage returns the xfs_db commands; it may read the image first.
	damage func(t *testing.T, img string) []string
	want   string
}

// repairMisses documents damage that xfs_repair -n 6.1 does not count
// (it exits 0) though it is real: its read verifier prints "Metadata
// corruption detected" (verifier true), or the kernel's online scrub
// checks what it does not (verifier false: xfs_repair is silent).
var repairMisses = map[string]struct {
	why      string
	verifier bool
}{
	"agfl stale slot beyond the AG": {"xfs_repair only walks the slots on the list; the kernel's AGFL verifier checks them all", true},
	"AG btree sibling null":         {"xfs_repair -n does not follow AG btree sibling pointers (xfs_scrub does); only a sibling the verifier rejects is seen", false},
}

// free inode of the root chunk: an inode number of the first chunk no file
// of the manifest uses (the realtime inodes follow the root).
func freeRootChunkInode(t *testing.T, fixture string) uint64 {
	t.Helper()
	m, err := images.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	used := map[uint64]bool{}
	for _, f := range m.Files {
		used[f.Inode] = true
	}
	root := m.Files[0].Inode
	for ino := root + 3; ino < root+64; ino++ {
		if !used[ino] {
			return ino
		}
	}
	t.Fatalf("%s: the root chunk is full", fixture)
	return 0
}

func corruptions() []corruption {
	agf0 := func(field string, delta int64) func(t *testing.T, img string) []string {
		return func(t *testing.T, img string) []string {
			v := dbInt(t, img, field, "agf 0", "p "+field)
			return []string{"agf 0", fmt.Sprintf("write -d %s %d", field, int64(v)+delta)}
		}
	}
	agi0 := func(field string, delta int64) func(t *testing.T, img string) []string {
		return func(t *testing.T, img string) []string {
			v := dbInt(t, img, field, "agi 0", "p "+field)
			return []string{"agi 0", fmt.Sprintf("write -d %s %d", field, int64(v)+delta)}
		}
	}
	sb0 := func(field string, delta int64) func(t *testing.T, img string) []string {
		return func(t *testing.T, img string) []string {
			v := dbInt(t, img, field, "sb 0", "p "+field)
			return []string{"sb 0", fmt.Sprintf("write -d %s %d", field, int64(v)+delta)}
		}
	}
	inode := func(fixture, path, field string, delta int64) func(t *testing.T, img string) []string {
		return func(t *testing.T, img string) []string {
			ino := inodeOf(t, fixture, path)
			v := dbInt(t, img, field, "inode "+u(ino), "p "+field)
			return []string{"inode " + u(ino), fmt.Sprintf("write %s %d", field, int64(v)+delta)}
		}
	}
	bnoLeaf1 := []string{"agf 0", "addr bnoroot", "addr ptrs[1]"} // freesp-1k: two levels
	return []corruption{
		{"agf freeblks", "dirs-4k", agf0("freeblks", -3), check.KindAGFFreeblks},
		{"agf longest", "dirs-4k", agf0("longest", -1), check.KindAGFLongest},
		{"agf btreeblks", "freesp-1k", agf0("btreeblks", 2), check.KindAGFBtreeblks},
		{"agf flcount", "dirs-4k", agf0("flcount", -1), check.KindAGFFlcount},
		{"agi count", "dirs-4k", agi0("count", 64), check.KindAGICount},
		{"agi freecount", "dirs-4k", agi0("freecount", -1), check.KindAGIFreecount},
		{"sb icount", "dirs-4k", sb0("icount", 64), check.KindSBIcount},
		{"sb ifree", "dirs-4k", sb0("ifree", 1), check.KindSBIfree},
		{"sb fdblocks", "dirs-4k", sb0("fdblocks", -10), check.KindSBFdblocks},
		{"bad crc", "files-4k", func(t *testing.T, img string) []string {
			// write -c leaves the stored CRC as it was.
			return []string{"inode " + u(inodeOf(t, "files-4k", "/tiny1")), "write -c core.gen 12345"}
		}, check.KindCRC},
		{"inode nblocks", "files-4k", inode("files-4k", "/exact4096", "core.nblocks", 3), check.KindInodeNblocks},
		{"inode nextents", "files-4k", inode("files-4k", "/frag-a", "core.nextents", -1), check.KindInodeNextents},
		{"link count", "files-4k", inode("files-4k", "/tiny1", "core.nlinkv2", 1), check.KindNlink},
		{"free extent over a file", "dirs-4k", func(t *testing.T, img string) []string {
			// Stretch the first free extent after a file's block back
			// over that block.
			ext := dbBmap(t, img, inodeOf(t, "dirs-4k", "/sf/file"))
			if len(ext) == 0 {
				t.Fatal("/sf/file has no blocks")
			}
			recs := dbRecs(t, img, "agf "+u(ext[0].agno), "addr bnoroot", "p recs")
			for i, r := range recs {
				if r[0] > ext[0].agbno {
					return []string{"agf " + u(ext[0].agno), "addr bnoroot",
						fmt.Sprintf("write -d recs[%d].startblock %d", i+1, ext[0].agbno),
						fmt.Sprintf("write -d recs[%d].blockcount %d", i+1, r[0]+r[1]-ext[0].agbno)}
				}
			}
			t.Fatal("no free extent after /sf/file")
			return nil
		}, check.KindFreeInUse},
		{"bnobt and cntbt disagree", "freesp-1k", func(t *testing.T, img string) []string {
			// Drop the cntbt's last (longest) record: the tree stays in
			// order, the bnobt still has the extent.
			last := dbInt(t, img, "numrecs", "agf 0", "addr cntroot", "p numrecs")
			leaf := []string{"agf 0", "addr cntroot", fmt.Sprintf("addr ptrs[%d]", last)}
			n := dbInt(t, img, "numrecs", append(leaf, "p numrecs")...)
			return append(leaf, fmt.Sprintf("write -d numrecs %d", n-1))
		}, check.KindFreeMismatch},
		{"two files share a block", "files-4k", func(t *testing.T, img string) []string {
			a := dbBmap(t, img, inodeOf(t, "files-4k", "/tiny1"))
			return []string{"inode " + u(inodeOf(t, "files-4k", "/exact4096")), "write u3.bmx[0].startblock " + u(a[0].fsb)}
		}, check.KindMultiClaimed},
		{"block used twice in one file", "files-4k", func(t *testing.T, img string) []string {
			ino := inodeOf(t, "files-4k", "/sparse")
			a := dbBmap(t, img, ino)
			return []string{"inode " + u(ino), "write u3.bmx[1].startblock " + u(a[0].fsb)}
		}, check.KindMultiClaimed},
		{"extent beyond the end", "files-4k", func(t *testing.T, img string) []string {
			agblklog := dbInt(t, img, "agblklog", "sb 0", "p agblklog")
			agcount := dbInt(t, img, "agcount", "sb 0", "p agcount")
			return []string{"inode " + u(inodeOf(t, "files-4k", "/exact4096")), "write u3.bmx[0].startblock " + u(agcount<<agblklog)}
		}, check.KindExtentRange},
		{"agfl entry is free", "dirs-4k", func(t *testing.T, img string) []string {
			first := dbInt(t, img, "flfirst", "agf 0", "p flfirst")
			recs := dbRecs(t, img, "agf 0", "addr bnoroot", "p recs")
			return []string{"agfl 0", fmt.Sprintf("write -d bno[%d] %d", first, recs[0][0])}
		}, check.KindAGFLFree},
		{"agfl stale slot beyond the AG", "dirs-4k", func(t *testing.T, img string) []string {
			// A slot off the list (flfirst-1) holding a block past the AG.
			first := dbInt(t, img, "flfirst", "agf 0", "p flfirst")
			length := dbInt(t, img, "length", "agf 0", "p length")
			if first == 0 {
				t.Fatal("flfirst is 0")
			}
			return []string{"agfl 0", fmt.Sprintf("write -d bno[%d] %d", first-1, length+10)}
		}, check.KindAGFLEntry},
		{"AG btree sibling points at itself", "freesp-1k", func(t *testing.T, img string) []string {
			self := dbInt(t, img, "ptrs[2]", "agf 0", "addr bnoroot", "p ptrs[2]")
			return []string{"agf 0", "addr bnoroot", "addr ptrs[2]", fmt.Sprintf("write -d leftsib %d", self)}
		}, btree.KindSibling},
		{"AG btree sibling null", "freesp-1k", func(t *testing.T, img string) []string {
			return []string{"agf 0", "addr bnoroot", "addr ptrs[1]", fmt.Sprintf("write -d rightsib %d", uint32(1<<32-1))}
		}, btree.KindSibling},
		{"entry names a free inode", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"inode " + u(inodeOf(t, "dirs-4k", "/sf")), "write u3.sfdir3.list[0].inumber.i4 " + u(freeRootChunkInode(t, "dirs-4k"))}
		}, check.KindDirEntryFree},
		{"btree key out of order", "freesp-1k", func(t *testing.T, img string) []string {
			recs := dbRecs(t, img, append(bnoLeaf1, "p recs")...)
			return append(bnoLeaf1, fmt.Sprintf("write -d recs[3].startblock %d", recs[3][0]+1))
		}, btree.KindKeyOrder},
		{"btree sibling", "files-4k", func(t *testing.T, img string) []string {
			// The middle leaf of /frag-a's BMBT points left at the last.
			// (xfs_repair -n checks sibling pointers of BMBTs only.)
			ino := inodeOf(t, "files-4k", "/frag-a")
			last := dbInt(t, img, "u3.bmbt.ptrs[3]", "inode "+u(ino), "p u3.bmbt.ptrs[3]")
			return []string{"inode " + u(ino), "addr u3.bmbt.ptrs[2]", "write -d leftsib " + u(last)}
		}, btree.KindSibling},
		{"btree level", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"agf 0", "addr bnoroot", "write -d level 1"}
		}, btree.KindLevel},
		{"bmbt block owner", "files-4k", func(t *testing.T, img string) []string {
			ino := inodeOf(t, "files-4k", "/frag-a")
			return []string{"inode " + u(ino), "addr u3.bmbt.ptrs[1]", "write -d owner " + u(ino+1)}
		}, btree.KindOwner},
		{"inobt free mask", "dirs-4k", func(t *testing.T, img string) []string {
			// Mark the chunk's last inode, which is free, in use (count
			// included). xfs_db parses values as signed 64-bit numbers, so
			// the mask is written with its top bit clear.
			recs := dbRecs(t, img, "agi 0", "addr root", "p recs")
			r := recs[0]
			if r[4]>>63 == 0 {
				t.Fatalf("last inode of chunk %d is in use", r[0])
			}
			return []string{"agi 0", "addr root", fmt.Sprintf("write -d recs[1].free %#x", r[4]&^(1<<63)),
				fmt.Sprintf("write -d recs[1].freecount %d", r[3]-1)}
		}, check.KindInobtFree},
		{"finobt record missing", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"agi 0", "addr free_root", "write -d numrecs 0"}
		}, check.KindFinobtMissing},
		{"dir leaf hash", "dirs-4k", func(t *testing.T, img string) []string {
			ino := inodeOf(t, "dirs-4k", "/leaf")
			leaf := []string{"inode " + u(ino), "dblock 8388608"}
			h := dbInt(t, img, "lents[2].hashval", append(leaf, "p lents[2].hashval")...)
			return append(leaf, fmt.Sprintf("write lents[3].hashval %d", h))
		}, dir.KindHash},
		{"block dir hash", "dirs-4k", func(t *testing.T, img string) []string {
			// A single-block directory's leaf entry gets its neighbour's
			// hash: order still holds, the name no longer matches.
			blk := []string{"inode " + u(inodeOf(t, "dirs-4k", "/block")), "dblock 0"}
			h := dbInt(t, img, "bleaf[3].hashval", append(blk, "p bleaf[3].hashval")...)
			return append(blk, fmt.Sprintf("write -d bleaf[4].hashval %d", h+1))
		}, dir.KindHash},
		{"bad dotdot", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"inode " + u(inodeOf(t, "dirs-4k", "/sf")), "write u3.sfdir3.hdr.parent.i4 " + u(inodeOf(t, "dirs-4k", "/block"))}
		}, check.KindDirDotdot},
		{"unreachable inode", "dirs-4k", func(t *testing.T, img string) []string {
			// Drop /sf's last entry ("link", 4 bytes of name: 12 bytes).
			ino := inodeOf(t, "dirs-4k", "/sf")
			size := dbInt(t, img, "core.size", "inode "+u(ino), "p core.size")
			return []string{"inode " + u(ino), "write u3.sfdir3.hdr.count 2", fmt.Sprintf("write core.size %d", size-12)}
		}, check.KindUnreachable},
		{"metadata LSN ahead of the log", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"agf 1", "write -d lsn 0x7fff000000000010"}
		}, check.KindLSNAhead},
		{"entry file type", "dirs-4k", func(t *testing.T, img string) []string {
			return []string{"inode " + u(inodeOf(t, "dirs-4k", "/sf")), "write u3.sfdir3.list[0].filetype 2"}
		}, check.KindDirEntryFType},
		{"remote symlink block", "files-4k", func(t *testing.T, img string) []string {
			ino := inodeOf(t, "files-4k", "/link-remote")
			ext := dbBmap(t, img, ino)
			return []string{fmt.Sprintf("fsb %d", ext[0].fsb), "type symlink", "write -d owner " + u(ino+1)}
		}, check.KindSymlink},
		{"inode core", "files-4k", func(t *testing.T, img string) []string {
			return []string{"inode " + u(inodeOf(t, "files-4k", "/tiny1")), "write -d core.format 1"}
		}, check.KindInodeCorrupt},
		{"unlinked list", "dirs-4k", func(t *testing.T, img string) []string {
			// Bucket 3 names a free inode.
			free := freeRootChunkInode(t, "dirs-4k")
			b := free % 64
			return []string{"agi 0", fmt.Sprintf("write -d unlinked[%d] %d", b, free)}
		}, check.KindAGIUnlinked},
	}
}

// TestCorruptions damages copies of the fixtures one invariant at a time
// with xfs_db and checks that check reports each by its kind and that
// xfs_repair -n flags each too (so each damage is real).
func TestCorruptions(t *testing.T) {
	oracle.Require(t, oracle.Xfsprogs)
	cases := corruptions()
	kinds := map[string]bool{}
	for _, c := range cases {
		kinds[c.want] = true
	}
	if len(kinds) < 25 {
		t.Errorf("only %d kinds of damage", len(kinds))
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			img := copyImage(t, fixture(t, c.fixture))
			requireClean(t, "before the damage", checktest.Run(t, img))
			cmds := c.damage(t, img)
			dbWrite(t, img, cmds...)
			r := checktest.Run(t, img)
			if !r.Has(c.want) || r.Clean() {
				t.Errorf("after %q: want a %s finding, got %s", cmds, c.want, checktest.Text(r))
			}
			for _, f := range r.Findings {
				if f.Kind == c.want && (f.Message == "" || strings.Contains(f.String(), "\n")) {
					t.Errorf("finding is not one line: %q", f.String())
				}
			}
			flagged, out := repairFlags(t, img)
			switch {
			case repairMisses[c.name].why != "":
				m := repairMisses[c.name]
				if flagged || strings.Contains(out, "Metadata corruption detected") != m.verifier {
					t.Errorf("after %q: xfs_repair -n behaves otherwise than documented (%s):\n%s", cmds, m.why, out)
				}
			case !flagged:
				t.Errorf("after %q: xfs_repair -n finds nothing; the damage is not real:\n%s", cmds, out)
			}
			t.Logf("check: %s\nxfs_repair -n:\n%s", checktest.Text(r), repairLines(out))
		})
	}
}

// repairLines keeps the lines of xfs_repair's output that report
// something, not its progress.
func repairLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == "", strings.HasPrefix(l, "Phase "), strings.HasPrefix(l, "        - "),
			strings.Contains(l, "host filesystem geometry"), strings.HasPrefix(l, "Repair may fail"),
			strings.HasPrefix(l, "the image and the host"):
			continue
		}
		keep = append(keep, "  "+l)
	}
	return strings.Join(slices.Compact(keep), "\n")
}
