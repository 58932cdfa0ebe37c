// SPDX-License-Identifier: GPL-2.0
//! Interrupts to user space through eventfds: INTx, MSI, MSI-X, ERR and REQ, as upstream
//! `vfio_pci_intrs.c` delivers them. `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS`
//! arguments are checked by `logic::irq` (which turns a request into one [`Command`]); this
//! file carries the commands out and owns the interrupt handlers.
//!
//! # State
//!
//! Two parts, by who may touch them:
//!
//! - [`IrqState`], behind the interrupt gate [`crate::state::DeviceState::irq_gate`]
//!   (upstream's `igate`), a mutex of its own, apart from the state mutex (upstream's memory
//!   lock): the MSI/MSI-X vectors with their triggers and names, the INTx interrupt name, the
//!   ERR and REQ eventfds, and what `open` learnt (`nointx`, dynamic MSI-X). Only process
//!   context with the gate held reads or changes it.
//! - [`IrqShared`], in [`crate::state::DeviceState`] (pinned there, so its address is the
//!   `dev_id` of the INTx handler and the opaque of the unmask virqfd): what the INTx hard-IRQ
//!   handler and the virqfd callbacks need, which run in atomic context and cannot take the
//!   mutex. The INTx mask state (`ctx->masked`) is behind a spinlock taken with interrupts off
//!   (upstream's `irqlock`); the active mode, `pci_2_3`, `msi_qmax` and the INTx trigger are
//!   atomics only *written* with both the gate and the state mutex held, so a holder of either
//!   sees them stable (the config emulator, under the state mutex, reads the mode and may
//!   signal the trigger); the mirror of the virtual INTx-disable bit is written under the state
//!   mutex.
//!
//! MSI and MSI-X handlers get their eventfd as `dev_id` and touch nothing else, as upstream.
//!
//! # Lock order
//!
//! `device_lock` (held by the PCI core around `error_detected`) → interrupt gate → state mutex
//! → an eventfd's wait-queue lock (the virqfd unmask handler runs under it) → the INTx
//! spinlock → `pci_lock` (inside the PCI config accessors). Nothing holding the gate or the
//! state mutex waits for `device_lock` (resets only try-lock it), no handler or virqfd callback
//! takes either mutex, and no eventfd is signalled with the INTx spinlock held (the unmask
//! eventfd may be the trigger).
//!
//! `vfio_virqfd_disable` and `vfio_virqfd_flush_thread` flush the VFIO core's one, system-wide
//! virqfd clean-up workqueue, which may hold the shutdown of any device's ioeventfd, which
//! waits for that ioeventfd's write, which takes that device's state mutex. So they are called
//! with the gate held and the state mutex *not* held: the INTx unmask eventfd, trigger
//! replacement and INTx disable take the state mutex only around what the config emulator
//! reads (mode, trigger) and never across a flush. MSI/MSI-X changes hold the state mutex
//! throughout (it is the memory lock: the PCI core writes the MSI-X table in a BAR) and flush
//! nothing.
//!
//! # Lifetimes
//!
//! A trigger is an `eventfd_ctx` reference we own ([`EventFd`]). A replaced INTx trigger is
//! released only after `synchronize_irq` and a flush of the virqfd thread, so no handler still
//! uses it; an MSI trigger only after `free_irq`, which waits for its handler. Every interrupt
//! is freed, the vectors released and the unmask virqfd shut down by `disable` at close (before
//! config space is restored and the device disabled), so nothing fires into user space after
//! the fd closes, and nothing is left requested when [`IrqShared`] goes away with the device.

use crate::bindings;
use crate::logic::errno::Errno;
use crate::logic::irq::{self as l, Command, Mode, Single, SingleOp};
use crate::logic::pci_regs;
use crate::primitives::eventfd::{signal_raw, EventFd};
use crate::primitives::irq::IrqName;
use crate::primitives::pci_function::PciFunction;
use crate::state::DeviceState;
use crate::state::Inner;
use crate::state::{IrqShared, IrqState, MsiVector};
use core::ffi::{c_int, c_uint, c_void};
use core::ptr;
use core::sync::atomic::Ordering;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

