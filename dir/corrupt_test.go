package dir_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/xfsimg/xfsimg/dir"
	"github.com/xfsimg/xfsimg/dir/dirtest"
	"github.com/xfsimg/xfsimg/ondisk"
)

var be = binary.BigEndian

// damaged returns the directory read through a reader in which the
// directory block at file block da has been changed by mutate (CRC stamped
// again unless keepCRC).
func damaged(t *testing.T, im *dirtest.Image, di *dirtest.DirInfo, da uint64, keepCRC bool, mutate func(b []byte)) *dir.Dir {
	t.Helper()
	m := im.Load(t, di)
	var blk []byte
	for _, rb := range im.Blocks(t, im.Open(t), di) {
		if rb.DA == da {
			blk = bytes.Clone(rb.Buf)
		}
	}
	if blk == nil {
		t.Fatalf("%s: no directory block at file block %d", di.Path, da)
	}
	mutate(blk)
	if keepCRC {
		mp := &dirtest.Mapper{Extents: di.Extents}
		for i := 0; i < im.G.DirBlkFSBs; i++ {
			fsb, _, _ := mp.Map(da + uint64(i))
			m.Overlay[fsb] = blk[i*im.G.BlockSize : (i+1)*im.G.BlockSize]
		}
	} else {
		m.Replace(im.G, di, da, blk)
	}
	return dir.New(im.G, di.Ino, di.Format, di.Size, di.Local, &dirtest.Mapper{Extents: di.Extents}, m)
}

// hasKind checks that Verify's joined problems include one of kind.
func hasKind(t *testing.T, err error, kind string) {
	t.Helper()
	var errs []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		errs = u.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var got []string
	for _, e := range errs {
		if dir.KindOf(e) == kind {
			return
		}
		got = append(got, dir.KindOf(e))
	}
	t.Errorf("Verify: want a %s problem, got kinds %v (%v)", kind, got, err)
}

func isCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("%s: %v, want ErrCorrupt", what, err)
	}
}

