// SPDX-License-Identifier: GPL-2.0
//! The state of a VFIO PCI device: every type the common module keeps per bound PCI function,
//! defined here and nowhere else, so the features (`features/`) share one picture of it and
//! none of them owns a part the others reach into. This file imports no feature; behaviour on
//! these types lives with the features (`impl` blocks there).
//!
//! # What is what
//!
//! - [`RegisteredVariant`]: the common module's record of a registered variant driver (its
//!   [`VariantOps`] and the `vfio_device_ops` table made from them).
//! - [`VfioPciDevice`]: the VFIO device registered for one bound PCI function: the VFIO core's
//!   `struct vfio_device` followed by its [`DeviceState`].
//! - [`DeviceState`]: everything the common module keeps for that device. [`Inner`], behind the
//!   state mutex, is the part that changes while the device is open.
//!
//! # Memory and lifetimes
//!
//! - A [`RegisteredVariant`] is a `KBox` made by `vfio_pci_common_variant_register` (module init
//!   of the variant) and freed by `..._variant_unregister` (module exit). It holds the
//!   variant's `vfio_device_ops`, so it must outlive every device of that variant: the PCI core
//!   removes all devices when the variant unregisters its `pci_driver`, before module exit
//!   continues.
//! - A [`VfioPciDevice`] is allocated by the VFIO core (`_vfio_alloc_device`) with our state
//!   after the embedded `struct vfio_device`; the VFIO core frees it after calling our
//!   `release`, which drops that state. Variant data is released earlier, in
//!   `vfio_pci_common_device_unregister`, while the variant module is certainly loaded.
//!
//! # Locking
//!
//! - [`DeviceState::inner`], the state mutex: upstream's memory lock and most of what
//!   upstream keeps unlocked ([`Inner`]).
//! - [`DeviceState::irq_gate`], the interrupt gate (upstream's `igate`): [`IrqState`].
//! - [`DeviceState::ioeventfds`]: the ioeventfd list (upstream's `ioeventfds_lock`).
//! - [`DeviceState::memory_gate`]: not a lock but the lock-free reader side of the state
//!   mutex's memory part, for the ioeventfd wake-up (`logic::memory_gate`); closed and opened
//!   only with the state mutex held.
//! - [`IrqShared`]: atomics and the INTx spinlock, for interrupt handlers and virqfd callbacks.
//! - [`DeviceState::migration`], the migration lock: [`MigrationState`]; and each migration
//!   data fd's own lock ([`DataFile`]).
//! - The VFIO core additionally serialises open and close (`dev_set->lock`).
//!
//! Lock order: `dev_set->lock` → migration lock → data fd lock → ioeventfd list → interrupt
//! gate → state mutex → spinlocks.
//! Nothing waits, with the state mutex held, for work that takes it: in particular the VFIO
//! core's virqfd clean-up workqueue, whose ioeventfd shutdowns wait for writes that take the
//! state mutex, is flushed only without it (`features/interrupts.rs`, `features/ioeventfd.rs`).
//! Which variant hooks run under which lock is in `Documentation/architecture.md`, "Locks".
//!
//! # Where one feature calls another
//!
//! Features call each other only through these narrow functions:
//! - `features::bar::zap`: drop every user mapping of the BARs and close the memory gate
//!   (config COMMAND writes that turn memory decode off, resets, power changes), with the
//!   state mutex held; `features::bar::block_memory` closes the gate alone and
//!   `features::bar::unblock_memory` opens it again once the change is done (upstream's
//!   `down_write`/`up_write` of the memory lock).
//! - `features::power::set_power_state`: PMCSR writes, resets, open, SR-IOV enable.
//! - `IrqShared::intx_mask` / `intx_unmask` / `set_virq_disabled` (`features/interrupts.rs`):
//!   the config emulator's INTx-disable bit.
//! - `features::hot_reset::try_reset`: the dev_set reset at the last close (`open_close.rs`).
//! - `features::bar::do_io_rw`: the access loop, also for the legacy VGA windows
//!   (`features/vga.rs`).
//! - `features::vga::has_region`: whether the VGA region exists (`features/device_info.rs`).
//! - `features::migration::reset`: back to RUNNING, any data fd disabled (open, close,
//!   `VFIO_DEVICE_RESET`, hot reset, a reset by someone else), without the state mutex.

