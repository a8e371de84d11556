// Package btree is the one btree engine of xfsimg, as the kernel has one
// xfs_btree.c for every tree. It works on short-pointer (per-AG) and
// long-pointer (BMBT) blocks alike and is parametrised by each tree's Ops:
// record and key layout, key comparison, block limits, where the root lives
// and how blocks are read (and, for writers, logged, allocated and freed).
//
// A cursor keeps the path from the root to a leaf record, one block and
// index per level, like the kernel's xfs_btree_cur. Moving next/prev walks
// that path rather than sibling pointers, and every child must sit exactly
// one level below its parent, so a damaged tree can make a walk fail but
// never loop.
package btree
