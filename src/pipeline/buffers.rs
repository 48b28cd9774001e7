//! Recycled buffers for encoded COPY rows.
//!
//! Every batch is encoded into a buffer of a few MiB that lives until the commit stage has
//! sent it. Allocating a fresh one per batch makes the allocator map new pages, and the
//! kernel zero them, on every batch: measured, that was the single largest item of the
//! client's CPU profile. Buffers are therefore handed back when sent and reused, keeping
//! their capacity; a few are kept per process, enough for the pieces in flight.

use std::ops::Deref;
use std::sync::Mutex;

/// Most buffers kept for reuse (pieces in flight per file are one or two).
const KEEP: usize = 8;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of encoded rows that returns to the free list when dropped.
#[derive(Debug, Default)]
pub struct RowsBuffer(Vec<u8>);

impl RowsBuffer {
    /// An empty buffer with room for at least `bytes`, reused when one is free.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buffer = FREE
            .lock()
            .map(|mut free| free.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        buffer.reserve(bytes);
        Self(buffer)
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
        let mut buffer = std::mem::take(&mut self.0);
        if buffer.capacity() == 0 {
            return;
        }
        buffer.clear();
        if let Ok(mut free) = FREE.lock()
            && free.len() < KEEP
        {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
