//! The bounded priority queue in front of the workers.
//!
//! Requests wait here until a worker takes them: higher priority first,
//! first come first served within a priority. The queue never grows past its
//! capacity — a push into a full queue hands the request straight back with
//! [`Busy`], which the HTTP layer answers with 429 — so a flood of callers
//! costs a bounded amount of memory.

use serde::Deserialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How urgent a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Batch work that may wait.
    Low,
    /// Interactive requests (the default).
    #[default]
    Normal,
    /// Requests that jump the queue (health probes, retries of failed work).
    High,
}

/// A push into a full queue: the item comes back with the queue's capacity.
#[derive(Debug)]
pub struct Busy<T> {
    /// The request that was not queued.
    pub item: T,
    /// How many requests the queue holds at most.
    pub capacity: usize,
}

impl<T> std::fmt::Display for Busy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "busy: {} requests are already waiting (the queue's limit); retry later or add workers",
            self.capacity
        )
    }
}

impl<T: std::fmt::Debug> std::error::Error for Busy<T> {}

/// One queued item with what orders it.
struct Entry<T> {
    priority: Priority,
    /// Arrival number: lower is older.
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.seq == other.seq
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    /// The max-heap's top is the highest priority, then the oldest.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

struct State<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
    closed: bool,
}

/// A bounded, blocking priority queue shared by callers and workers.
pub struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        BoundedQueue {
            state: Mutex::new(State { heap: BinaryHeap::new(), next_seq: 0, closed: false }),
            not_empty: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.lock().heap.len()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `item`, or hands it back when the queue is full or closed.
    pub fn push(&self, item: T, priority: Priority) -> Result<(), Busy<T>> {
        let mut state = self.lock();
        if state.closed || state.heap.len() >= self.capacity {
            return Err(Busy { item, capacity: self.capacity });
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.heap.push(Entry { priority, seq, item });
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// The next item without waiting.
    pub fn try_pop(&self) -> Option<T> {
        self.lock().heap.pop().map(|e| e.item)
    }

    /// The next item, waiting up to `timeout`; `None` on timeout, or once
    /// the queue is closed and drained.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(e) = state.heap.pop() {
                return Some(e.item);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state = self.not_empty.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Refuses new items and wakes every waiter; queued items can still be
    /// popped (so each gets its answer).
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn higher_priority_first_and_fifo_within_a_priority() {
        let q = BoundedQueue::new(10);
        q.push("n1", Priority::Normal).unwrap();
        q.push("l1", Priority::Low).unwrap();
        q.push("h1", Priority::High).unwrap();
        q.push("n2", Priority::Normal).unwrap();
        q.push("h2", Priority::High).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.try_pop()).collect();
        assert_eq!(order, ["h1", "h2", "n1", "n2", "l1"]);
    }

    #[test]
    fn a_full_queue_hands_the_item_back_as_busy() {
        let q = BoundedQueue::new(2);
        q.push(1, Priority::Normal).unwrap();
        q.push(2, Priority::Normal).unwrap();
        let busy = q.push(3, Priority::High).unwrap_err();
        assert_eq!((busy.item, busy.capacity), (3, 2));
        assert!(busy.to_string().starts_with("busy: 2 requests"));
        assert_eq!(q.len(), 2);
        q.try_pop();
        q.push(3, Priority::Normal).unwrap();
    }

    #[test]
    fn pop_waits_times_out_and_wakes_on_close() {
        let q = Arc::new(BoundedQueue::<u32>::new(4));
        let start = Instant::now();
        assert_eq!(q.pop(Duration::from_millis(50)), None);
        assert!(start.elapsed() >= Duration::from_millis(50));
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.pop(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        q.push(7, Priority::Normal).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(7));
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.pop(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        q.close();
        assert_eq!(waiter.join().unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(q.push(8, Priority::High).is_err(), "a closed queue takes nothing");
    }

    #[test]
    fn many_producers_and_consumers_lose_and_duplicate_nothing() {
        let q = Arc::new(BoundedQueue::new(64));
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        let mut item = p * 1000 + i;
                        loop {
                            match q.push(item, if i % 3 == 0 { Priority::High } else { Priority::Normal }) {
                                Ok(()) => break,
                                Err(busy) => {
                                    item = busy.item;
                                    std::thread::yield_now();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || std::iter::from_fn(|| q.pop(Duration::from_millis(300))).collect::<Vec<_>>())
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u32> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        all.sort_unstable();
        let want: Vec<u32> = (0..4).flat_map(|p| (0..500).map(move |i| p * 1000 + i)).collect();
        assert_eq!(all, want);
    }
}