use crate::abi::{RegionDesc, VariantOps, MAX_REGIONS};
use crate::bindings;
use crate::logic::config_space::ConfigSpace;
use crate::logic::irq::Mode;
use crate::logic::lifecycle::UUID_SIZE;
use crate::primitives::bar_map::{BarMap, PageReservation};
use crate::primitives::eventfd::EventFd;
use crate::primitives::irq::{IrqName, IrqSpinLock};
use crate::primitives::pci_function::{PciFunction, SavedState};
use crate::primitives::state_mutex::StateMutex;
use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};
use kernel::alloc::{flags, KBox};
use kernel::error::Result;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::types::Opaque;

// ---- the registered variant and the device --------------------------------------------------

/// A registered variant driver.
///
/// # Invariants
///
/// `ops` points to the variant's static [`VariantOps`], valid until the variant unregisters,
/// which happens after all its devices are gone.
pub(crate) struct RegisteredVariant {
    pub(crate) ops: NonNull<VariantOps>,
    pub(crate) vfio_ops: bindings::vfio_device_ops,
    /// The same ops for the variant's mediated devices (emulated IOMMU binds).
    pub(crate) vfio_ops_mediated: bindings::vfio_device_ops,
}

/// The VFIO device of one bound PCI function: the VFIO core's `struct vfio_device`, and our
/// state right after it in the same allocation.
#[repr(C)]
pub(crate) struct VfioPciDevice {
    /// Must stay first: the VFIO core allocates, refcounts and frees us through it.
    pub(crate) vdev: bindings::vfio_device,
    pub(crate) state: DeviceState,
}

