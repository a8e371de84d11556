package ondisk

import (
	"errors"
	"fmt"
)

// Typed errors callers decide on with errors.Is.
var (
	// ErrCorrupt: a structure failed verification (magic, CRC, UUID, self
	// address, owner, bounds).
	ErrCorrupt = errors.New("structure needs cleaning")
	// ErrUnsupported: a valid image uses something xfsimg does not implement.
	ErrUnsupported = errors.New("not supported")
	// ErrNoSpace: not enough free space for the request.
	ErrNoSpace = errors.New("no space left on device")
	// ErrNotFound: a name, inode or record does not exist.
	ErrNotFound = errors.New("not found")
)

// Corruptf returns an error wrapping ErrCorrupt with the formatted detail.
func Corruptf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// Unsupportedf returns an error wrapping ErrUnsupported.
func Unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrUnsupported)
}