// checkCorruption damages blocks of real directories and checks that
// listing, lookup and verification report it, keep going where they can,
// and never loop.
func checkCorruption(t *testing.T, im *dirtest.Image) {
	g := im.G
	leafDA := uint64(ondisk.DirLeafOffset >> g.BlockLog)
	freeDA := uint64(ondisk.DirFreeOffset >> g.BlockLog)

	t.Run("data block crc", func(t *testing.T) {
		di := im.Dir(dirtest.DirLeaf)
		good, err := dir.New(g, di.Ino, di.Format, di.Size, di.Local, &dirtest.Mapper{Extents: di.Extents}, im.Open(t)).Entries()
		if err != nil {
			t.Fatal(err)
		}
		d := damaged(t, im, di, 0, true, func(b []byte) { b[200] ^= 1 })
		ents, err := d.Entries()
		isCorrupt(t, "Entries", err)
		if len(ents) == 0 || len(ents) >= len(good) {
			t.Errorf("Entries with block 0 damaged: %d entries of %d, want those of the other blocks", len(ents), len(good))
		}
		_, err = d.Lookup(".")
		isCorrupt(t, "Lookup(.)", err)
		if _, err := d.Lookup(ents[0].Name); err != nil {
			t.Errorf("Lookup(%q) in an intact block: %v", ents[0].Name, err)
		}
		isCorrupt(t, "Verify", d.Verify())
		hasKind(t, d.Verify(), dir.KindCRC)
	})

	t.Run("node root points at itself", func(t *testing.T) {
		di := im.Dir(dirtest.DirNode)
		d := damaged(t, im, di, leafDA, false, func(b []byte) {
			if ondisk.DA3Magic(b) != ondisk.DA3NodeMagic {
				t.Fatal("node directory root is not a node")
			}
			for i := 0; i < int(be.Uint16(b[56:])); i++ {
				be.PutUint32(b[64+8*i+4:], uint32(leafDA))
			}
		})
		_, err := d.Lookup("reg")
		isCorrupt(t, "Lookup", err)
		isCorrupt(t, "Verify", d.Verify())
		hasKind(t, d.Verify(), dir.KindTree)
		if _, err := d.Entries(); err != nil {
			t.Errorf("Entries does not need the tree: %v", err)
		}
	})

	t.Run("leaf sibling loop", func(t *testing.T) {
		// Point the leaf holding the colliding names forward at itself:
		// a lookup for a name past it must stop, not spin.
		di := im.Dir(dirtest.DirNode)
		r := im.Open(t)
		coll := dirtest.Collisions(3)
		h := ondisk.DAHashName(coll[0])
		for _, rb := range im.Blocks(t, r, di) {
			if ondisk.DA3Magic(rb.Buf) != ondisk.Dir3LeafNMagic {
				continue
			}
			l, err := ondisk.DecodeDirLeaf(rb.Buf)
			if err != nil || len(l.Ents) == 0 || l.Ents[len(l.Ents)-1].Hash != h || l.Forw == 0 {
				continue
			}
			d := damaged(t, im, di, rb.DA, false, func(b []byte) { be.PutUint32(b[0:], uint32(rb.DA)) })
			var sawCorrupt bool
			for _, c := range coll {
				if _, err := d.Lookup(string(c)); errors.Is(err, ondisk.ErrCorrupt) {
					sawCorrupt = true
				}
			}
			if !sawCorrupt {
				t.Error("no lookup noticed the sibling loop")
			}
			isCorrupt(t, "Verify", d.Verify())
			hasKind(t, d.Verify(), dir.KindTree)
			return
		}
		t.Fatal("no leaf ends inside the run of colliding hashes")
	})

	t.Run("leaf entry moved to another name", func(t *testing.T) {
		di := im.Dir(dirtest.DirLeaf)
		d := damaged(t, im, di, leafDA, false, func(b []byte) {
			// Give the last live entry the address of the first live one.
			var first, last int
			for i := 0; i < int(be.Uint16(b[56:])); i++ {
				if be.Uint32(b[64+8*i+4:]) != 0 {
					if first == 0 {
						first = 64 + 8*i
					}
					last = 64 + 8*i
				}
			}
			copy(b[last+4:last+8], b[first+4:first+8])
		})
		isCorrupt(t, "Verify", d.Verify())
		hasKind(t, d.Verify(), dir.KindHash)
	})

	t.Run("leaf bests", func(t *testing.T) {
		di := im.Dir(dirtest.DirLeaf)
		d := damaged(t, im, di, leafDA, false, func(b []byte) {
			n := be.Uint32(b[len(b)-4:])
			p := len(b) - 4 - 2*int(n)
			be.PutUint16(b[p:], be.Uint16(b[p:])+8)
		})
		isCorrupt(t, "Verify", d.Verify())
		hasKind(t, d.Verify(), dir.KindBests)
	})

	t.Run("free bests", func(t *testing.T) {
		di := im.Dir(dirtest.DirNode)
		d := damaged(t, im, di, freeDA, false, func(b []byte) { be.PutUint16(b[64:], be.Uint16(b[64:])+8) })
		isCorrupt(t, "Verify", d.Verify())
		hasKind(t, d.Verify(), dir.KindBests)
	})

	t.Run("shortform", func(t *testing.T) {
		di := *im.Dir(dirtest.DirSF)
		di.Local = bytes.Clone(di.Local)
		di.Local[1] = 1 // i8count
		d := dir.New(g, di.Ino, di.Format, di.Size, di.Local, nil, nil)
		_, err := d.Entries()
		isCorrupt(t, "Entries", err)
		_, err = d.Lookup("a")
		isCorrupt(t, "Lookup", err)
	})

	t.Run("bad fork format", func(t *testing.T) {
		di := im.Dir(dirtest.DirBlock)
		d := dir.New(g, di.Ino, 4, di.Size, nil, &dirtest.Mapper{Extents: di.Extents}, im.Open(t))
		_, err := d.Entries()
		isCorrupt(t, "Entries", err)
		if d.Form() != "" {
			t.Errorf("Form = %q for fork format 4", d.Form())
		}
	})
}
