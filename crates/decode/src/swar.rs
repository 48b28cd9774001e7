//! Eight bytes at a time (SWAR): finding bytes in a `u64` word, for the short strings of log
//! records where `memchr`'s setup costs more than the search.
//!
//! Masks set the high bit of each matching byte (little-endian). Only the lowest set bit is
//! exact: a borrow can flag the byte above a match, so callers use `trailing_zeros` only.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The eight little-endian bytes of `b` at `i` (panics if fewer remain).
#[inline(always)]
pub fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"))
}

/// Bytes of `w` equal to `c`.
#[inline(always)]
pub fn eq(w: u64, c: u8) -> u64 {
    let x = w ^ (LO * u64::from(c));
    x.wrapping_sub(LO) & !x & HI
}

/// Bytes of `w` below `c` (for `c` <= 0x80).
#[inline(always)]
pub fn below(w: u64, c: u8) -> u64 {
    w.wrapping_sub(LO * u64::from(c)) & !w & HI
}

/// Bytes of `w` at or above 0x80 (exact: no borrow involved).
#[inline(always)]
pub fn non_ascii(w: u64) -> u64 {
    w & HI
}

/// Index within the word of the byte flagged by the lowest bit of a non-zero mask.
#[inline(always)]
pub fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}
