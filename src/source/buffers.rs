//! Reused record buffers. A batch's records are slices of one allocation, freed when the last
//! of them is dropped (after decoding, or after the commit for a dead letter). A new
//! allocation for every batch often lands on memory the process has not touched yet, which
//! the copy into it then faults in (the Kafka source's copy was 6 % of its profile); the pool
//! gives a source back a batch's allocation once its records are gone.
//!
//! Invariant: bytes a record refers to are never handed out again. A kept buffer gives out
//! only the room after its last batch, or, once no record refers to its storage any more
//! (`BytesMut::try_reclaim` reclaims only storage nothing else shares), the whole allocation.
//! While idle, the pool holds at most `keep` buffers of at most `max_kept` bytes each.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// The allocations of a source's recent batches, for the next ones.
#[derive(Debug)]
pub struct BufferPool {
    /// Emptied handles on the storage of recent batches, oldest first.
    kept: VecDeque<BytesMut>,
    keep: usize,
    max_kept: usize,
}

impl BufferPool {
    /// Keeps the allocations of the last `keep` batches (enough to cover those still being
    /// decoded), each if it is at most `max_kept` bytes (not those of unusually large batches).
    pub fn new(keep: usize, max_kept: usize) -> Self {
        BufferPool {
            kept: VecDeque::with_capacity(keep),
            keep,
            max_kept,
        }
    }

    /// An empty buffer with room for `len` bytes: a kept one none of whose records is alive,
    /// or a new one.
    pub fn take(&mut self, len: usize) -> BytesMut {
        match self.kept.iter_mut().position(|b| b.try_reclaim(len)) {
            Some(i) => self.kept.remove(i).unwrap_or_default(),
            None => BytesMut::with_capacity(len),
        }
    }

    /// `buf`'s contents, for the records to slice; its allocation is kept for a later batch.
    pub fn freeze(&mut self, mut buf: BytesMut) -> Bytes {
        let data = buf.split().freeze();
        if self.keep > 0 && data.len() + buf.capacity() <= self.max_kept {
            if self.kept.len() == self.keep {
                self.kept.pop_front();
            }
            self.kept.push_back(buf);
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_is_reused_once_its_records_are_gone_and_not_before() {
        let mut pool = BufferPool::new(4, 1 << 20);
        let mut buf = pool.take(1000);
        buf.extend_from_slice(&[7; 1000]);
        let first = pool.freeze(buf);
        let record = first.slice(10..20);
        drop(first);

        // A record of the first batch is alive: a new allocation.
        let mut buf = pool.take(1000);
        let second_ptr = buf.as_ptr();
        buf.extend_from_slice(&[8; 1000]);
        let second = pool.freeze(buf);
        assert_eq!(record, &[7; 10][..], "the live record is untouched");
        assert_ne!(second_ptr, record.as_ptr().wrapping_sub(10));

        // Once it is dropped, the first allocation comes back.
        let first_ptr = record.as_ptr().wrapping_sub(10);
        drop(record);
        let buf = pool.take(1000);
        assert_eq!(buf.as_ptr(), first_ptr);
        assert!(buf.is_empty() && buf.capacity() >= 1000);
        assert_eq!(second, &[8; 1000][..]);
    }

    #[test]
    fn large_allocations_are_not_kept_and_idle_ones_are_bounded() {
        let mut pool = BufferPool::new(4, 1 << 20);
        let mut buf = pool.take((1 << 20) + 1);
        buf.extend_from_slice(&[1; 8]);
        drop(pool.freeze(buf));
        assert!(pool.kept.is_empty());
        for _ in 0..4 + 5 {
            let mut buf = BytesMut::with_capacity(100);
            buf.extend_from_slice(&[1; 100]);
            drop(pool.freeze(buf));
        }
        assert_eq!(pool.kept.len(), 4);
    }
}