/// The Rust part of [`VfioPciDevice`].
///
/// Locking: see the module documentation.
#[pin_data]
pub(crate) struct DeviceState {
    pub(crate) pdev: PciFunction,
    /// A mediated device (`vfio_pci_common_mediated_register`): a child device over `pdev`,
    /// with the emulated IOMMU model; the user never controls bus mastering (COMMAND.MASTER
    /// is virtual), and it has no hot reset, SR-IOV, VGA, migration or runtime PM of its own.
    /// Fixed at registration.
    pub(crate) mediated: bool,
    /// The variant's BAR windows apply to this device: always for a bound function; for a
    /// mediated one only with `abi::MEDIATED_DMA_WINDOWS`. Fixed at registration.
    pub(crate) bar_windows_apply: bool,
    /// A mediated device whose DMA the variant's windows mediate (`MEDIATED_DMA_WINDOWS`):
    /// the function masters the bus exactly while MSI or MSI-X is enabled, so that its
    /// messages (memory writes) arrive; the user still cannot set COMMAND.MASTER. Fixed at
    /// registration.
    pub(crate) msi_bus_master: bool,
    /// The variant's memory BARs (`abi::MemoryBar`), by the index of their lower BAR; checked
    /// and fixed at registration.
    pub(crate) memory_bars: [Option<crate::logic::memory_bar::MemoryBar>; 6],
    pub(crate) variant_data: VariantData,
    /// Everything that changes while the device is bound.
    #[pin]
    pub(crate) inner: StateMutex<Inner>,
    /// The ioeventfds of the open device; never locked with `inner` or `irq_gate` held (see
    /// `features/ioeventfd.rs`).
    #[pin]
    pub(crate) ioeventfds: Mutex<IoEventFds>,
    /// The interrupt gate (upstream `igate`): the interrupt state of
    /// `features/interrupts.rs`. Taken before `inner` when both are needed; held, without
    /// `inner`, across the virqfd flushes of INTx teardown.
    #[pin]
    pub(crate) irq_gate: Mutex<IrqState>,
    /// What interrupt handlers may touch (see `features/interrupts.rs`); its address is their
    /// `dev_id`, stable because the VFIO core's allocation never moves.
    #[pin]
    pub(crate) irq: IrqShared,
    /// Closed without a function reset: a slot or bus reset of its dev_set is due when the
    /// set is idle (upstream `needs_reset`).
    pub(crate) needs_reset: AtomicBool,
    /// Resets this module is doing to the device right now (function resets at open, close
    /// and `VFIO_DEVICE_RESET`, slot or bus resets of its dev_set): the PCI core's
    /// `reset_prepare`/`reset_done` error handlers are not passed on to the variant then
    /// (it is told through its own reset hooks, and our locks may be held).
    pub(crate) own_resets: AtomicU32,
    /// The `disable_idle_d3` parameter as it was at registration (upstream keeps it per
    /// device, so a change affects devices bound later).
    pub(crate) disable_idle_d3: bool,
    /// SR-IOV: VF token, VF capture, the PF of a VF.
    #[pin]
    pub(crate) sriov: Sriov,
    /// Config dwords user space may read without `inner` (see `logic::config_fast`):
    /// published under `inner` at open, withdrawn at close.
    pub(crate) cfg_fast: crate::logic::config_fast::FastReads,
    /// BAR mappings user space may reach without `inner` (see [`BarIoCache`]).
    pub(crate) bar_io: BarIoCache,
    /// The memory gate (`logic::memory_gate`): the reader side of our memory lock for the
    /// ioeventfd wake-up, which may not take `inner`. Open only while the device is open and
    /// its memory decode is on (`Inner::memory_enabled`) and no holder of `inner` is changing
    /// that; closed and opened only with `inner` held, through `features::bar::block_memory`
    /// and `features::bar::unblock_memory`.
    pub(crate) memory_gate: crate::logic::memory_gate::MemoryGate,
    /// The migration lock (upstream variants' `state_mutex`) and the migration state of a
    /// variant that offers migration (`features/migration.rs`). Taken before `inner`, never
    /// with it or `irq_gate` held: the variant's save and load use the device through them.
    #[pin]
    pub(crate) migration: Mutex<MigrationState>,
}

/// The BAR mappings of an open device, for `read`/`write` without the state mutex: each
/// entry is published (under `inner`) when the mapping is made, with the MSI-X table range
/// that access to it must skip, and withdrawn (under `inner`) at close, before the mapping is
/// dropped.
///
/// Upstream looks up `vdev->barmap[bar]` without a lock in the same way; the access itself
/// still takes the memory lock (our `inner`) to check memory decode.
///
/// # Invariants
///
/// A non-null `io[bar]` is the live mapping of BAR `bar` held in `Inner::bars` of the open
/// device, and `msix[bar]` (written before `io[bar]` is published with `Release`) is the MSI-X
/// range of that BAR (`(0, 0)` for none). Entries are cleared only at close, when no `read` or
/// `write` of the device fd is running (the VFIO core closes the device after its last file
/// reference is gone).
pub(crate) struct BarIoCache {
    io: [core::sync::atomic::AtomicPtr<core::ffi::c_void>; 6],
    msix: [(core::sync::atomic::AtomicU64, core::sync::atomic::AtomicU64); 6],
}

// SAFETY: atomics only; all zero is "nothing published" (null pointers, empty ranges).
unsafe impl kernel::init::Zeroable for BarIoCache {}

impl BarIoCache {
    /// The published mapping of `bar` and its MSI-X range, if any.
    #[inline]
    pub(crate) fn get(&self, bar: usize) -> Option<(*mut core::ffi::c_void, (u64, u64))> {
        use core::sync::atomic::Ordering;
        let io = self.io.get(bar)?.load(Ordering::Acquire);
        if io.is_null() {
            return None;
        }
        let (s, e) = self.msix.get(bar)?;
        Some((io, (s.load(Ordering::Relaxed), e.load(Ordering::Relaxed))))
    }

