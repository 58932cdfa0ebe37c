// SPDX-License-Identifier: GPL-2.0
//! Slot and bus resets of a dev_set (devices that share one), as upstream `vfio_pci_core.c`:
//! `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`, `VFIO_DEVICE_PCI_HOT_RESET` (with proof of ownership
//! of every affected device through group fds, or through the caller's iommufd for a
//! cdev-opened device), and the reset when the last open device of a set that needs one closes
//! (`vfio_pci_dev_set_try_reset`). Argument rules are in `logic::lifecycle`.
//!
//! dev_sets. Each device joins a set at registration (`primitives/dev_set_shims.c`): its own on a root bus or as
//! a VF, else its slot's if the slot can be reset, else its bus's. The keys are those objects'
//! addresses with the low bit set, so our sets never mix with upstream vfio-pci's (which
//! treats every member of its sets as its own struct): see `primitives/dev_set_shims.c`. Every member of one of
//! our sets is therefore a [`DeviceState`] of ours, possibly of different variants.
//!
//! Locking: the dev_set lock (the VFIO core's, also held around open and close) → each
//! member's state mutex (the memory lock), in list order. Nothing takes the dev_set lock with
//! a state mutex held, and only this file holds more than one state mutex, always under the
//! dev_set lock, so the order cannot invert.

use crate::bindings;
use crate::logic::lifecycle::{self as lc, HotResetHdr, HDR_MINSZ};
use crate::primitives::dev_set::SetLock;
use crate::state::{DeviceState, VfioPciDevice};
use core::ffi::{c_int, c_void};
use core::sync::atomic::Ordering;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_cdev_opened(vdev: *mut bindings::vfio_device) -> bool;
    fn vfio_pci_common_fill_devs(
        vdev: *mut bindings::vfio_device,
        pdev: *mut bindings::pci_dev,
        slot: bool,
        devs: *mut bindings::vfio_pci_dependent_device,
        n: u32,
        count: *mut u32,
        flags: *mut u32,
    ) -> c_int;
    fn vfio_pci_common_dev_set_open_count(vdev: *mut bindings::vfio_device) -> u32;
    fn vfio_pci_common_dev_set_for_each(
        vdev: *mut bindings::vfio_device,
        f: unsafe extern "C" fn(member: *mut bindings::vfio_device, data: *mut c_void) -> c_int,
        data: *mut c_void,
    ) -> c_int;
    fn vfio_pci_common_dev_set_resettable(
        vdev: *mut bindings::vfio_device,
    ) -> *mut bindings::pci_dev;
    fn vfio_pci_common_group_files_get(
        fds: *const i32,
        n: u32,
        files: *mut *mut bindings::file,
    ) -> c_int;
    fn vfio_pci_common_files_put(files: *mut *mut bindings::file, n: u32);
    fn vfio_pci_common_dev_in_files(
        vdev: *mut bindings::vfio_device,
        files: *mut *mut bindings::file,
        n: u32,
    ) -> bool;
    fn vfio_pci_common_owned_by_ictx(
        vdev: *mut bindings::vfio_device,
        caller: *mut bindings::vfio_device,
    ) -> bool;
}

fn errno(e: crate::logic::errno::Errno) -> Error {
    Error::from_errno(-e.0)
}

