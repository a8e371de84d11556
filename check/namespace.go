package check

import (
	"fmt"
	"slices"

	"github.com/xfsimg/xfsimg/ondisk"
)

// checkNamespace checks the directory tree as a whole: every entry names
// an inode in use, of the type the entry says; every directory has one
// parent and ".." names it; every inode in use is reachable from the root
// (or on an unlinked list, or a metadata inode); link counts are the
// number of names (directories: 2 + subdirectories).
func (c *checker) checkNamespace(edges []edge) {
	g := c.g
	rootIno := c.sb.RootIno
	st, root := c.lookup(rootIno)
	if st != inoInUse || root.flags&fDir == 0 || root.flags&fBad != 0 {
		c.add(finding(KindRootIno, "the root directory is not a directory in use").ino(rootIno).exp("a directory", statusText(st)))
		root = nil
	}
	var out []Finding
	// Edges were collected directory by directory; keep them grouped by
	// directory for the walk from the root.
	slices.SortStableFunc(edges, func(a, b edge) int {
		switch {
		case a.dir < b.dir:
			return -1
		case a.dir > b.dir:
			return 1
		}
		return 0
	})
	var curDir uint64
	var cur *inodeInfo
	for i := range edges {
		e := &edges[i]
		if cur == nil || curDir != e.dir {
			curDir = e.dir
			_, cur = c.lookup(e.dir)
		}
		at := func(f Finding) Finding { return f.at(int(g.InoAgno(e.dir)), -1).ino(e.dir) }
		st, ip := c.lookup(e.target)
		switch st {
		case inoInvalid:
			out = append(out, at(finding(KindDirEntryBad, "entry %q names %d, which is not an inode number of this file system", e.name, e.target)))
			continue
		case inoNoChunk:
			out = append(out, at(finding(KindDirEntryBad, "entry %q names inode %d, which is in no inode chunk", e.name, e.target).exp("an allocated inode", "none")))
			continue
		case inoFree:
			out = append(out, at(finding(KindDirEntryFree, "entry %q names inode %d, which is free", e.name, e.target).exp("an inode in use", "a free inode")))
			continue
		}
		ip.names++
		ip.flags |= fNamed
		if g.HasFType && ip.flags&fBad == 0 {
			if want := ondisk.ModeToFType(ip.mode); e.ftype != want {
				out = append(out, at(finding(KindDirEntryFType, "entry %q names inode %d with the wrong file type", e.name, e.target).exp(want, e.ftype)))
			}
		}
		if ip.flags&fDir == 0 {
			continue
		}
		if cur != nil {
			cur.subdirs++
		}
		switch {
		case e.target == rootIno:
			out = append(out, at(finding(KindDirMultiLink, "entry %q names the root directory", e.name)))
		case ip.flags&fDirParent != 0:
			out = append(out, at(finding(KindDirMultiLink, "entry %q names directory %d, which directory %d also names", e.name, e.target, ip.entryParent).
				exp("one parent", fmt.Sprintf("%d and %d", ip.entryParent, e.dir))))
		default:
			ip.entryParent = e.dir
			ip.flags |= fDirParent
		}
	}

	// ".." of every directory.
	for _, ag := range c.ags {
		for i := range ag.inodes {
			ip := &ag.inodes[i]
			if ip.flags&fDir == 0 || ip.flags&fBad != 0 {
				continue
			}
			var want uint64
			switch {
			case ip.ino == rootIno:
				want = rootIno
			case ip.flags&fDirParent != 0:
				want = ip.entryParent
			default:
				continue // no parent names it: reported as unreachable
			}
			if ip.parent != want {
				out = append(out, finding(KindDirDotdot, "\"..\" does not name the directory's parent").
					at(int(ag.agno), -1).ino(ip.ino).exp(want, ip.parent))
			}
		}
	}

	// Reachability from the root, then every orphan subtree once.
	walkFrom := func(start *inodeInfo) {
		start.flags |= fReached
		queue := []uint64{start.ino}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			lo, _ := slices.BinarySearchFunc(edges, d, func(e edge, d uint64) int {
				switch {
				case e.dir < d:
					return -1
				case e.dir > d:
					return 1
				}
				return 0
			})
			for k := lo; k < len(edges) && edges[k].dir == d; k++ {
				st, ip := c.lookup(edges[k].target)
				if st != inoInUse || ip.flags&fReached != 0 {
					continue
				}
				ip.flags |= fReached
				if ip.flags&fDir != 0 && ip.flags&fBad == 0 {
					queue = append(queue, ip.ino)
				}
			}
		}
	}
	if root != nil {
		walkFrom(root)
	}
	orphan := func(ip *inodeInfo) bool {
		return ip.flags&(fReached|fUnlinked|fMeta) == 0
	}
	for pass := 0; pass < 2; pass++ {
		for _, ag := range c.ags {
			for i := range ag.inodes {
				ip := &ag.inodes[i]
				if !orphan(ip) || (pass == 0 && ip.flags&fNamed != 0) {
					continue
				}
				why := "no directory entry names it"
				if pass == 1 {
					why = "only directories that are themselves unreachable name it"
				}
				what := "inode"
				if ip.flags&fDir != 0 {
					what = "directory"
				}
				out = append(out, finding(KindUnreachable, "%s in use is not reachable from the root: %s", what, why).
					at(int(ag.agno), -1).ino(ip.ino).exp("reachable from the root, or on an unlinked list", "disconnected"))
				ip.flags |= fReached
				if ip.flags&fNamed == 0 {
					ip.flags |= fMeta // no expected link count for a subtree root
				}
				walkFrom(ip)
			}
		}
	}

	// Link counts.
	for _, ag := range c.ags {
		for i := range ag.inodes {
			ip := &ag.inodes[i]
			if ip.flags&(fBad|fMeta) != 0 {
				continue
			}
			want := ip.names
			if ip.flags&fDir != 0 {
				want = 2 + ip.subdirs
			}
			if ip.nlink != want {
				what := "names"
				if ip.flags&fDir != 0 {
					what = "2 + subdirectories"
				}
				out = append(out, finding(KindNlink, "link count is not the number of %s", what).
					at(int(ag.agno), -1).ino(ip.ino).exp(want, ip.nlink))
			}
		}
	}
	c.add(out...)
}

