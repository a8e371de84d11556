// Package ondisk owns the XFS v5 on-disk format: every structure as a Go
// type with big-endian decode and encode and a verifier, and the device the
// structures live on.
//
// Decoders never trust a count read from disk to size an allocation: every
// count is checked against the space it claims to describe first, so a
// damaged image gives an error, not a panic or a huge allocation.
package ondisk