// The shims in primitives/irq_shims.c.
extern "C" {
    fn vfio_pci_common_irq_disable_unlazy(irq: c_uint, set: bool);
    fn vfio_pci_common_msi_refresh(irq: c_uint);
}

/// `IRQ_NOTCONNECTED`: the platform has no legacy interrupt for the function.
const IRQ_NOTCONNECTED: u32 = 1 << 31;
const PCI_COMMAND: i32 = pci_regs::COMMAND as i32;
use pci_regs::{
    COMMAND_INTX_DISABLE as PCI_COMMAND_INTX_DISABLE, COMMAND_MEMORY as PCI_COMMAND_MEMORY,
};

fn errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

// ---- the state -----------------------------------------------------------------------------

impl IrqShared {
    pub(crate) fn mode(&self) -> Mode {
        match u32::from(self.mode.load(Ordering::Acquire)) {
            l::INTX => Mode::Intx,
            l::MSI => Mode::Msi,
            l::MSIX => Mode::Msix,
            _ => Mode::None,
        }
    }

    /// Only with both the gate and the state mutex held.
    fn set_mode(&self, m: Mode) {
        self.mode.store(m.index() as u8, Ordering::Release);
    }

    fn pci_2_3(&self) -> bool {
        self.pci_2_3.load(Ordering::Relaxed)
    }

    /// `vdev->msi_qmax`, for the virtual MSI capability.
    pub(crate) fn msi_qmax(&self) -> u8 {
        self.msi_qmax.load(Ordering::Relaxed)
    }

    fn unmask_slot(&self) -> *mut *mut bindings::virqfd {
        self.unmask.get()
    }

    /// `vfio_send_intx_eventfd`: signal the INTx trigger unless INTx is off or virtually
    /// disabled. Any context; never with the INTx spinlock held.
    fn send_intx(&self) {
        if self.mode() != Mode::Intx || self.virq_disabled.load(Ordering::Relaxed) {
            return;
        }
        let t = self.intx_trigger.load(Ordering::Acquire);
        if !t.is_null() {
            // SAFETY: a trigger is released only after `synchronize_irq` and a virqfd flush
            // (hard-IRQ and virqfd readers), and replaced only with both the gate and the
            // state mutex held: the other callers hold one of them.
            unsafe { signal_raw(t) };
        }
    }

    /// `__vfio_pci_intx_mask`: whether this masked INTx. With the gate or the state mutex held.
    pub(crate) fn intx_mask(&self, pdev: &PciFunction) -> bool {
        let mut masked = self.intx_masked.lock();
        // Masking can come from the virtual COMMAND bit while INTx is not in use: then the
        // physical bit just follows the virtual one.
        if self.mode() != Mode::Intx {
            if self.pci_2_3() {
                pdev.intx(false);
            }
            return false;
        }
        if *masked {
            return false;
        }
        if self.pci_2_3() {
            pdev.intx(false);
        } else {
            // SAFETY: INTx is requested on this line (mode is INTx, stable under the lock we
            // hold).
            unsafe { bindings::disable_irq_nosync(pdev.irq()) };
        }
        *masked = true;
        true
    }

    /// `vfio_pci_intx_unmask_handler`: unmask INTx; `true` when an interrupt was pending, so
    /// the caller must signal the trigger instead. Atomic context allowed.
    fn intx_unmask_handler(&self, pdev: &PciFunction) -> bool {
        let mut masked = self.intx_masked.lock();
        if self.mode() != Mode::Intx {
            if self.pci_2_3() {
                pdev.intx(true);
            }
            return false;
        }
        let mut pending = false;
        if *masked && !self.virq_disabled.load(Ordering::Relaxed) {
            if self.pci_2_3() {
                pending = !pdev.check_and_unmask_intx();
            } else {
                // SAFETY: INTx is requested and was disabled by us (masked).
                unsafe { bindings::enable_irq(pdev.irq()) };
            }
            *masked = pending;
        }
        pending
    }

    /// `__vfio_pci_intx_unmask`. With the gate or the state mutex held.
    pub(crate) fn intx_unmask(&self, pdev: &PciFunction) {
        if self.intx_unmask_handler(pdev) {
            self.send_intx();
        }
    }

