// SPDX-License-Identifier: GPL-2.0
//! The memory gate: the part of a device's memory lock that code which cannot sleep or take a
//! mutex may use, in the kernel the ioeventfd wake-up (`features/ioeventfd.rs`).
//!
//! Upstream's wake-up does `down_read_trylock(&vdev->memory_lock)`; our memory lock is the
//! state mutex, which the wake-up may not take or release (it runs under the eventfd's
//! interrupt-safe wait-queue lock). The gate stands in for the reader side of that rwsem: a
//! writer of the device's memory (a "pass") enters only while the gate is open, and the holder
//! of the state mutex closes it, and waits for the passes inside to leave, before anything that
//! is upstream's `down_write(&vdev->memory_lock)` (memory decode off, resets, power changes,
//! BAR unmapping); it opens it again only once memory decode is known to be on.
//!
//! # Invariants
//!
//! `state` holds [`OPEN`] and, in the other bits, the number of passes taken and not yet
//! dropped. After [`MemoryGate::close`] returns, no pass is inside and none enters until
//! [`MemoryGate::open`]: every pass is a `fetch_add` on the same atomic as the close's
//! `fetch_and`, so in their single modification order it either comes first (and the close
//! waits for its drop) or sees [`OPEN`] clear (and leaves without touching the device).
//!
//! # Ordering
//!
//! A pass's entry is `Acquire`, pairing with the `Release` of `open`: what the opener did to
//! the device before opening (memory decode on) happens before the pass's write. A pass's drop
//! is `Release`, pairing with the `Acquire` loads of `close`'s wait: the pass's write happens
//! before whatever the closer does to the device after `close` returns.
//!
//! # Why the wait is short
//!
//! A pass is held for one MMIO write, by code that does not sleep; in the kernel the wake-up
//! runs with the wait-queue spinlock held and interrupts off, so it is not preempted either.
//! The one exception is the first check `vfio_virqfd_enable` makes in process context, which
//! may be preempted: the closer's `relax` may sleep after spinning a while (see
//! [`MemoryGate::close`]). Nothing a pass does waits for the closer, so the wait always ends.

use core::sync::atomic::{AtomicU32, Ordering};

/// Set while passes may enter.
pub const OPEN: u32 = 1 << 31;
/// The bits that count passes.
const PASSES: u32 = !OPEN;

/// See the module documentation. All zero (the `Default`) is closed with nobody inside.
#[derive(Default)]
pub struct MemoryGate {
    state: AtomicU32,
}

/// Permission to write the device's memory, until dropped.
#[must_use]
pub struct Pass<'a> {
    gate: &'a MemoryGate,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.state.fetch_sub(1, Ordering::Release);
    }
}

impl MemoryGate {
    /// A closed gate.
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    /// A pass if the gate is open, `None` if it is closed (then the caller must go the slow
    /// way: take the memory lock). Never waits.
    #[inline]
    pub fn enter(&self) -> Option<Pass<'_>> {
        // A closed gate is the common case while memory is off: no write to the shared line.
        if self.state.load(Ordering::Relaxed) & OPEN == 0 {
            return None;
        }
        let pass = Pass { gate: self };
        if self.state.fetch_add(1, Ordering::Acquire) & OPEN == 0 {
            // Closed in between: dropping the pass undoes the count.
            return None;
        }
        Some(pass)
    }

    /// Lets passes in. Called with the memory lock held, once memory decode is on.
    pub fn open(&self) {
        self.state.fetch_or(OPEN, Ordering::Release);
    }

    /// Stops new passes and waits until every pass inside has left, calling `relax` with the
    /// number of rounds waited so far on each round. Called with the memory lock held, before
    /// the device's memory becomes unusable.
    pub fn close(&self, mut relax: impl FnMut(u32)) {
        let mut state = self.state.fetch_and(!OPEN, Ordering::Acquire);
        let mut rounds = 0u32;
        while state & PASSES != 0 {
            relax(rounds);
            rounds = rounds.saturating_add(1);
            state = self.state.load(Ordering::Acquire);
        }
    }

    /// Whether passes may enter now.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Relaxed) & OPEN != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn a_new_gate_is_closed() {
        let g = MemoryGate::new();
        assert!(!g.is_open());
        assert!(g.enter().is_none());
    }

    #[test]
    fn an_open_gate_gives_passes_and_a_closed_one_none() {
        let g = MemoryGate::new();
        g.open();
        let a = g.enter();
        let b = g.enter();
        assert!(a.is_some() && b.is_some());
        drop((a, b));
        g.close(|_| panic!("nobody is inside"));
        assert!(g.enter().is_none());
        g.open();
        assert!(g.enter().is_some());
    }

    #[test]
    fn a_refused_pass_leaves_no_count_behind() {
        let g = MemoryGate::new();
        g.open();
        g.close(|_| {});
        for _ in 0..3 {
            assert!(g.enter().is_none());
        }
        g.close(|_| panic!("refused passes must not be waited for"));
    }

    #[test]
    fn close_waits_for_the_pass_inside() {
        let g = Arc::new(MemoryGate::new());
        g.open();
        let pass_taken = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let t = {
            let (g, taken, release) = (g.clone(), pass_taken.clone(), release.clone());
            std::thread::spawn(move || {
                let pass = g.enter().expect("open");
                taken.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                drop(pass);
            })
        };
        while !pass_taken.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let mut waited = 0;
        g.close(|rounds| {
            waited = rounds + 1;
            if rounds == 100 {
                release.store(true, Ordering::SeqCst);
            }
            std::thread::yield_now();
        });
        assert!(waited > 100, "close returned with a pass inside");
        assert!(g.enter().is_none());
        t.join().expect("no panic");
    }

    /// The property the kernel relies on: no write inside a pass overlaps the time between a
    /// `close` and the next `open` (the device's memory is off then).
    #[test]
    fn no_pass_overlaps_a_closed_interval_under_contention() {
        let g = Arc::new(MemoryGate::new());
        let memory_on = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        g.open();
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (g, on, stop, writes) =
                    (g.clone(), memory_on.clone(), stop.clone(), writes.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(_pass) = g.enter() {
                            assert!(on.load(Ordering::Relaxed), "write with memory off");
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // Until the writers got in often enough (they may be slow to start on a busy host).
        let start = std::time::Instant::now();
        let mut rounds = 0;
        while rounds < 500
            || (writes.load(Ordering::Relaxed) < 100 && start.elapsed().as_secs() < 20)
        {
            g.close(|_| std::hint::spin_loop());
            memory_on.store(false, Ordering::Relaxed);
            std::hint::spin_loop();
            memory_on.store(true, Ordering::Relaxed);
            g.open();
            std::thread::yield_now();
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("no write saw memory off");
        }
        assert!(writes.load(Ordering::Relaxed) > 0);
        g.close(|_| panic!("every pass was dropped"));
    }
}
