package ondisk_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xfsimg/xfsimg/ondisk"
)

var be = binary.BigEndian

// mutation damages a copy of a real structure. Unless keepCRC, the CRC is
// stamped again afterwards, so that the check under test (not the CRC)
// is what must catch it. ino and daddr adjust what Verify is told.
type mutation struct {
	name    string
	mutate  func(t *testing.T, buf []byte)
	keepCRC bool
	ino     int64
	daddr   int64
	uuid    bool // verify against another file system's UUID
}

// identity mutations apply to every v5 directory block.
func identityMutations(nameOff int) []mutation {
	return []mutation{
		{name: "crc", keepCRC: true, mutate: func(t *testing.T, b []byte) { b[nameOff] ^= 0x20 }},
		{name: "daddr", daddr: 1, mutate: func(*testing.T, []byte) {}},
		{name: "owner", ino: 1, mutate: func(*testing.T, []byte) {}},
		{name: "uuid", uuid: true, mutate: func(*testing.T, []byte) {}},
	}
}

func runMutations(t *testing.T, b *dirBlock, crcOff int, check func(buf []byte, g *ondisk.Geometry, ino uint64, daddr int64) error, muts []mutation) {
	t.Helper()
	if err := check(b.buf, b.g, b.dir.Ino, b.daddr); err != nil {
		t.Fatalf("%v: unmodified: %v", b, err)
	}
	for _, m := range muts {
		buf := bytes.Clone(b.buf)
		m.mutate(t, buf)
		if !m.keepCRC {
			ondisk.StampCRC(buf, crcOff)
		}
		g := *b.g
		if m.uuid {
			g.MetaUUID[0] ^= 1
		}
		mustCorrupt(t, b.String()+": "+m.name, check(buf, &g, uint64(int64(b.dir.Ino)+m.ino), b.daddr+m.daddr))
	}
}

func checkData(buf []byte, g *ondisk.Geometry, ino uint64, daddr int64) error {
	d, err := ondisk.DecodeDirDataBlock(buf, g.HasFType)
	if err != nil {
		return err
	}
	return d.Verify(buf, g, ino, daddr)
}

func checkLeaf(buf []byte, g *ondisk.Geometry, ino uint64, daddr int64) error {
	l, err := ondisk.DecodeDirLeaf(buf)
	if err != nil {
		return err
	}
	return l.Verify(buf, g, ino, daddr)
}

func checkNode(buf []byte, g *ondisk.Geometry, ino uint64, daddr int64) error {
	n, err := ondisk.DecodeDANode(buf)
	if err != nil {
		return err
	}
	return n.Verify(buf, g, ino, daddr)
}

func checkFree(buf []byte, g *ondisk.Geometry, ino uint64, daddr int64) error {
	f, err := ondisk.DecodeDirFree(buf)
	if err != nil {
		return err
	}
	return f.Verify(buf, g, ino, daddr)
}

// pick returns the first real structure of kind that satisfies ok.
func pick(t *testing.T, kind string, ok func(buf []byte) bool) *dirBlock {
	t.Helper()
	for _, b := range seedsOf(t, kind) {
		if ok(b.buf) {
			return b
		}
	}
	t.Fatalf("no %s structure with the wanted shape in the image", kind)
	return nil
}