    /// The config emulator changed its `virq_disabled`.
    pub(crate) fn set_virq_disabled(&self, v: bool) {
        self.virq_disabled.store(v, Ordering::Relaxed);
    }
}

// ---- open and close ------------------------------------------------------------------------

/// The interrupt part of `vfio_pci_core_enable`: how INTx can be masked, and whether MSI-X
/// vectors can be added later. With the gate and the state mutex held, nothing enabled.
pub(crate) fn open(dev: &DeviceState, st: &mut IrqState) {
    let pdev = &dev.pdev;
    let (vendor, device) = pdev.ids();
    // With `nointxmask`, neither the quirk list nor PCI 2.3 masking: INTx is masked at the
    // interrupt controller (upstream skips both the same way).
    let nointxmask = crate::primitives::params::nointxmask();
    st.nointx = !nointxmask && l::nointx_quirk(vendor, device);
    let pci_2_3 = if nointxmask {
        false
    } else if st.nointx {
        crate::primitives::pci_function::dev_notice(
            pdev,
            format_args!("Masking broken INTx support\n"),
        );
        pdev.intx(false);
        false
    } else {
        pdev.intx_mask_supported()
    };
    dev.irq.pci_2_3.store(pci_2_3, Ordering::Relaxed);
    let cmd = pdev.read_config_word(PCI_COMMAND);
    if pci_2_3 && cmd & PCI_COMMAND_INTX_DISABLE != 0 {
        let _ = pdev.write_config_word(PCI_COMMAND, cmd & !PCI_COMMAND_INTX_DISABLE);
    }
    st.has_dyn_msix = pdev.msix_cap() != 0 && pdev.msix_can_alloc_dyn();
    dev.irq.set_virq_disabled(false);
}

/// The interrupt part of `vfio_pci_core_disable`: whatever mode is active goes off, as upstream
/// does with `SET_IRQS(DATA_NONE | TRIGGER, irq_type, 0, 0)`. With the gate held and the state
/// mutex not held (INTx disable flushes the virqfd workqueue: see the module documentation).
pub(crate) fn disable(dev: &DeviceState, st: &mut IrqState) {
    match dev.irq.mode() {
        Mode::Intx => intx_disable(dev, st),
        Mode::Msi => msi_disable(dev, st, false, &dev.inner.lock()),
        Mode::Msix => msi_disable(dev, st, true, &dev.inner.lock()),
        Mode::None => {}
    }
    let mut inner = dev.inner.lock();
    inner.config.virq_disabled = false;
    dev.irq.set_virq_disabled(false);
}

/// `vfio_pci_core_close_device`'s last step: ERR and REQ go with the user.
pub(crate) fn release_triggers(st: &mut IrqState) {
    st.err = None;
    st.req = None;
}

// ---- ERR and REQ ---------------------------------------------------------------------------

/// `vfio_pci_core_aer_err_detected`: tell user space, if it listens.
pub(crate) fn error_detected(dev: &DeviceState) {
    if let Some(e) = &dev.irq_gate.lock().err {
        e.signal();
    }
}

/// `vfio_pci_core_request`: the device is being unbound while user space holds it; ask it to
/// let go (called every 10 s by the VFIO core until it does).
pub(crate) fn request(dev: &DeviceState, count: u32) {
    let irqs = dev.irq_gate.lock();
    match &irqs.req {
        Some(r) => {
            if count % 10 == 0 {
                crate::primitives::pci_function::dev_notice(
                    &dev.pdev,
                    format_args!("Relaying device request to user (#{count})\n"),
                );
            }
            r.signal();
        }
        None if count == 0 => crate::primitives::pci_function::dev_notice(
            &dev.pdev,
            format_args!("No device request channel registered, blocked until released by user\n"),
        ),
        None => {}
    }
}

// ---- ioctls --------------------------------------------------------------------------------