    /// Publishes the mapping `io` of `bar`. Called with `inner` held, where `io` is the
    /// mapping kept in `Inner::bars` until close.
    pub(crate) fn publish(&self, bar: usize, io: *mut core::ffi::c_void, msix: (u64, u64)) {
        use core::sync::atomic::Ordering;
        if let (Some(p), Some((s, e))) = (self.io.get(bar), self.msix.get(bar)) {
            s.store(msix.0, Ordering::Relaxed);
            e.store(msix.1, Ordering::Relaxed);
            p.store(io, Ordering::Release);
        }
    }

    /// Withdraws every mapping; called at close with `inner` held, before the mappings go.
    pub(crate) fn clear(&self) {
        for p in &self.io {
            p.store(core::ptr::null_mut(), core::sync::atomic::Ordering::Release);
        }
    }
}

// SAFETY: `FastReads` is atomics only, and all zero is its empty table (documented there).
unsafe impl kernel::init::Zeroable for crate::logic::config_fast::FastReads {}

/// The variant's per-device data, handed back to the variant exactly once.
pub(crate) struct VariantData {
    pub(crate) variant: NonNull<RegisteredVariant>,
    /// Null once released.
    pub(crate) data: *mut c_void,
}

impl VariantData {
    /// Hands the variant data back to its owner exactly once.
    pub(crate) fn release(&mut self) {
        let data = core::mem::replace(&mut self.data, ptr::null_mut());
        if data.is_null() {
            return;
        }
        // SAFETY: `variant` is valid while any of its devices exists (type invariant of
        // `RegisteredVariant`), and `ops` is valid by its invariant.
        let release = unsafe { self.variant.as_ref().ops.as_ref().release };
        if let Some(release) = release {
            // SAFETY: `data` was given to us by this variant with ownership; we null our copy
            // above, so this is the one and only release.
            unsafe { release(data) };
        }
    }
}

impl DeviceState {
    /// The variant's ops table.
    pub(crate) fn variant_ops(&self) -> &VariantOps {
        // SAFETY: `variant` outlives its devices and `ops` is valid until the variant
        // unregisters (type invariant of `RegisteredVariant`).
        unsafe { self.variant_data.variant.as_ref().ops.as_ref() }
    }

    /// The `struct vfio_device` this state belongs to.
    pub(crate) fn vfio_device(&self) -> *mut bindings::vfio_device {
        let state = core::ptr::from_ref(self).cast::<u8>();
        // SAFETY: a `DeviceState` only ever exists as the `state` field of a `VfioPciDevice`
        // (see `abi_exports::register_device`), so stepping back by the field offset stays inside it.
        let cdev = unsafe { state.sub(core::mem::offset_of!(VfioPciDevice, state)) };
        cdev.cast::<VfioPciDevice>()
            .cast_mut()
            .cast::<bindings::vfio_device>()
    }

    /// The variant's window in BAR `bar`, if it has one (see `VariantOps::bar_windows`).
    pub(crate) fn bar_window(&self, bar: usize) -> Option<crate::logic::bar_rw::Window> {
        self.bar_window_entry(bar)
            .map(|w| crate::logic::bar_rw::Window {
                offset: w.offset,
                len: w.len,
            })
    }

    /// The memory BAR whose lower half is BAR `bar`, if the variant described one.
    pub(crate) fn memory_bar(&self, bar: usize) -> Option<&crate::logic::memory_bar::MemoryBar> {
        self.memory_bars.get(bar)?.as_ref()
    }

    /// The size of BAR `bar` if the variant emulates all of it
    /// (`abi::BAR_WINDOW_EMULATED_BAR`).
    pub(crate) fn emulated_bar_size(&self, bar: usize) -> Option<u64> {
        self.bar_window_entry(bar)
            .filter(|w| w.flags & crate::abi::BAR_WINDOW_EMULATED_BAR != 0)
            .map(|w| w.len)
    }

