// SPDX-License-Identifier: GPL-2.0
//! `VFIO_DEVICE_IOEVENTFD`: writes of a fixed value to a BAR offset, triggered by an eventfd
//! (upstream `vfio_pci_ioeventfd`), through the VFIO core's virqfd.
//!
//! Locking and lifetimes: the list lives in its own mutex (`DeviceState::ioeventfds`, upstream's
//! `ioeventfds_lock`), never taken with the state mutex held. Removing an entry disables its
//! virqfd, which flushes the VFIO core's global virqfd clean-up workqueue and so waits for every
//! queued virqfd shutdown, each of which waits for its running write; the write takes the state
//! mutex (memory decode check, the memory lock), so neither that mutex nor anything taken
//! before it in the lock order may be held while removing (see `Documentation/architecture.md`,
//! "Locks"). Each entry is boxed, so the address the virqfd keeps stays valid until it is
//! disabled in `Drop`.
//!
//! The virqfd pointer of an entry is the VFIO core's: it is set by `vfio_virqfd_enable` and
//! cleared under `virqfd_lock`, either by `vfio_virqfd_disable` or by the eventfd's wake-up when
//! user space closes the eventfd (which queues the shutdown). We never read it; `Drop` always
//! calls `vfio_virqfd_disable`, which looks at it under that lock and, set or not, flushes the
//! clean-up workqueue, so a shutdown queued by a close and its pending write have finished
//! before the entry and the BAR mapping go away (upstream does the same).
//!
//! The write: in the eventfd's wake-up when it can be done there, as upstream
//! (`vfio_pci_ioeventfd_handler`), else in the virqfd thread. An I/O port BAR is written in the
//! wake-up without any lock (upstream takes none for it either). A memory BAR may only be
//! written while memory decode is on, which upstream checks under its memory lock taken with
//! `down_read_trylock`, falling back to the thread when that fails. Our memory lock is the
//! state mutex, which the wake-up may neither take nor release: it runs under the eventfd's
//! wait-queue lock, which interrupt handlers take (INTx and MSI signals), while a mutex's
//! unlock slow path takes the mutex's `wait_lock` with interrupts on elsewhere; lockdep
//! reports that order as a possible deadlock (`HARDIRQ-safe -> HARDIRQ-unsafe`), which the
//! debug kernel's fuzzer found when we tried `try_lock`. So the wake-up enters the memory
//! gate instead (`DeviceState::memory_gate`, `logic::memory_gate`): open only while the
//! device's memory decode is on and no holder of the state mutex is changing it, closed (with
//! a wait for the writers inside) by every path that is upstream's `down_write` of the memory
//! lock (`features::bar::block_memory`, `zap`). The gate takes no lock, so the wake-up adds
//! no lock dependency. When the gate is closed the write goes to the thread, which takes the
//! state mutex and drops the write if memory decode is off: upstream's fallback on a contended
//! lock; upstream drops the write in the wake-up when the lock is free and decode is off,
//! which is observably the same (the write never reaches the device).
//!
//! The BAR mapping a wake-up writes through stays valid: entries are removed (virqfd
//! disabled) before close unmaps the BARs, and removal waits for a running wake-up too (the
//! virqfd shutdown removes its wait-queue entry under the wait-queue lock the wake-up runs
//! under, and `vfio_virqfd_disable` flushes the shutdown).

use crate::bindings;
use crate::logic::uapi::{self, IoEventFd, IOEVENTFD_MAX};
use crate::state::DeviceState;
use crate::state::Entry;
use core::ffi::c_void;
use kernel::error::{code::*, to_result, Error, Result};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// The virqfd thread, for writes the wake-up could not do (memory gate closed): the write
/// under the state mutex (the memory lock), and only while memory decode is on.
unsafe extern "C" fn write_thread(opaque: *mut c_void, _data: *mut c_void) {
    // SAFETY: `opaque` is the boxed entry, valid until its virqfd is disabled (which waits for
    // us).
    let e = unsafe { &*opaque.cast::<Entry>() };
    // SAFETY: the device state outlives the entry (type invariant).
    let dev = unsafe { &*e.dev };
    let inner = dev.inner.lock();
    if e.test_mem && !inner.memory_enabled(&dev.pdev) {
        return;
    }
    // SAFETY: `io` is inside the BAR mapping claimed at registration (bounds checked then),
    // which lives until close, after every entry is gone.
    unsafe { crate::primitives::bar_map::iowrite(e.io, e.count, e.data) };
    drop(inner);
}