fn read_hdr(arg: usize) -> Result<HotResetHdr> {
    let mut raw = [0u8; HDR_MINSZ];
    UserSlice::new(arg, HDR_MINSZ)
        .reader()
        .read_slice(&mut raw)?;
    Ok(HotResetHdr::decode(&raw))
}

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
pub(crate) fn get_info(dev: &DeviceState, arg: usize) -> Result {
    let hdr = read_hdr(arg)?;
    lc::info_check(&hdr).map_err(errno)?;
    let pdev = &dev.pdev;
    let slot = pdev.reset_scope()?;
    let count = pdev.count_reset_devs(slot)?;
    if count == 0 {
        // Upstream WARNs: the device itself is always affected.
        return Err(ERANGE);
    }
    let n = match lc::info_plan(&hdr, count) {
        lc::InfoPlan::TooSmall(h) => {
            UserSlice::new(arg, HDR_MINSZ)
                .writer()
                .write_slice(&h.to_bytes())?;
            return Err(errno(lc::INFO_TOO_SMALL));
        }
        lc::InfoPlan::Fill(n) => n,
    };
    // `vfio_pci_dependent_device` is two u32-aligned words.
    let mut devs: KVec<[u32; 2]> = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        devs.push([0; 2], GFP_KERNEL)?;
    }
    let (mut filled, mut flags) = (0u32, 0u32);
    // SAFETY: the device is registered (we are in one of its ops); `devs` has room for `n`
    // entries of `vfio_pci_dependent_device` (8 bytes, 4-aligned); the outputs are locals.
    kernel::error::to_result(unsafe {
        vfio_pci_common_fill_devs(
            dev.vfio_device(),
            pdev.as_raw(),
            slot,
            devs.as_mut_ptr().cast(),
            n,
            &mut filled,
            &mut flags,
        )
    })?;
    let filled = (filled as usize).min(devs.len());
    let mut bytes: KVec<u8> = KVec::with_capacity(filled * lc::DEPENDENT_SIZE, GFP_KERNEL)?;
    for d in devs.iter().take(filled) {
        bytes.extend_from_slice(&d[0].to_ne_bytes(), GFP_KERNEL)?;
        bytes.extend_from_slice(&d[1].to_ne_bytes(), GFP_KERNEL)?;
    }
    UserSlice::new(arg + HDR_MINSZ, bytes.len())
        .writer()
        .write_slice(&bytes)?;
    let out = HotResetHdr {
        argsz: hdr.argsz,
        flags,
        count: filled as u32,
    };
    UserSlice::new(arg, HDR_MINSZ)
        .writer()
        .write_slice(&out.to_bytes())
}

/// How the caller proves it owns every device a hot reset affects.
enum Proof<'a> {
    /// Group files: each affected device must be in one of them.
    Groups(&'a mut [*mut bindings::file]),
    /// The caller's iommufd (its own device's binding).
    Iommufd,
}

/// `VFIO_DEVICE_PCI_HOT_RESET`.
pub(crate) fn hot_reset(dev: &DeviceState, arg: usize) -> Result {
    let hdr = read_hdr(arg)?;
    let vdev = dev.vfio_device();
    // SAFETY: the device is registered (we are in one of its ops).
    let cdev = unsafe { vfio_pci_common_cdev_opened(vdev) };
    let form = lc::reset_form(&hdr, cdev).map_err(errno)?;
    let pdev = &dev.pdev;
    let slot = pdev.reset_scope()?;
    let n = match form {
        lc::ResetForm::Iommufd => return dev_set_hot_reset(dev, Proof::Iommufd),
        lc::ResetForm::Groups(n) => n,
    };
    let affected = pdev.count_reset_devs(slot)?;
    lc::groups_fit(n, affected).map_err(errno)?;
    let mut raw: KVec<u8> = KVec::with_capacity(n as usize * 4, GFP_KERNEL)?;
    for _ in 0..n as usize * 4 {
        raw.push(0, GFP_KERNEL)?;
    }
    UserSlice::new(arg + HDR_MINSZ, raw.len())
        .reader()
        .read_slice(&mut raw)?;
    let mut fds: KVec<i32> = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for c in raw.chunks_exact(4) {
        fds.push(i32::from_ne_bytes([c[0], c[1], c[2], c[3]]), GFP_KERNEL)?;
    }
    let mut files: KVec<*mut bindings::file> = KVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        files.push(core::ptr::null_mut(), GFP_KERNEL)?;
    }
    // SAFETY: `fds` and `files` hold `n` entries each; on success every file is a referenced
    // group file, put below.
    kernel::error::to_result(unsafe {
        vfio_pci_common_group_files_get(fds.as_ptr(), n, files.as_mut_ptr())
    })?;
    let ret = dev_set_hot_reset(dev, Proof::Groups(&mut files));
    // SAFETY: the `n` references taken above.
    unsafe { vfio_pci_common_files_put(files.as_mut_ptr(), n) };
    ret
}

