package ondisk

import (
	"encoding/binary"
	"time"
)

// BigtimeEpochOffset is what a bigtime timestamp's seconds are counted
// from, relative to the Unix epoch: the smallest legacy (s32) time, so that
// every legacy timestamp converts to bigtime without loss.
const BigtimeEpochOffset = 1 << 31

// Timestamp is an inode time as the format defines it: seconds since the
// Unix epoch and nanoseconds. Legacy timestamps store Nsec as a raw u32 that
// may be out of range on a damaged inode; it is kept as read so that encode
// reproduces the bytes.
type Timestamp struct {
	Sec  int64
	Nsec uint32
}

// DecodeTimestamp decodes the 8-byte xfs_timestamp_t in b. bigtime selects
// the BIGTIME encoding (one u64 of nanoseconds since 1901-12-13T20:45:52Z);
// otherwise it is the legacy pair of s32 seconds and u32 nanoseconds. Which
// one applies is a per-inode property (di_flags2 BIGTIME), not a file system
// one.
func DecodeTimestamp(b []byte, bigtime bool) Timestamp {
	v := binary.BigEndian.Uint64(b)
	if bigtime {
		return Timestamp{Sec: int64(v/1e9) - BigtimeEpochOffset, Nsec: uint32(v % 1e9)}
	}
	return Timestamp{Sec: int64(int32(v >> 32)), Nsec: uint32(v)}
}

// Encode writes the timestamp into b[:8]. Seconds outside the encoding's
// range wrap as the kernel's conversions do; callers clamp first.
func (t Timestamp) Encode(b []byte, bigtime bool) {
	if bigtime {
		binary.BigEndian.PutUint64(b, uint64(t.Sec+BigtimeEpochOffset)*1e9+uint64(t.Nsec))
		return
	}
	binary.BigEndian.PutUint32(b, uint32(int32(t.Sec)))
	binary.BigEndian.PutUint32(b[4:], t.Nsec)
}

// Time converts to a time.Time (nanoseconds past one second carry over).
func (t Timestamp) Time() time.Time { return time.Unix(t.Sec, int64(t.Nsec)) }

// TimestampFromTime is the inverse of Time for in-range values.
func TimestampFromTime(tm time.Time) Timestamp {
	return Timestamp{Sec: tm.Unix(), Nsec: uint32(tm.Nanosecond())}
}

// dbTime renders seconds as xfs_db does: ctime(3) in the local time zone
// without the trailing newline.
func dbTime(sec int64) string {
	return time.Unix(sec, 0).In(time.Local).Format(time.ANSIC)
}
