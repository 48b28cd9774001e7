//! Recycled byte buffers for the per-batch hot path.
//!
//! Every batch fills buffers of a few MiB: the encoded COPY rows, and the `_raw` text of
//! its records. Allocating them fresh per batch makes glibc map new pages, and the kernel
//! zero them, on every batch: measured, that was the single largest item of the client's
//! CPU profile. These buffers are therefore handed back when their last user drops them and
//! reused, keeping their capacity; a few are kept per process, enough for the batches in
//! flight.

use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use arrow::buffer::Buffer;

/// Most buffers kept for reuse: each batch in flight holds a few (its COPY rows, its
/// `_raw`, query, headers and params text), a few batches are in flight per file, a few
/// files at once.
const KEEP: usize = 64;
/// Larger buffers (a batch of unusually large records) are freed, not kept: what the free
/// list holds stays below `KEEP * MAX_KEPT_BYTES`, and in practice near what the batches in
/// flight held at their peak.
const MAX_KEPT_BYTES: usize = 32 << 20;

/// Buffers handed back, waiting to be reused.
struct FreeList {
    buffers: Vec<Vec<u8>>,
}

impl FreeList {
    const fn new() -> Self {
        Self {
            buffers: Vec::new(),
        }
    }

    /// The smallest kept buffer with room for `bytes`, if any. Best fit, because a batch's
    /// buffers differ in size (its headers text is a third of its `_raw` text): growing a
    /// small one would copy it, and in time make every kept buffer as large as the largest.
    fn take(&mut self, bytes: usize) -> Option<Vec<u8>> {
        let (best, _) = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, buffer)| buffer.capacity() >= bytes)
            .min_by_key(|(_, buffer)| buffer.capacity())?;
        Some(self.buffers.swap_remove(best))
    }

    /// Keeps `buffer` (emptied) unless enough are kept or it is too large to keep.
    fn give(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0
            || buffer.capacity() > MAX_KEPT_BYTES
            || self.buffers.len() >= KEEP
        {
            return;
        }
        buffer.clear();
        self.buffers.push(buffer);
    }
}

static FREE: Mutex<FreeList> = Mutex::new(FreeList::new());

/// An empty buffer with room for at least `bytes`, reused when one is free. A new one gets
/// an eighth more room, so that the next batch, a little larger, can reuse it.
pub fn take(bytes: usize) -> Vec<u8> {
    if bytes == 0 {
        return Vec::new();
    }
    FREE.lock()
        .ok()
        .and_then(|mut free| free.take(bytes))
        .unwrap_or_else(|| Vec::with_capacity(bytes + bytes / 8))
}

/// Hands `buffer` back for reuse (dropped when enough are kept).
pub fn give(buffer: Vec<u8>) {
    if let Ok(mut free) = FREE.lock() {
        free.give(buffer);
    }
}

/// The owner of a recycled buffer behind an Arrow [`Buffer`]: gives it back when the last
/// array using it is dropped.
struct Recycled(Vec<u8>);

impl Drop for Recycled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

/// An Arrow buffer over `bytes` (a buffer from [`take`]) without copying; the memory is
/// reused once every array sharing it is gone.
pub fn into_arrow(bytes: Vec<u8>) -> Buffer {
    if bytes.is_empty() {
        give(bytes);
        return Buffer::from_vec(Vec::<u8>::new());
    }
    let len = bytes.len();
    let ptr = NonNull::new(bytes.as_ptr().cast_mut()).expect("a non-empty Vec has a pointer");
    // SAFETY: `ptr` points to `len` initialised bytes owned by the `Recycled` owner, which
    // the Buffer keeps alive for as long as any slice of it exists; a Vec's heap memory does
    // not move when the Vec itself is moved into the owner.
    unsafe { Buffer::from_custom_allocation(ptr, len, Arc::new(Recycled(bytes))) }
}

/// A buffer of encoded rows that returns to the free list when dropped.
#[derive(Debug, Default)]
pub struct RowsBuffer(Vec<u8>);

impl RowsBuffer {
    /// An empty buffer with room for at least `bytes`, reused when one is free.
    pub fn with_capacity(bytes: usize) -> Self {
        Self(take(bytes))
    }

    /// The buffer to append to.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Deref for RowsBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for RowsBuffer {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_buffer_that_fits_is_taken() {
        let mut free = FreeList::new();
        for capacity in [4 << 20, 64 << 10, 1 << 20] {
            free.give(Vec::with_capacity(capacity));
        }
        let taken = free.take(100 << 10).expect("a buffer fits");
        assert!(taken.capacity() >= 1 << 20 && taken.capacity() < 4 << 20);
        assert!(free.take(8 << 20).is_none(), "none is grown to fit");
        let taken = free.take(1).expect("a buffer fits");
        assert!(taken.capacity() < 1 << 20);
        assert_eq!(free.buffers.len(), 1);
    }

    #[test]
    fn the_free_list_is_bounded() {
        let mut free = FreeList::new();
        for _ in 0..KEEP + 5 {
            free.give(Vec::with_capacity(16));
        }
        free.give(Vec::with_capacity(MAX_KEPT_BYTES + 1));
        assert_eq!(free.buffers.len(), KEEP);
        assert!(free.buffers.iter().all(|b| b.capacity() <= MAX_KEPT_BYTES));
    }

    #[test]
    fn a_dropped_buffer_is_reused_with_its_capacity_and_no_content() {
        let mut first = RowsBuffer::with_capacity(1 << 20);
        first.as_mut_vec().extend_from_slice(b"rows");
        let address = first.as_ptr();
        drop(first);
        // Other tests may take buffers concurrently: look for ours among a few.
        let taken: Vec<RowsBuffer> = (0..KEEP).map(|_| RowsBuffer::with_capacity(16)).collect();
        let ours = taken.iter().find(|b| b.0.as_ptr() == address);
        let ours = ours.expect("the dropped buffer is handed out again");
        assert!(ours.is_empty());
        assert!(ours.0.capacity() >= 1 << 20);
    }

    #[test]
    fn an_arrow_buffer_reads_the_bytes_and_returns_them_when_dropped() {
        let mut bytes = take(1 << 20);
        bytes.extend_from_slice(b"hello");
        let address = bytes.as_ptr();
        let buffer = into_arrow(bytes);
        let slice = buffer.slice(1);
        drop(buffer);
        assert_eq!(slice.as_slice(), b"ello", "a slice keeps the memory alive");
        drop(slice);
        let taken: Vec<Vec<u8>> = (0..KEEP).map(|_| take(16)).collect();
        assert!(
            taken.iter().any(|b| b.as_ptr() == address && b.is_empty()),
            "the memory is handed out again once the last slice is gone"
        );
    }
}