unsafe extern "C" fn collect(member: *mut bindings::vfio_device, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `KVec` passed by `members`, exclusively ours for the walk.
    let v = unsafe { &mut *data.cast::<KVec<*const DeviceState>>() };
    // SAFETY: every member of one of our sets is one of our devices (tagged keys, see the
    // module docs), initialised before it joined the set and alive until it leaves it.
    let d = unsafe { VfioPciDevice::from_vdev(member) };
    match v.push(core::ptr::from_ref(d), GFP_KERNEL) {
        Ok(()) => 0,
        Err(_) => ENOMEM.to_errno(),
    }
}

/// The members of `vdev`'s set, in list order. The caller holds the set's lock, which keeps
/// every member in the set (and so alive) until it is dropped.
fn members(vdev: *mut bindings::vfio_device) -> Result<KVec<*const DeviceState>> {
    let mut v: KVec<*const DeviceState> = KVec::new();
    // SAFETY: the caller holds the set's lock; `collect` gets our `KVec` as `data`.
    kernel::error::to_result(unsafe {
        vfio_pci_common_dev_set_for_each(vdev, collect, core::ptr::from_mut(&mut v).cast())
    })?;
    Ok(v)
}

/// # Safety
///
/// `p` must come from [`members`] and the set's lock must still be held.
unsafe fn member<'a>(p: *const DeviceState) -> &'a DeviceState {
    // SAFETY: see the function's safety section.
    unsafe { &*p }
}

/// Runtime-PM references on every member, dropped with the value
/// (`vfio_pci_dev_set_pm_runtime_get`).
struct PmRefs<'a>(&'a [*const DeviceState], usize);

impl<'a> PmRefs<'a> {
    /// # Safety
    ///
    /// As for [`member`], for as long as the value lives.
    unsafe fn get(members: &'a [*const DeviceState]) -> Result<Self> {
        let mut refs = PmRefs(members, 0);
        for &m in members {
            // SAFETY: the caller's guarantee.
            unsafe { member(m) }.pdev.pm_get()?;
            refs.1 += 1;
        }
        Ok(refs)
    }
}

impl Drop for PmRefs<'_> {
    fn drop(&mut self) {
        for &m in self.0.iter().take(self.1) {
            // SAFETY: guaranteed by the caller of `get` for the life of the value.
            unsafe { member(m) }.pdev.pm_put();
        }
    }
}

/// Tells the variant of `d` about a slot or bus reset (before: `done` false), which is ours
/// from before to after (`DeviceState::own_resets`).
fn notify(d: &DeviceState, done: bool, ret: c_int) {
    if done {
        d.own_resets.fetch_sub(1, Ordering::Relaxed);
    } else {
        d.own_resets.fetch_add(1, Ordering::Relaxed);
    }
    let Some(hook) = d.variant_ops().bus_reset_notify else {
        return;
    };
    let data = d.variant_data();
    // A device whose variant data went back already (being unregistered) is not told.
    if data.is_null() {
        return;
    }
    // SAFETY: the variant data is live until released, and it is released (and nulled) only
    // with the set's lock held (`abi_exports.rs`), which our caller holds.
    unsafe { hook(data, d.handle(), done, ret) };
}