/// What `GET_IRQ_INFO` and `SET_IRQS` check `index` against. With the gate held (the state
/// mutex is taken for the virtual interrupt pin, after the gate in the lock order).
///
/// Only what `index` needs is looked up, as upstream's `vfio_pci_get_irq_count` does: the
/// device's MSI or MSI-X Message Control for those indexes, the pin for INTx; the other
/// fields are left empty, which no answer for `index` reads. (Reading both flags for every
/// call cost a device config read per INTx unmask: `cargo xtask bench --profile irq-intx`.)
fn caps(dev: &DeviceState, st: &IrqState, index: u32) -> l::IrqCaps {
    let pdev = &dev.pdev;
    let flags = |cap: u8| (cap != 0).then(|| pdev.read_config_word(i32::from(cap) + 2));
    l::IrqCaps {
        intx_pin: if index == l::INTX {
            dev.inner.lock().config.interrupt_pin()
        } else {
            0
        },
        msi_flags: if index == l::MSI {
            flags(pdev.msi_cap())
        } else {
            None
        },
        msix_flags: if index == l::MSIX {
            flags(pdev.msix_cap())
        } else {
            None
        },
        pcie: pdev.is_pcie(),
        dyn_msix: st.has_dyn_msix,
    }
}

/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub(crate) fn get_irq_info(dev: &DeviceState, arg: usize) -> Result<i64> {
    let mut raw = [0u8; l::IrqInfo::MINSZ];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let query = l::IrqInfo::from_user(&raw);
    let c = caps(dev, &dev.irq_gate.lock(), query.index);
    let info = query.answer(&c).map_err(errno)?;
    UserSlice::new(arg, raw.len())
        .writer()
        .write_slice(&info.to_bytes())?;
    Ok(0)
}

/// `VFIO_DEVICE_SET_IRQS`: returns what upstream returns, including a positive vector count
/// when fewer MSI/MSI-X vectors than asked for could be allocated.
pub(crate) fn set_irqs(dev: &DeviceState, arg: usize) -> Result<i64> {
    let mut raw = [0u8; l::IrqSet::MINSZ];
    UserSlice::new(arg, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let hdr = l::IrqSet::from_user(&raw);
    // Like upstream, the vector count is read before taking the lock (it only changes at open).
    let max = caps(dev, &dev.irq_gate.lock(), hdr.index).count(hdr.index);
    let size = hdr.validate(max).map_err(errno)?;
    let mut data = KVec::new();
    if size > 0 {
        UserSlice::new(arg + l::IrqSet::MINSZ, size)
            .reader()
            .read_all(&mut data, GFP_KERNEL)?;
    }
    let mut gate = dev.irq_gate.lock();
    let st = &mut *gate;
    let status = l::IrqStatus {
        mode: dev.irq.mode(),
        err_set: st.err.is_some(),
        req_set: st.req.is_some(),
        pcie: dev.pdev.is_pcie(),
    };
    let cmd = l::plan(&hdr, &data, &status).map_err(errno)?;
    execute(dev, st, cmd)
}

/// Carries out one checked request, with the gate held and the state mutex not held: each
/// command takes the state mutex only where the module documentation says.
fn execute(dev: &DeviceState, st: &mut IrqState, cmd: Command<'_>) -> Result<i64> {
    let pdev = &dev.pdev;
    let sh = &dev.irq;
    match cmd {
        Command::Noop => {}
        Command::IntxMask => {
            sh.intx_mask(pdev);
        }
        Command::IntxUnmask => sh.intx_unmask(pdev),
        Command::IntxUnmaskFd(fd) => {
            // SAFETY: `dev` lives until release, after close has disabled the virqfd; the
            // callbacks only touch `dev.irq` and `dev.pdev`; the slot is ours (see `unmask`).
            let ret = unsafe {
                bindings::vfio_virqfd_enable(
                    ptr::from_ref(dev).cast_mut().cast(),
                    Some(virqfd_unmask),
                    Some(virqfd_send),
                    ptr::null_mut(),
                    sh.unmask_slot(),
                    fd,
                )
            };
            if ret < 0 {
                return Err(Error::from_errno(ret));
            }
        }
        // SAFETY: the slot is ours; disabling an unset virqfd does nothing.
        Command::IntxUnmaskFdOff => unsafe { bindings::vfio_virqfd_disable(sh.unmask_slot()) },
        Command::IntxSetTrigger(fd) => {
            let new = fd.map(EventFd::from_fd).transpose()?;
            intx_set_trigger(dev, new);
        }
        Command::IntxEnable(fd) => {
            let trigger = fd.map(EventFd::from_fd).transpose()?;
            intx_enable(dev, st, &dev.inner.lock(), trigger)?;
        }
        Command::IntxDisable => intx_disable(dev, st),
        Command::IntxSignal => sh.send_intx(),
        Command::MsiDisable { msix } => msi_disable(dev, st, msix, &dev.inner.lock()),
        Command::MsiSetBlock {
            msix,
            enable,
            start,
            count,
            fds,
        } => {
            let mem = dev.inner.lock();
            if enable {
                let ret = msi_enable(dev, st, start + count, msix, &mem);
                if ret != 0 {
                    return ret_to_result(ret);
                }
            }
            let ret = msi_set_block(dev, st, start, count, fds, msix, &mem);
            if ret != 0 && enable {
                msi_disable(dev, st, msix, &mem);
            }
            return ret_to_result(ret);
        }
        Command::MsiSignal {
            start,
            count,
            bools,
        } => {
            for i in 0..count {
                let Some(Some(v)) = st.vectors.get((start + i) as usize) else {
                    continue;
                };
                if bools.is_none_or(|b| b.get(i as usize).is_some_and(|&x| x != 0)) {
                    v.trigger.signal();
                }
            }
        }
        Command::Single(which, op) => {
            let slot = match which {
                Single::Err => &mut st.err,
                Single::Req => &mut st.req,
            };
            match op {
                SingleOp::Signal => {
                    if let Some(e) = slot {
                        e.signal();
                    }
                }
                SingleOp::Clear => *slot = None,
                SingleOp::Set(fd) => *slot = Some(EventFd::from_fd(fd)?),
            }
        }
    }
    Ok(0)
}

/// Upstream's `int` results: negative errno, 0, or a positive count passed to user space.
fn ret_to_result(ret: i32) -> Result<i64> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret.into())
    }
}