    fn bar_window_entry(&self, bar: usize) -> Option<&crate::abi::BarWindow> {
        let ops = self.variant_ops();
        if !self.bar_windows_apply || ops.bar_windows.is_null() || ops.bar_window_rw.is_none() {
            return None;
        }
        // SAFETY: `bar_windows` points to a `static` table of `n_bar_windows` entries in the
        // variant module, alive while the variant is registered (checked at registration).
        let table = unsafe { core::slice::from_raw_parts(ops.bar_windows, ops.n_bar_windows) };
        table.iter().find(|w| w.bar as usize == bar)
    }

    /// Runs `f`, a reset this module does to the device, marked as ours (`own_resets`).
    /// The PCI core calls the error handlers on the task doing the reset, so a relaxed
    /// counter is enough to recognise our own.
    pub(crate) fn own_reset<R>(&self, f: impl FnOnce() -> R) -> R {
        self.own_resets.fetch_add(1, Ordering::Relaxed);
        let r = f();
        self.own_resets.fetch_sub(1, Ordering::Relaxed);
        r
    }

    /// This device as the variant's hooks see it (the handle its device context wraps).
    pub(crate) fn handle(&self) -> *mut crate::abi::DeviceHandle {
        self.vfio_device().cast()
    }

    /// The variant's data pointer for its hooks (valid until the device is unregistered).
    pub(crate) fn variant_data(&self) -> *mut c_void {
        self.variant_data.data
    }
}

impl Drop for VariantData {
    fn drop(&mut self) {
        self.release();
    }
}

impl VfioPciDevice {
    /// # Safety
    ///
    /// `vdev` must be the `vdev` field of a live [`VfioPciDevice`] whose `state` is initialised
    /// (true for every device the VFIO core passes to our ops after registration, and for
    /// every member of one of our dev_sets).
    pub(crate) unsafe fn from_vdev<'a>(vdev: *mut bindings::vfio_device) -> &'a DeviceState {
        // SAFETY: `vdev` is the first field of the `repr(C)` `VfioPciDevice`, so the pointers
        // are equal; the caller guarantees `state` is initialised and alive.
        unsafe { &(*vdev.cast::<VfioPciDevice>()).state }
    }
}

// ---- behind the state mutex -------------------------------------------------------------------

/// Power-management state of the device (upstream `needs_pm_restore`, `pm_save`).
pub(crate) struct PmState {
    /// The device loses its config state on D3hot -> D0 (PM capability without
    /// NoSoftRst): we save it on the way down and restore it on the way up.
    pub(crate) needs_pm_restore: bool,
    /// Config space saved on entering D3hot.
    pub(crate) pm_save: Option<SavedState>,
}

/// The space every device starts with, before its first open builds it from the device.
/// (Earlier versions zero-filled the allocation instead, which relied on all-zero bytes being
/// a valid `ConfigSpace`: nothing guarantees that for its enum fields.)
static EMPTY_CONFIG: ConfigSpace = ConfigSpace::zeroed();
// The byte copy in `Inner::new` is only a valid duplicate of a value that owns nothing.
const _: () = assert!(!core::mem::needs_drop::<ConfigSpace>());

/// Everything that changes while the device is bound, behind the state mutex
/// ([`DeviceState::inner`]).
pub(crate) struct Inner {
    /// Whether a function reset worked at open (`VFIO_DEVICE_FLAGS_RESET`).
    pub(crate) reset_works: bool,
    /// Config space as it was at open, restored at close.
    pub(crate) saved: Option<SavedState>,
    /// Whether `open` completed (so `close` has something to undo).
    pub(crate) enabled: bool,
    /// The variant's `open` hook is running: the only time it may hide capabilities (user
    /// space cannot have walked the list yet).
    pub(crate) opening: bool,
    /// The virtual config space; built at every open, kept (with what it learnt about the
    /// device) from probe to remove, like upstream's `vdev`.
    pub(crate) config: KBox<ConfigSpace>,
    /// Power management.
    pub(crate) pm: PmState,
    /// BAR mappings and mmap rules of the open device.
    pub(crate) bars: BarState,
    /// The variant's device-specific regions of this open (`n_regions` used).
    pub(crate) regions: [RegionDesc; MAX_REGIONS],
    /// How many of `regions` are in use.
    pub(crate) n_regions: usize,
    /// The kernel's mappings of the memory BARs' memory, by BAR, made at first access and
    /// dropped at close (see `primitives/memory_map.rs`).
    pub(crate) memory_maps: [Option<crate::primitives::memory_map::DeviceMemoryMap>; 6],
}

