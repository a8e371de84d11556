package ondisk

import "fmt"

// UUID is a 16-byte file-system identifier as stored on disk.
type UUID [16]byte

func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// IsZero reports whether all bytes are zero.
func (u UUID) IsZero() bool { return u == UUID{} }