func statusText(s inodeStatus) string {
	return [...]string{"not an inode number", "no inode", "a free inode", "an inode in use"}[s]
}

// checkCounters compares the superblock's counters with the sums over the
// AGs' trees. With lazy counters (always on v5) the on-disk values are
// only kept exact at clean unmount, so with a dirty log a difference is
// information, not a problem.
func (c *checker) checkCounters() {
	var icount, ifree, fdblocks uint64
	for _, ag := range c.ags {
		if !ag.have.free || !ag.have.inodes {
			return // the sums would be wrong; the AG's damage is reported
		}
		icount += ag.counts.icount
		ifree += ag.counts.ifree
		fdblocks += ag.counts.freeBlocks + ag.counts.flcount + ag.counts.btreeBlks
	}
	sb := c.sb
	var out []Finding
	for _, x := range []struct {
		kind, name string
		got, want  uint64
	}{
		{KindSBIcount, "icount (allocated inodes)", sb.ICount, icount},
		{KindSBIfree, "ifree (free inodes)", sb.IFree, ifree},
		{KindSBFdblocks, "fdblocks (free blocks)", sb.FDBlocks, fdblocks},
	} {
		if x.got == x.want {
			continue
		}
		f := finding(x.kind, "superblock %s is not the sum over the AGs", x.name).at(0, 0).exp(x.want, x.got)
		if c.dirtyLog {
			f.Message += "; the log is dirty, and lazy counters are only exact after a clean unmount"
			f = f.info()
		}
		out = append(out, f)
	}
	c.add(out...)
}