impl Inner {
    /// The state of a freshly probed device.
    pub(crate) fn new(needs_pm_restore: bool) -> Result<Self> {
        let mut config = KBox::<ConfigSpace>::new_uninit(flags::GFP_KERNEL)?;
        // Copied from a static to keep the 8 KiB value off the kernel stack. `ConfigSpace`
        // needs no drop and owns nothing (checked at compile time above), so a byte copy of a
        // valid one is a valid, independent value.
        // SAFETY: `EMPTY_CONFIG` is a valid `ConfigSpace`; the destination is a fresh
        // allocation of exactly one `ConfigSpace`, initialised by the copy.
        let config = unsafe {
            core::ptr::copy_nonoverlapping(&EMPTY_CONFIG, config.as_mut_ptr(), 1);
            config.assume_init()
        };
        Ok(Self {
            reset_works: false,
            saved: None,
            enabled: false,
            opening: false,
            config,
            pm: PmState {
                needs_pm_restore,
                pm_save: None,
            },
            bars: BarState::default(),
            regions: [RegionDesc::new(0, 0, 0, 0); MAX_REGIONS],
            n_regions: 0,
            memory_maps: [const { None }; 6],
        })
    }

    /// Whether user space may access memory BARs now (upstream `__vfio_pci_memory_enabled`):
    /// the device is above D3hot and its virtual COMMAND has memory decode on (or it has no
    /// memory-enable bit).
    pub(crate) fn memory_enabled(&self, pdev: &PciFunction) -> bool {
        self.config.memory_enabled(pdev.current_state() < 3)
    }

    /// Device-specific region `index` (0-based among them) of this open.
    pub(crate) fn region(&self, index: usize) -> Option<&RegionDesc> {
        self.regions
            .get(..self.n_regions)
            .and_then(|r| r.get(index))
    }
}

/// What BAR access needs while the device is open (part of `Inner`).
#[derive(Default)]
pub(crate) struct BarState {
    /// Claimed BARs, made on first access.
    pub(crate) maps: [Option<BarMap>; 6],
    /// Which BARs user space may mmap (`bar_mmap_supported`).
    pub(crate) mmap_ok: [bool; 6],
    /// Reservations for sub-page BARs.
    pub(crate) reserved: KVec<PageReservation>,
    /// The MSI-X table: (BAR, offset, size), excluded from BAR read/write.
    pub(crate) msix: Option<(usize, u64, u64)>,
}

// ---- interrupts -------------------------------------------------------------------------------

/// What the INTx handler and the virqfd callbacks may touch: see `features/interrupts.rs`.
#[pin_data]
pub(crate) struct IrqShared {
    /// `ctx->masked`: INTx is masked (by the handler, user space or the virtual COMMAND bit).
    #[pin]
    pub(crate) intx_masked: IrqSpinLock<bool>,
    /// The active [`Mode`] as its index (`vdev->irq_type`).
    pub(crate) mode: AtomicU8,
    /// `vdev->pci_2_3`: INTx is masked with COMMAND.INTX_DISABLE on a shared line (else at the
    /// irqchip on an exclusive one).
    pub(crate) pci_2_3: AtomicBool,
    /// `vdev->virq_disabled`, mirrored from the config emulator's copy by the intx hooks.
    pub(crate) virq_disabled: AtomicBool,
    /// `vdev->msi_qmax`.
    pub(crate) msi_qmax: AtomicU8,
    /// The INTx trigger (an [`EventFd::into_raw`] reference we own), or null.
    pub(crate) intx_trigger: AtomicPtr<bindings::eventfd_ctx>,
    /// `ctx->unmask`: the virqfd that unmasks INTx when its eventfd fires. Written by the
    /// virqfd code under its own lock; we only pass its address.
    pub(crate) unmask: Opaque<*mut bindings::virqfd>,
}

