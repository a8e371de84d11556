package convert

import (
	"sort"
	"sync"

	"github.com/xfsimg/xfsimg/ondisk"
)

// DefaultDirtyLimit is the page cache bound when none is given: a tenth of
// the machine's memory, at most 1 GiB, at least 64 MiB.
func DefaultDirtyLimit() int64 {
	mem := totalMemory()
	if mem <= 0 {
		return 256 << 20
	}
	return max(min(mem/10, 1<<30), 64<<20)
}

// inodeList lists the files the engine has in core, in inode order.
func (s *Session) inodeList() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint64, 0, len(s.inodes))
	for ino := range s.inodes {
		out = append(out, ino)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// writebackAll writes back every file with data in the page cache, the
// files spread over the workers (one worker per file, as the kernel's
// flusher does), and waits.
func (s *Session) writebackAll(mode syncMode) error {
	var todo []*inode
	for _, ino := range s.inodeList() {
		s.mu.Lock()
		ip := s.inodes[ino]
		s.mu.Unlock()
		if ip.pc.hasDirty() {
			todo = append(todo, ip)
		}
	}
	jobs := make(chan *inode)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < min(s.opt.Workers, len(todo)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ip := range jobs {
				if err := s.writeback(ip, 0, ondisk.MaxFileOff, mode); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, ip := range todo {
		jobs <- ip
	}
	close(jobs)
	wg.Wait()
	return first
}

// balanceDirty makes a writer that took the page cache past its limit
// write back until it is under it again (balance_dirty_pages).
func (s *Session) balanceDirty(ip *inode) error {
	if s.opt.Background {
		return s.throttle()
	}
	if s.cache.get() <= s.opt.DirtyLimit {
		return nil
	}
	// This file first: sequential writers then write large extents.
	if err := s.writeback(ip, 0, ondisk.MaxFileOff, syncNone); err != nil {
		return err
	}
	if s.cache.get() <= s.opt.DirtyLimit {
		return nil
	}
	return s.writebackAll(syncNone)
}

// flushTimes logs timestamps a write changed when no transaction since
// did (the kernel logs them at the write).
func (s *Session) flushTimes(ip *inode) error {
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	if !ip.timesDirty {
		return nil
	}
	t, err := s.begin(ip.ino, 0)
	if err != nil {
		return err
	}
	t.touch()
	ip.timesDirty = false
	return t.commit()
}

// Fsync writes the file's data back, logs what changed and forces the
// log: afterwards a crash loses nothing of the file (fsync and fdatasync;
// the journal has no cheaper force).
func (s *Session) Fsync(ino uint64) error {
	ip, err := s.inode(ino)
	if err != nil {
		return err
	}
	if err := s.flushErr(); err != nil {
		return err
	}
	if err := s.writeback(ip, 0, ondisk.MaxFileOff, syncAll); err != nil {
		return err
	}
	if err := s.flushTimes(ip); err != nil {
		return err
	}
	return s.j.Checkpoint()
}

// SyncRange is sync_file_range(2): write back the dirty pages of the byte
// range and wait for them; no log force, so the on-disk size and the
// unwritten-to-written flips may not survive a crash yet.
func (s *Session) SyncRange(ino uint64, off, length int64) error {
	ip, err := s.inode(ino)
	if err != nil {
		return err
	}
	if off < 0 || length < 0 {
		return ErrInvalid
	}
	end := uint64(ondisk.MaxFileOff)
	if length > 0 {
		end = min(end, s.fsbUp(off+length))
	}
	return s.writeback(ip, s.fsbDown(off), end, syncAll)
}

// Sync is sync(2): every file written back, the log forced.
func (s *Session) Sync() error {
	if err := s.flushErr(); err != nil {
		return err
	}
	if err := s.writebackAll(syncAll); err != nil {
		return err
	}
	for _, ino := range s.inodeList() {
		s.mu.Lock()
		ip := s.inodes[ino]
		s.mu.Unlock()
		if err := s.flushTimes(ip); err != nil {
			return err
		}
	}
	return s.j.Checkpoint()
}

// CloseFile is the last close of the file (xfs_release and
// xfs_free_eofblocks): speculative preallocation past EOF goes, delayed
// or real, except the real blocks of a file preallocated on purpose or
// append-only. Dirty data stays in the page cache.
func (s *Session) CloseFile(ino uint64) error {
	ip, err := s.inode(ino)
	if err != nil {
		return err
	}
	ip.iolock.Lock()
	defer ip.iolock.Unlock()
	ip.ilock.Lock()
	defer ip.ilock.Unlock()
	eof := s.fsbUp(ip.size)
	s.dropDelalloc(ip, eof, ondisk.MaxFileOff)
	if ip.flags&(ondisk.DiFlagPrealloc|ondisk.DiFlagAppend) != 0 {
		return nil
	}
	t, err := s.begin(ino, int64(s.maxLevels))
	if err != nil {
		return err
	}
	e, ok, err := t.f.Prev(ondisk.MaxFileOff)
	if err != nil || !ok || e.End() <= eof {
		t.cancel()
		return err
	}
	ip.seq.Add(1)
	return s.unmap(t, eof, ondisk.MaxFileOff)
}

// freeAllEOFBlocks is xfs_blockgc_free_space after ENOSPC: the
// preallocation past EOF of every file in core goes, as at its last close.
func (s *Session) freeAllEOFBlocks() error {
	for _, ino := range s.inodeList() {
		if err := s.CloseFile(ino); err != nil {
			return err
		}
	}
	return nil
}