/// The eventfd's wake-up (`virqfd_wakeup`, under the eventfd's wait-queue lock with
/// interrupts off; once also in process context, from `vfio_virqfd_enable`): the write itself
/// when the BAR is I/O ports or the memory gate is open; else 1, which hands it to
/// [`write_thread`].
unsafe extern "C" fn write_wakeup(opaque: *mut c_void, _data: *mut c_void) -> core::ffi::c_int {
    // SAFETY: `opaque` is the boxed entry, valid until its virqfd is disabled, which waits
    // for a running wake-up (see the module documentation).
    let e = unsafe { &*opaque.cast::<Entry>() };
    if !e.test_mem {
        // SAFETY: `io` is inside the BAR mapping claimed at registration (bounds checked
        // then), which lives until close, after every entry is gone.
        unsafe { crate::primitives::bar_map::iowrite(e.io, e.count, e.data) };
        return 0;
    }
    // SAFETY: the device state outlives the entry (type invariant).
    let dev = unsafe { &*e.dev };
    let Some(_memory_on) = dev.memory_gate.enter() else {
        return 1;
    };
    // SAFETY: as above; and the open gate means memory decode is on until the pass is
    // dropped (`logic::memory_gate`).
    unsafe { crate::primitives::bar_map::iowrite(e.io, e.count, e.data) };
    0
}

/// `VFIO_DEVICE_IOEVENTFD`.
pub(crate) fn ioctl(dev: &DeviceState, arg: usize) -> Result {
    let mut raw = [0u8; IoEventFd::MINSZ];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let req = IoEventFd::from_user(&raw).map_err(|e| Error::from_errno(-e.0))?;
    let (bar, pos, io, test_mem) = {
        let mut inner = dev.inner.lock();
        let msix = inner.bars.msix;
        let (bar, pos) = req
            .target(|b| dev.pdev.resource_len(b), msix)
            .map_err(|e| Error::from_errno(-e.0))?;
        // Writes into a variant's window must reach the variant, which an ioeventfd's write
        // to the device would bypass (an emulated BAR has no device memory at all).
        let into_window = dev
            .bar_window(bar)
            .is_some_and(|w| w.step(pos, req.count) != (req.count, false));
        if into_window || dev.emulated_bar_size(bar).is_some() {
            return Err(EINVAL);
        }
        let base = inner.bars.claim(&dev.pdev, bar)?;
        // SAFETY: `pos + count` is inside the BAR (checked by `target`), which `base` maps.
        let io = unsafe { base.cast::<u8>().add(pos as usize) }.cast::<c_void>();
        (bar, pos, io, dev.pdev.bar_resource(bar).mem)
    };
    let mut fds = dev.ioeventfds.lock();
    let same = |e: &KBox<Entry>| {
        e.pos == pos && e.bar == bar && e.data == req.data && e.count == req.count
    };
    if let Some(i) = fds.list.iter().position(same) {
        if req.fd != -1 {
            return Err(EEXIST);
        }
        // Dropping the entry disables its virqfd.
        let mut kept = KVec::with_capacity(fds.list.len(), GFP_KERNEL)?;
        for (j, e) in core::mem::take(&mut fds.list).into_iter().enumerate() {
            if j != i {
                kept.push(e, GFP_KERNEL)?;
            }
        }
        fds.list = kept;
        return Ok(());
    }
    if req.fd < 0 {
        return Err(ENODEV);
    }
    if fds.list.len() >= IOEVENTFD_MAX {
        return Err(ENOSPC);
    }
    fds.list.reserve(1, GFP_KERNEL)?;
    let mut e = KBox::new(
        Entry {
            dev: core::ptr::from_ref(dev),
            bar,
            pos,
            data: req.data,
            count: req.count,
            test_mem,
            io,
            virqfd: core::ptr::null_mut(),
        },
        GFP_KERNEL,
    )?;
    let opaque = core::ptr::from_mut::<Entry>(&mut e).cast::<c_void>();
    // SAFETY: `opaque` is the boxed entry, which stays at this address until it is dropped,
    // and `Drop` disables the virqfd first (type invariant); both callbacks only read it.
    to_result(unsafe {
        bindings::vfio_virqfd_enable(
            opaque,
            Some(write_wakeup),
            Some(write_thread),
            core::ptr::null_mut(),
            &mut e.virqfd,
            req.fd,
        )
    })?;
    fds.list.push(e, GFP_KERNEL)?;
    Ok(())
}

/// Keeps the ioctl number next to the handler for `ioctl.rs`.
pub(crate) const CMD: u32 = uapi::VFIO_DEVICE_IOEVENTFD;