// ---- INTx ----------------------------------------------------------------------------------

/// `vfio_intx_handler`.
unsafe extern "C" fn intx_handler(_irq: c_int, dev_id: *mut c_void) -> bindings::irqreturn_t {
    // SAFETY: `dev_id` is the `DeviceState` we requested the interrupt with; it outlives the
    // registration (freed at close, before release).
    let dev = unsafe { &*dev_id.cast::<DeviceState>() };
    let sh = &dev.irq;
    let handled = {
        let mut masked = sh.intx_masked.lock();
        if !sh.pci_2_3() {
            // SAFETY: our exclusive line, requested.
            unsafe { bindings::disable_irq_nosync(dev.pdev.irq()) };
            *masked = true;
            true
        } else if !*masked && dev.pdev.check_and_mask_intx() {
            // Not masked and asserting: ours (the line may be shared).
            *masked = true;
            true
        } else {
            false
        }
    };
    if handled {
        sh.send_intx();
        bindings::irqreturn_IRQ_HANDLED
    } else {
        bindings::irqreturn_IRQ_NONE
    }
}

/// The virqfd handler: unmask when the unmask eventfd fires (under its wait-queue lock).
unsafe extern "C" fn virqfd_unmask(opaque: *mut c_void, _data: *mut c_void) -> c_int {
    // SAFETY: `opaque` is our `DeviceState` (see `IntxUnmaskFd`), alive while the virqfd is.
    let dev = unsafe { &*opaque.cast::<DeviceState>() };
    dev.irq.intx_unmask_handler(&dev.pdev).into()
}

/// The virqfd thread: the interrupt was pending at unmask; deliver it.
unsafe extern "C" fn virqfd_send(opaque: *mut c_void, _data: *mut c_void) {
    // SAFETY: as in `virqfd_unmask`.
    let dev = unsafe { &*opaque.cast::<DeviceState>() };
    dev.irq.send_intx();
}

fn dev_id(dev: &DeviceState) -> *mut c_void {
    ptr::from_ref(dev).cast_mut().cast()
}

