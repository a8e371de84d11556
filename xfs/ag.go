package xfs

import (
	"fmt"

	"github.com/xfsimg/xfsimg/agf"
	"github.com/xfsimg/xfsimg/ondisk"
)

func (f *FS) checkAgno(agno uint32) error {
	if agno >= f.Geo.AGCount {
		return fmt.Errorf("ag %d: the file system has %d AGs (0-%d): %w", agno, f.Geo.AGCount, f.Geo.AGCount-1, ondisk.ErrNotFound)
	}
	return nil
}

// AGFRaw decodes AG agno's AGF without verifying it (for display).
func (f *FS) AGFRaw(agno uint32) (*ondisk.AGF, error) {
	if err := f.checkAgno(agno); err != nil {
		return nil, err
	}
	buf, err := f.ReadMeta(f.Geo.AGFDaddr(agno), f.Geo.SectSize)
	if err != nil {
		return nil, fmt.Errorf("agf %d: %w", agno, err)
	}
	a, err := ondisk.DecodeAGF(buf)
	if err != nil {
		return nil, fmt.Errorf("agf %d: %w", agno, err)
	}
	return a, nil
}

// AGF reads and verifies AG agno's AGF.
func (f *FS) AGF(agno uint32) (*ondisk.AGF, error) {
	a, err := f.AGFRaw(agno)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(f.Geo, agno); err != nil {
		return nil, fmt.Errorf("agf %d: %w", agno, err)
	}
	return a, nil
}

// AGIRaw decodes AG agno's AGI without verifying it.
func (f *FS) AGIRaw(agno uint32) (*ondisk.AGI, error) {
	if err := f.checkAgno(agno); err != nil {
		return nil, err
	}
	buf, err := f.ReadMeta(f.Geo.AGIDaddr(agno), f.Geo.SectSize)
	if err != nil {
		return nil, fmt.Errorf("agi %d: %w", agno, err)
	}
	a, err := ondisk.DecodeAGI(buf)
	if err != nil {
		return nil, fmt.Errorf("agi %d: %w", agno, err)
	}
	return a, nil
}

// AGI reads and verifies AG agno's AGI.
func (f *FS) AGI(agno uint32) (*ondisk.AGI, error) {
	a, err := f.AGIRaw(agno)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(f.Geo, agno, f.SB); err != nil {
		return nil, fmt.Errorf("agi %d: %w", agno, err)
	}
	return a, nil
}

// AGFLRaw decodes AG agno's AGFL without verifying it.
func (f *FS) AGFLRaw(agno uint32) (*ondisk.AGFL, error) {
	if err := f.checkAgno(agno); err != nil {
		return nil, err
	}
	buf, err := f.ReadMeta(f.Geo.AGFLDaddr(agno), f.Geo.SectSize)
	if err != nil {
		return nil, fmt.Errorf("agfl %d: %w", agno, err)
	}
	a, err := ondisk.DecodeAGFL(buf)
	if err != nil {
		return nil, fmt.Errorf("agfl %d: %w", agno, err)
	}
	return a, nil
}

// AGFL reads and verifies AG agno's AGFL.
func (f *FS) AGFL(agno uint32) (*ondisk.AGFL, error) {
	a, err := f.AGFLRaw(agno)
	if err != nil {
		return nil, err
	}
	if err := a.Verify(f.Geo, agno); err != nil {
		return nil, fmt.Errorf("agfl %d: %w", agno, err)
	}
	return a, nil
}

// FreeSpace opens AG agno's free-space state (verified AGF and trees).
func (f *FS) FreeSpace(agno uint32) (*agf.AG, error) {
	a, err := f.AGF(agno)
	if err != nil {
		return nil, err
	}
	return &agf.AG{
		Geo:   f.Geo,
		Agno:  agno,
		AGF:   a,
		Store: agf.AGStore{Geo: f.Geo, Agno: agno, Read: f.ReadMeta, Prefetch: f.Prefetch},
	}, nil
}
