package ondisk

// AGFLHeaderSize is the AGFL header (magic, seqno, uuid, lsn, crc) before
// the ring of block numbers.
const AGFLHeaderSize = 36