/// `vfio_intx_enable`, taking ownership of `trigger`. With the gate and the state mutex held
/// (`inner`): the mode and the trigger change, and nothing here flushes.
fn intx_enable(
    dev: &DeviceState,
    st: &mut IrqState,
    inner: &Inner,
    trigger: Option<EventFd>,
) -> Result {
    let pdev = &dev.pdev;
    let sh = &dev.irq;
    if sh.mode() != Mode::None {
        return Err(EINVAL);
    }
    let irq = pdev.irq();
    if irq == 0 || irq == IRQ_NOTCONNECTED {
        return Err(ENODEV);
    }
    let name = IrqName::new(pdev, c"intx", -1)?;
    // SAFETY: no INTx handler or virqfd exists (mode none), so nobody reads the old value,
    // which is null.
    drop(unsafe {
        EventFd::from_raw(sh.intx_trigger.swap(
            trigger.map_or(ptr::null_mut(), EventFd::into_raw),
            Ordering::AcqRel,
        ))
    });
    // The initial mask state follows the virtual INTx-disable bit; from here on writes of that
    // bit mask and unmask directly.
    let masked = inner.config.virq_disabled;
    *sh.intx_masked.lock() = masked;
    let pci_2_3 = sh.pci_2_3();
    let flags = if pci_2_3 {
        pdev.intx(!masked);
        bindings::IRQF_SHARED
    } else if masked {
        bindings::IRQF_NO_AUTOEN
    } else {
        0
    };
    // The handler reads the mode: it must be set before the interrupt is requested.
    sh.set_mode(Mode::Intx);
    if !pci_2_3 {
        // SAFETY: a valid interrupt number.
        unsafe { vfio_pci_common_irq_disable_unlazy(irq, true) };
    }
    // SAFETY: `intx_handler` only touches `dev.irq` and `dev.pdev` through `dev_id`; `dev` and
    // `name` outlive the registration (freed in `intx_disable`, at the latest at close).
    let ret = unsafe {
        bindings::request_threaded_irq(
            irq,
            Some(intx_handler),
            None,
            flags as usize,
            name.as_ptr(),
            dev_id(dev),
        )
    };
    if ret != 0 {
        if !pci_2_3 {
            // SAFETY: as above.
            unsafe { vfio_pci_common_irq_disable_unlazy(irq, false) };
        }
        sh.set_mode(Mode::None);
        // SAFETY: the interrupt was not requested, so nothing else holds the trigger.
        drop(unsafe { EventFd::from_raw(sh.intx_trigger.swap(ptr::null_mut(), Ordering::AcqRel)) });
        return Err(Error::from_errno(ret));
    }
    st.intx_name = Some(name);
    Ok(())
}

/// `vfio_intx_set_signal`: replace the trigger of active INTx. With the gate held and the
/// state mutex not held.
fn intx_set_trigger(dev: &DeviceState, new: Option<EventFd>) {
    let sh = &dev.irq;
    // Swapped under the state mutex: a config write signalling the trigger under it has
    // finished with the old one when we get the mutex, and later ones see the new one.
    let old = {
        let _inner = dev.inner.lock();
        sh.intx_trigger.swap(
            new.map_or(ptr::null_mut(), EventFd::into_raw),
            Ordering::AcqRel,
        )
    };
    if !old.is_null() {
        // SAFETY: INTx is requested on this line (mode INTx, stable under the gate); the slot
        // is ours. The flush runs without the state mutex (module documentation).
        unsafe {
            bindings::synchronize_irq(dev.pdev.irq());
            bindings::vfio_virqfd_flush_thread(sh.unmask_slot());
        }
        // SAFETY: no handler or virqfd thread can still be using `old` (synchronised above),
        // and no reader under either mutex can (the gate is ours, the swap was under the
        // state mutex).
        drop(unsafe { EventFd::from_raw(old) });
    }
}