// SAFETY: every field is an atomic, behind the spinlock, or (`unmask`) only handed by address
// to the virqfd code, which serialises access to it with `virqfd_lock`.
unsafe impl Sync for IrqShared {}
// SAFETY: as for `Sync`; the trigger reference may be released from any thread.
unsafe impl Send for IrqShared {}

impl IrqShared {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            intx_masked <- IrqSpinLock::new(false),
            mode: AtomicU8::new(Mode::None.index() as u8),
            pci_2_3: AtomicBool::new(false),
            virq_disabled: AtomicBool::new(false),
            msi_qmax: AtomicU8::new(0),
            intx_trigger: AtomicPtr::new(ptr::null_mut()),
            unmask: Opaque::new(ptr::null_mut()),
        })
    }
}

/// One MSI or MSI-X vector handed to user space.
pub(crate) struct MsiVector {
    pub(crate) irq: u32,
    pub(crate) trigger: EventFd,
    /// Named in /proc/interrupts while requested.
    pub(crate) _name: IrqName,
}

/// The interrupt state behind the interrupt gate: see `features/interrupts.rs`.
#[derive(Default)]
pub(crate) struct IrqState {
    /// MSI/MSI-X vectors by index (`vdev->ctx`); `None` where user space set no trigger.
    pub(crate) vectors: KVec<Option<MsiVector>>,
    /// The name of the requested INTx interrupt.
    pub(crate) intx_name: Option<IrqName>,
    /// `vdev->err_trigger`.
    pub(crate) err: Option<EventFd>,
    /// `vdev->req_trigger`.
    pub(crate) req: Option<EventFd>,
    /// `vdev->nointx`: INTx masking is broken; the pin is hidden and INTx kept disabled.
    pub(crate) nointx: bool,
    /// `vdev->has_dyn_msix`.
    pub(crate) has_dyn_msix: bool,
}

// ---- ioeventfds --------------------------------------------------------------------------------

/// One registered ioeventfd.
///
/// # Invariants
///
/// Once `vfio_virqfd_enable` succeeded, `virqfd` belongs to the VFIO core (read and written
/// only under its `virqfd_lock`), and the virqfd it names, live or shutting down, uses `self`
/// at this boxed address as its opaque pointer; `Drop` disables and flushes it before the
/// memory goes away. `dev` outlives the entry (entries are removed at close, before the state
/// is dropped).
pub(crate) struct Entry {
    pub(crate) dev: *const DeviceState,
    pub(crate) bar: usize,
    pub(crate) pos: u64,
    pub(crate) data: u64,
    pub(crate) count: usize,
    pub(crate) test_mem: bool,
    pub(crate) io: *mut c_void,
    pub(crate) virqfd: *mut bindings::virqfd,
}

// SAFETY: the entry is only changed under the ioeventfd mutex (dropped there), and only read by
// its virqfd's wake-up and thread, which its `Drop` waits for; the raw pointers are to objects
// that outlive it (see the invariants).
unsafe impl Send for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        // Unconditionally: the pointer may have been cleared by an eventfd close whose
        // shutdown (and pending write) is still queued; only the flush inside waits for it,
        // and it returns once every queued shutdown, so every write of this entry, finished.
        // The caller holds no lock a write takes (`features/ioeventfd.rs`).
        // SAFETY: `virqfd` is the VFIO core's slot for this entry (type invariant), read and
        // cleared by `vfio_virqfd_disable` under `virqfd_lock`; a null slot is allowed.
        unsafe { bindings::vfio_virqfd_disable(&mut self.virqfd) };
    }
}

/// The ioeventfds of an open device.
#[derive(Default)]
pub(crate) struct IoEventFds {
    pub(crate) list: KVec<KBox<Entry>>,
}