func TestDirDataVerifyRejects(t *testing.T) {
	for _, kind := range []string{kindBlock, kindData} {
		b := pick(t, kind, func(buf []byte) bool {
			d, err := ondisk.DecodeDirDataBlock(buf, true)
			return err == nil && len(d.Unused) >= 1 && d.BestFree[1].Length != 0 && len(d.Entries) >= 4
		})
		d, _ := ondisk.DecodeDirDataBlock(b.buf, true)
		e := d.Entries[2]
		u := d.Unused[0]
		muts := append(identityMutations(e.Off+9),
			mutation{name: "magic", mutate: func(t *testing.T, b []byte) { be.PutUint32(b, ondisk.Dir3FreeMagic) }},
			mutation{name: "bestfree length", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[50:], be.Uint16(b[50:])+8) }},
			mutation{name: "bestfree order", mutate: func(t *testing.T, b []byte) {
				b0 := bytes.Clone(b[48:52])
				copy(b[48:52], b[52:56])
				copy(b[52:56], b0)
			}},
			mutation{name: "bestfree offset without length", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[56:], 0x00080000) }},
			mutation{name: "unused tag", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[u.Off+u.Length-2:], uint16(u.Off+8)) }},
			mutation{name: "unused length", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[u.Off+2:], uint16(u.Length+3)) }},
			mutation{name: "entry tag", mutate: func(t *testing.T, b []byte) {
				be.PutUint16(b[e.Off+ondisk.DirDataEntSize(len(e.Name), true)-2:], uint16(e.Off+8))
			}},
			mutation{name: "entry namelen 0", mutate: func(t *testing.T, b []byte) { b[e.Off+8] = 0 }},
			mutation{name: "entry namelen past the end", mutate: func(t *testing.T, b []byte) { b[d.Entries[len(d.Entries)-1].Off+8] = 255 }},
			mutation{name: "entry ftype 9", mutate: func(t *testing.T, b []byte) { b[e.Off+9+len(e.Name)] = 9 }},
			mutation{name: "entry inode 0", mutate: func(t *testing.T, b []byte) { be.PutUint64(b[e.Off:], 0) }},
			mutation{name: "entry name with slash", mutate: func(t *testing.T, b []byte) { b[e.Off+9] = '/' }},
			mutation{name: "entry next to an unused region turned unused", mutate: func(t *testing.T, b []byte) {
				for _, e := range d.Entries {
					n := ondisk.DirDataEntSize(len(e.Name), true)
					if e.Off+n == u.Off {
						be.PutUint16(b[e.Off:], ondisk.DirDataFreeTag)
						be.PutUint16(b[e.Off+2:], uint16(n))
						be.PutUint16(b[e.Off+n-2:], uint16(e.Off))
						return
					}
				}
				t.Fatal("no entry right before the first unused region")
			}},
		)
		if kind == kindBlock {
			n := len(b.buf)
			leaf := n - 8 - 8*len(d.Leaf)
			muts = append(muts,
				mutation{name: "leaf count too large", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[n-8:], uint32(n)) }},
				mutation{name: "stale count", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[n-4:], be.Uint32(b[n-4:])+1) }},
				mutation{name: "leaf order", mutate: func(t *testing.T, b []byte) {
					x := bytes.Clone(b[leaf : leaf+8])
					copy(b[leaf:leaf+8], b[n-16:n-8])
					copy(b[n-16:n-8], x)
				}},
				mutation{name: "leaf address to another entry", mutate: func(t *testing.T, b []byte) {
					for i := range d.Leaf {
						p := leaf + 8*i
						if be.Uint32(b[p+4:]) != 0 {
							be.PutUint32(b[p+4:], ondisk.DirDataptr(len(b), 0, d.Entries[3].Off))
							if d.Leaf[i].Address != ondisk.DirDataptr(len(b), 0, d.Entries[3].Off) {
								return
							}
						}
					}
				}},
			)
		}
		runMutations(t, b, ondisk.Dir3BlkHdrCRCOff, checkData, muts)
	}
}

func TestDirLeafVerifyRejects(t *testing.T) {
	for _, kind := range []string{kindLeaf1, kindLeafN} {
		b := pick(t, kind, func(buf []byte) bool {
			l, err := ondisk.DecodeDirLeaf(buf)
			return err == nil && len(l.Ents) >= 4 && l.Ents[0].Hash != l.Ents[len(l.Ents)-1].Hash
		})
		l, _ := ondisk.DecodeDirLeaf(b.buf)
		last := 64 + 8*(len(l.Ents)-1)
		muts := append(identityMutations(last),
			mutation{name: "magic", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[8:], ondisk.DA3NodeMagic) }},
			mutation{name: "count too large", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[56:], 0xffff) }},
			mutation{name: "stale count", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[58:], be.Uint16(b[58:])+1) }},
			mutation{name: "hash order", mutate: func(t *testing.T, b []byte) {
				x := bytes.Clone(b[64:72])
				copy(b[64:72], b[last:last+8])
				copy(b[last:last+8], x)
			}},
		)
		if kind == kindLeaf1 {
			muts = append(muts, mutation{name: "bests over the entries", mutate: func(t *testing.T, b []byte) {
				be.PutUint32(b[len(b)-4:], uint32((len(b)-64-4)/2-len(l.Ents)*4+1))
			}})
		}
		runMutations(t, b, ondisk.DA3BlkInfoCRCOff, checkLeaf, muts)
	}
}