/// `vfio_intx_disable`. With the gate held and the state mutex not held.
fn intx_disable(dev: &DeviceState, st: &mut IrqState) {
    let sh = &dev.irq;
    let irq = dev.pdev.irq();
    // SAFETY: the slot is ours; afterwards no virqfd callback runs. The flush inside runs
    // without the state mutex (module documentation).
    unsafe { bindings::vfio_virqfd_disable(sh.unmask_slot()) };
    // The mode and the trigger change under the state mutex too (config writes read them).
    let _inner = dev.inner.lock();
    // SAFETY: the interrupt we requested with `dev_id(dev)` (mode INTx); waits for a running
    // handler.
    unsafe { bindings::free_irq(irq, dev_id(dev)) };
    if !sh.pci_2_3() {
        // SAFETY: a valid interrupt number.
        unsafe { vfio_pci_common_irq_disable_unlazy(irq, false) };
    }
    sh.set_mode(Mode::None);
    // SAFETY: no handler or virqfd is left to read the trigger, and readers under either
    // mutex see mode none (the config path signals only in INTx mode) from here on.
    drop(unsafe { EventFd::from_raw(sh.intx_trigger.swap(ptr::null_mut(), Ordering::AcqRel)) });
    st.intx_name = None;
}

// ---- MSI and MSI-X -------------------------------------------------------------------------

/// `vfio_msihandler`.
unsafe extern "C" fn msi_handler(_irq: c_int, arg: *mut c_void) -> bindings::irqreturn_t {
    // SAFETY: `arg` is the trigger the interrupt was requested with; it is released only after
    // `free_irq`.
    unsafe { signal_raw(arg.cast()) };
    bindings::irqreturn_IRQ_HANDLED
}

/// `vfio_pci_memory_lock_and_enable`: MSI-X tables live in a BAR, so the PCI core needs memory
/// decode on while it programs them, whatever user space set. Returns COMMAND to restore.
/// Every caller holds the state mutex, which is also the memory lock (see `bar.rs`), so no BAR
/// access or fault sees the temporary decode change: the MSI functions below take its guard as
/// `_mem` to say so.
fn memory_enable(pdev: &PciFunction) -> u16 {
    let cmd = pdev.read_config_word(PCI_COMMAND);
    if cmd & PCI_COMMAND_MEMORY == 0 {
        let _ = pdev.write_config_word(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY);
    }
    cmd
}

/// `vfio_pci_memory_unlock_and_restore`.
fn memory_restore(pdev: &PciFunction, cmd: u16) {
    let _ = pdev.write_config_word(PCI_COMMAND, cmd);
}

/// `vfio_msi_enable`: 0, a negative errno, or the (smaller) number of vectors available.
fn msi_enable(dev: &DeviceState, st: &mut IrqState, nvec: u32, msix: bool, _mem: &Inner) -> i32 {
    let pdev = &dev.pdev;
    if dev.irq.mode() != Mode::None {
        return EINVAL.to_errno();
    }
    let cmd = memory_enable(pdev);
    let ret = pdev.alloc_irq_vectors(nvec, msix);
    if i64::from(ret) < i64::from(nvec) {
        if ret > 0 {
            pdev.free_irq_vectors();
        }
        memory_restore(pdev, cmd);
        return ret;
    }
    memory_restore(pdev, cmd);
    if dev.msi_bus_master {
        // A mediated device whose DMA the variant mediates: its messages need bus mastering.
        pdev.set_master();
    }
    st.vectors = KVec::new();
    dev.irq.set_mode(if msix { Mode::Msix } else { Mode::Msi });
    if !msix {
        dev.irq.msi_qmax.store(l::msi_qmax(nvec), Ordering::Relaxed);
    }
    0
}

/// `vfio_msi_alloc_irq`: the Linux interrupt of `vector`, allocating it when MSI-X can grow.
fn msi_alloc_irq(dev: &DeviceState, st: &IrqState, vector: u32, msix: bool, _mem: &Inner) -> i32 {
    let pdev = &dev.pdev;
    let irq = pdev.irq_vector(vector);
    if irq == 0 {
        return EINVAL.to_errno();
    }
    if irq > 0 || !msix || !st.has_dyn_msix {
        return irq;
    }
    let cmd = memory_enable(pdev);
    let irq = pdev.msix_alloc_irq_at(vector);
    memory_restore(pdev, cmd);
    irq
}