/// `vfio_pci_dev_set_hot_reset`.
fn dev_set_hot_reset(dev: &DeviceState, mut proof: Proof<'_>) -> Result {
    let vdev = dev.vfio_device();
    let _set = SetLock::new(vdev);
    // SAFETY: we hold the set's lock.
    if unsafe { vfio_pci_common_dev_set_resettable(vdev) }.is_null() {
        return Err(EINVAL);
    }
    let members = members(vdev)?;
    // SAFETY: the set's lock is held until after `_pm` is dropped.
    let _pm = unsafe { PmRefs::get(&members) }?;
    for &m in members.iter() {
        // SAFETY: as above.
        let m = unsafe { member(m) };
        let mv = m.vfio_device();
        // SAFETY: registered devices; the files are referenced group files.
        let owned = unsafe {
            match &mut proof {
                Proof::Iommufd => vfio_pci_common_owned_by_ictx(mv, vdev),
                Proof::Groups(files) => {
                    vfio_pci_common_dev_in_files(mv, files.as_mut_ptr(), files.len() as u32)
                }
            }
        };
        if !owned {
            return Err(EINVAL);
        }
    }
    // The resettable check's function is one of the members; any member's reset is the same.
    // SAFETY: as above.
    let first = unsafe { member(*members.first().ok_or(EINVAL)?) };
    for &m in members.iter() {
        // SAFETY: as above.
        notify(unsafe { member(m) }, false, 0);
    }
    let ret = {
        let mut guards = KVec::with_capacity(members.len(), GFP_KERNEL)?;
        for &m in members.iter() {
            // SAFETY: as above.
            let m = unsafe { member(m) };
            // Memory access blocked and mappings gone while the functions are in reset.
            // SAFETY: `_set` holds this dev_set's lock (every member shares it) until after
            // `guards` is dropped at the end of this block.
            let mut g = unsafe { m.inner.lock_in_set(vdev) };
            crate::features::bar::zap(m);
            // From D0: the reset would otherwise wake a NoSoftRst- device without our state.
            let _ =
                crate::features::power::set_power_state(&m.pdev, &mut g.pm, 0, m.sriov.active());
            guards.push(g, GFP_KERNEL)?;
        }
        let ret = first.pdev.reset_bus();
        for (g, &m) in guards.iter().zip(members.iter()) {
            // SAFETY: as above.
            crate::features::bar::unblock_memory(unsafe { member(m) }, g);
        }
        ret
    };
    let code = match &ret {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    };
    for &m in members.iter() {
        // SAFETY: as above.
        let m = unsafe { member(m) };
        if ret.is_ok() {
            crate::features::migration::reset(m);
        }
        notify(m, true, code);
    }
    ret
}

/// `vfio_pci_dev_set_try_reset`, at the end of close: if no other device of the set is open,
/// one of them is dirty (closed without a function reset), and a slot or bus reset covers
/// exactly the set, reset it. Called with the set's lock held (by the VFIO core, around
/// `close_device`) and no state mutex.
pub(crate) fn try_reset(dev: &DeviceState) {
    // A mediated device's set is itself, and its parent's bus is the host's.
    if dev.mediated {
        return;
    }
    let vdev = dev.vfio_device();
    let Ok(members) = members(vdev) else { return };
    // SAFETY: the VFIO core holds the set's lock around close (and our open's failure path).
    let any_dirty = members
        .iter()
        .any(|&m| unsafe { member(m) }.needs_reset.load(Ordering::Relaxed));
    // SAFETY: as above.
    let open = unsafe { vfio_pci_common_dev_set_open_count(vdev) };
    if !lc::dev_set_needs_reset(open, any_dirty) {
        return;
    }
    // SAFETY: as above.
    if unsafe { vfio_pci_common_dev_set_resettable(vdev) }.is_null() {
        return;
    }
    // SAFETY: as above, for the life of `_pm`.
    let Ok(_pm) = (unsafe { PmRefs::get(&members) }) else {
        return;
    };
    for &m in members.iter() {
        // SAFETY: as above.
        notify(unsafe { member(m) }, false, 0);
    }
    let ret = dev.pdev.reset_bus();
    let code = match &ret {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    };
    for &m in members.iter() {
        // SAFETY: as above.
        let m = unsafe { member(m) };
        if ret.is_ok() {
            m.needs_reset.store(false, Ordering::Relaxed);
        }
        notify(m, true, code);
    }
}