func TestDANodeVerifyRejects(t *testing.T) {
	b := pick(t, kindNode, func(buf []byte) bool {
		n, err := ondisk.DecodeDANode(buf)
		return err == nil && len(n.Ents) >= 2 && n.Ents[0].Hash != n.Ents[1].Hash
	})
	runMutations(t, b, ondisk.DA3BlkInfoCRCOff, checkNode, append(identityMutations(64),
		mutation{name: "magic", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[8:], ondisk.Dir3LeafNMagic) }},
		mutation{name: "count too large", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[56:], uint16(len(b))) }},
		mutation{name: "count 0", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[56:], 0) }},
		mutation{name: "level 0", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[58:], 0) }},
		mutation{name: "level 6", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[58:], 6) }},
		mutation{name: "hash order", mutate: func(t *testing.T, b []byte) {
			x := bytes.Clone(b[64:68])
			copy(b[64:68], b[72:76])
			copy(b[72:76], x)
		}},
	))
}

func TestDirFreeVerifyRejects(t *testing.T) {
	b := pick(t, kindFree, func(buf []byte) bool {
		f, err := ondisk.DecodeDirFree(buf)
		return err == nil && len(f.Bests) >= 2
	})
	runMutations(t, b, ondisk.Dir3BlkHdrCRCOff, checkFree, append(identityMutations(64),
		mutation{name: "magic", mutate: func(t *testing.T, b []byte) { be.PutUint32(b, ondisk.Dir3DataMagic) }},
		mutation{name: "nvalid too large", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[52:], uint32(len(b))) }},
		mutation{name: "nused", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[56:], be.Uint32(b[56:])+1) }},
		mutation{name: "firstdb", mutate: func(t *testing.T, b []byte) { be.PutUint32(b[48:], 1) }},
		mutation{name: "a best turned hole", mutate: func(t *testing.T, b []byte) { be.PutUint16(b[64:], ondisk.DirNullDataOff) }},
	))
}

func TestDirSFVerifyRejects(t *testing.T) {
	b := pick(t, kindSF, func(buf []byte) bool {
		s, err := ondisk.DecodeDirSF(buf, true)
		return err == nil && len(s.Entries) >= 3
	})
	check := func(buf []byte) error {
		s, err := ondisk.DecodeDirSF(buf, true)
		if err != nil {
			return err
		}
		return s.Verify(b.g)
	}
	if err := check(b.buf); err != nil {
		t.Fatalf("%v: unmodified: %v", b, err)
	}
	s, _ := ondisk.DecodeDirSF(b.buf, true)
	g := b.g
	e1 := 6 + 3 + len(s.Entries[0].Name) + 1 + 4 // second entry
	for name, mutate := range map[string]func([]byte) []byte{
		"trailing byte":     func(b []byte) []byte { return append(b, 0) },
		"short":             func(b []byte) []byte { return b[:len(b)-1] },
		"count + 1":         func(b []byte) []byte { b[0]++; return b },
		"count - 1":         func(b []byte) []byte { b[0]--; return b },
		"namelen 0":         func(b []byte) []byte { b[6] = 0; return b },
		"parent 0":          func(b []byte) []byte { be.PutUint32(b[2:], 0); return b },
		"offset below .. ":  func(b []byte) []byte { be.PutUint16(b[7:], 0x50); return b },
		"offsets decrease":  func(b []byte) []byte { be.PutUint16(b[e1+1:], be.Uint16(b[7:])); return b },
		"offset past block": func(b []byte) []byte { be.PutUint16(b[e1+1:], uint16(g.DirBlkSize-8)); return b },
		"ftype 9":           func(b []byte) []byte { b[6+3+int(b[6])] = 9; return b },
		"name with NUL":     func(b []byte) []byte { b[9] = 0; return b },
		"i8count":           func(b []byte) []byte { b[1] = 1; return b },
	} {
		mustCorrupt(t, b.String()+": "+name, check(mutate(bytes.Clone(b.buf))))
	}
}
