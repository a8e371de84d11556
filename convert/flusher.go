package convert

// The flusher is the kernel's per-device writeback worker with the
// background threshold of dirty throttling: once the page cache holds
// more than half the dirty limit, it writes files back while writers go
// on filling the cache, so that copying data in and writing it out
// overlap; a writer only waits when the cache reaches the limit itself
// (balance_dirty_pages), and then for pages to come clean, not for a
// writeback of its own. Without Options.Background a writer past the
// limit writes back itself, which keeps the order of every device write
// a function of the calls alone, as the crash and race tests need.

// bgThresh is the background threshold.
func (s *Session) bgThresh() int64 { return s.opt.DirtyLimit / 2 }

// throttle is balanceDirty with a flusher: start it past the background
// threshold, and past the limit wait until the cache is under it or the
// flusher failed, whose error the writer then gets.
func (s *Session) throttle() error {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.flushErr == nil {
		if c.bytes > s.bgThresh() && !c.flushing {
			c.flushing = true
			s.flushWG.Add(1)
			go s.flush()
		}
		if c.bytes <= s.opt.DirtyLimit {
			break
		}
		c.cond.Wait()
	}
	return c.flushErr
}

// flush writes every file back until the cache is under the background
// threshold. It keeps the first error for throttle and sync to return:
// the pages it could not write stay dirty.
func (s *Session) flush() {
	defer s.flushWG.Done()
	c := &s.cache
	var ios uint64
	c.mu.Lock()
	for pass := 0; ; pass++ {
		// A pass after which no write completed found every page in
		// flight in other writebacks (an fsync's): wait for one of
		// them rather than spin.
		for pass > 0 && c.bytes > s.bgThresh() && c.ios == ios && c.flushErr == nil {
			c.cond.Wait()
		}
		if c.bytes <= s.bgThresh() {
			c.flushing = false
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		ios = c.ios
		c.mu.Unlock()
		err := s.writebackAll(syncNone)
		c.mu.Lock()
		if err != nil {
			c.flushErr = err
			c.flushing = false
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
	}
}

// flushErr returns the error the flusher stopped on, if any.
func (s *Session) flushErr() error {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.flushErr
}