/// `vfio_msi_set_vector_signal`: detach `vector`'s trigger, then attach the eventfd `fd` if
/// `fd >= 0`. The Linux interrupt stays allocated until MSI/MSI-X is disabled.
fn msi_set_vector_signal(
    dev: &DeviceState,
    st: &mut IrqState,
    vector: u32,
    fd: i32,
    msix: bool,
    mem: &Inner,
) -> i32 {
    let pdev = &dev.pdev;
    let slot = vector as usize;
    let mut irq = EINVAL.to_errno();
    if let Some(v) = st.vectors.get_mut(slot).and_then(Option::take) {
        irq = v.irq as i32;
        let cmd = memory_enable(pdev);
        // SAFETY: requested by us with this trigger as `dev_id`; waits for its handler.
        unsafe { bindings::free_irq(v.irq, v.trigger.as_ptr().cast()) };
        memory_restore(pdev, cmd);
        drop(v);
    }
    if fd < 0 {
        return 0;
    }
    if irq < 0 {
        irq = msi_alloc_irq(dev, st, vector, msix, mem);
        if irq < 0 {
            return irq;
        }
    }
    while st.vectors.len() <= slot {
        if st.vectors.push(None, GFP_KERNEL).is_err() {
            return ENOMEM.to_errno();
        }
    }
    let kind = if msix { c"msix" } else { c"msi" };
    let name = match IrqName::new(pdev, kind, vector as i32) {
        Ok(n) => n,
        Err(e) => return e.to_errno(),
    };
    let trigger = match EventFd::from_fd(fd) {
        Ok(t) => t,
        Err(e) => return e.to_errno(),
    };
    let cmd = memory_enable(pdev);
    if msix {
        // The vector may have been allocated earlier: rewrite its message in case a reset
        // behind our back cleared it.
        // SAFETY: `irq` is an allocated MSI-X interrupt of this device.
        unsafe { vfio_pci_common_msi_refresh(irq as u32) };
    }
    // SAFETY: `msi_handler` only signals `dev_id`, our trigger reference, released only after
    // `free_irq`; `name` lives in the vector as long as the registration.
    let ret = unsafe {
        bindings::request_threaded_irq(
            irq as u32,
            Some(msi_handler),
            None,
            0,
            name.as_ptr(),
            trigger.as_ptr().cast(),
        )
    };
    memory_restore(pdev, cmd);
    if ret != 0 {
        return ret;
    }
    if let Some(s) = st.vectors.get_mut(slot) {
        *s = Some(MsiVector {
            irq: irq as u32,
            trigger,
            _name: name,
        });
    }
    0
}

/// `vfio_msi_set_block`: on failure, every vector from `start` up to the failing one is
/// detached (as upstream).
fn msi_set_block(
    dev: &DeviceState,
    st: &mut IrqState,
    start: u32,
    count: u32,
    fds: &[u8],
    msix: bool,
    mem: &Inner,
) -> i32 {
    let mut ret = 0;
    let mut j = start;
    for i in 0..count {
        if ret != 0 {
            break;
        }
        let fd = if fds.is_empty() {
            -1
        } else {
            l::fd_at(fds, i as usize)
        };
        ret = msi_set_vector_signal(dev, st, j, fd, msix, mem);
        j += 1;
    }
    if ret != 0 {
        for i in start..j {
            msi_set_vector_signal(dev, st, i, -1, msix, mem);
        }
    }
    ret
}

/// `vfio_msi_disable`.
fn msi_disable(dev: &DeviceState, st: &mut IrqState, msix: bool, mem: &Inner) {
    let pdev = &dev.pdev;
    for i in 0..st.vectors.len() {
        msi_set_vector_signal(dev, st, i as u32, -1, msix, mem);
    }
    st.vectors = KVec::new();
    let cmd = memory_enable(pdev);
    pdev.free_irq_vectors();
    memory_restore(pdev, cmd);
    if dev.msi_bus_master {
        pdev.clear_master();
    }
    // Disabling MSI re-enables INTx in COMMAND; keep it off for NoINTx devices.
    if st.nointx {
        pdev.intx(false);
    }
    dev.irq.set_mode(Mode::None);
}