impl IoEventFds {
    /// Removes every ioeventfd (at close). Called without the state mutex (see
    /// `features/ioeventfd.rs`).
    pub(crate) fn clear(&mut self) {
        self.list = KVec::new();
    }
}

// ---- live migration ---------------------------------------------------------------------------

/// The migration state of one device (behind [`DeviceState::migration`]).
pub(crate) struct MigrationState {
    /// The `VFIO_DEVICE_STATE_*` user space sees.
    pub(crate) state: u32,
    /// The data fd of the current saving or resuming session, if any; the fd holds another
    /// reference, so the data lives until both the session and the fd are over.
    pub(crate) file: Option<Arc<DataFile>>,
}

impl Default for MigrationState {
    fn default() -> Self {
        Self {
            state: crate::logic::migration::STATE_RUNNING,
            file: None,
        }
    }
}

/// What a migration data fd is for, as its session goes on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataPhase {
    /// Saving while the device runs (PRE_COPY): reading to the end is a temporary end of
    /// stream (`-ENOMSG`), `VFIO_MIG_GET_PRECOPY_INFO` answers.
    PreCopy,
    /// Saving the stopped device (STOP_COPY): reading to the end returns 0.
    StopCopy,
    /// Resuming: user space writes the stream.
    Resuming,
    /// The session is over (state left, device reset or closed): every access is `-ENODEV`.
    Disabled,
}

/// The data behind a migration data fd. Knows nothing of its device, so the fd may outlive
/// the device's open, or the device itself, without pointing at freed memory.
///
/// Lifetime: one reference is the fd's (its `private_data`, dropped at its release), one the
/// device's session ([`MigrationState::file`], dropped when the session ends).
#[pin_data]
pub(crate) struct DataFile {
    /// Taken inside the migration lock when both are needed; copies to and from user space
    /// happen under it (never under the migration lock alone).
    #[pin]
    pub(crate) inner: Mutex<DataFileInner>,
}

/// The mutable part of a [`DataFile`].
pub(crate) struct DataFileInner {
    pub(crate) phase: DataPhase,
    /// The stream: saved frames, or what user space wrote so far.
    pub(crate) bytes: KVec<u8>,
    /// Bytes user space has read (saving).
    pub(crate) read: usize,
    /// Most bytes user space may write (resuming).
    pub(crate) limit: usize,
}

// ---- SR-IOV -------------------------------------------------------------------------------------

/// A PF's VF token (upstream `struct vfio_pci_vf_token`).
pub(crate) struct VfToken {
    pub(crate) uuid: [u8; UUID_SIZE],
    /// Open VFs of this PF.
    pub(crate) users: u32,
}

/// The SR-IOV part of a device's state.
#[pin_data]
pub(crate) struct Sriov {
    /// An SR-IOV PF (then `token` and the VF capture are in use).
    pub(crate) is_pf: bool,
    /// The VF token of a PF.
    #[pin]
    pub(crate) token: Mutex<VfToken>,
    /// SR-IOV enabled through `sriov_configure` (upstream `sriov_active`); written with the
    /// PF's device lock held.
    pub(crate) active: AtomicBool,
    /// A VF whose PF enabled SR-IOV through us: that PF's state (lifetime: see
    /// `features/sriov.rs`).
    pub(crate) pf: Option<NonNull<DeviceState>>,
    /// The VF capture notifier of a PF (`primitives/sriov_shims.c`), null for others or once
    /// stopped.
    pub(crate) capture: AtomicPtr<c_void>,
}

impl Sriov {
    /// Upstream `sriov_active`: set, under the state mutex, before VFs are enabled, so a
    /// power change that would take the PF out of D0 is refused from then on.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub(crate) fn pf(&self) -> Option<&DeviceState> {
        // SAFETY: the PF's state outlives this VF (`features/sriov.rs`).
        self.pf.map(|p| unsafe { p.as_ref() })
    }
}
