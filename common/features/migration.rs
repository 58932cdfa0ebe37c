// SPDX-License-Identifier: GPL-2.0
//! Live migration of a variant that offers it ([`crate::abi::MigrationOps`]): the
//! `vfio_migration_ops` the VFIO core calls for `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` (and
//! `_MIGRATION`, `_MIG_DATA_SIZE`), the walk along the state machine's arcs, and the migration
//! data fds (`primitives/mig_file_shims.c` makes them; their read, write, ioctl and release
//! land here).
//!
//! As upstream's variants (hisi_acc, mlx5): the VFIO core's `vfio_mig_get_next_state` splits a
//! transition into arcs, each arc is one [`Step`] under the migration lock, a failed arc stops
//! the walk with the state at the last arc that worked. The state returns to RUNNING, and the
//! data fd of any session is disabled, at open, close and every reset of the device.
//!
//! The data fds hold only the stream (a [`DataFile`]), never the device: an fd may outlive
//! its session, the device's open and the device. This file never calls the variant with the
//! state mutex or the interrupt gate held (the variant's save and load use the device).
//!
//! No `log_ops`: dirty-page tracking needs the device to report its DMA writes, which no
//! device of ours does; the IOMMU's dirty tracking (iommufd) is the VMM's alternative.

use crate::abi::{MigrationChange, MigrationOps};
use crate::bindings;
use crate::logic::migration::{self as logic, Step};
use crate::state::{
    DataFile, DataFileInner, DataPhase, DeviceState, MigrationState, VfioPciDevice,
};
use core::ffi::{c_int, c_long, c_void};
use kernel::error::{code::*, Error, Result};
use kernel::ffi::c_ulong;
use kernel::init::InPlaceInit;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow};
use kernel::uaccess::UserSlice;

/// Streams hold at most two frames: one saved in PRE_COPY, one in STOP_COPY.
const MAX_FRAMES: usize = 2;

/// The VFIO core's entry points, shared by every device that migrates.
static MIG_OPS: bindings::vfio_migration_ops = bindings::vfio_migration_ops {
    migration_set_state: Some(set_state),
    migration_get_state: Some(get_state),
    migration_get_data_size: Some(get_data_size),
};

// Made by `primitives/mig_file_shims.c`: an anonymous stream file whose `private_data` is
// `data` and whose file operations call the `vfio_pci_common_mig_file_*` functions below.
// `file` holds opaque lock types bindgen cannot prove FFI-safe; we only pass pointers.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_mig_file_new(data: *mut c_void, resuming: bool) -> *mut bindings::file;
}

/// Checks a variant's migration ops and makes the VFIO core answer the migration features
/// for `vdev` (before `vfio_register_group_dev`, as upstream `vfio_pci_core_register_device`
/// checks them).
///
/// # Safety
///
/// `vdev` is allocated and not registered yet; `ops` is null or valid as long as the device.
pub(crate) unsafe fn register(
    vdev: *mut bindings::vfio_device,
    ops: *const MigrationOps,
) -> Result {
    if ops.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's guarantee.
    let o = unsafe { &*ops };
    let known = logic::flags(true, true);
    if o.flags & logic::MIGRATION_STOP_COPY == 0 || o.flags & !known != 0 || o.max_state == 0 {
        return Err(EINVAL);
    }
    // SAFETY: not registered yet, so nobody else reads these fields.
    unsafe {
        (*vdev).mig_ops = &MIG_OPS;
        (*vdev).migration_flags = o.flags as u32;
    }
    Ok(())
}

/// Back to RUNNING with no session (open, close, device reset), as upstream variants do in
/// their `reset_done` and open/close. The device runs after a reset, so the variant is not
/// asked to start it.
pub(crate) fn reset(dev: &DeviceState) {
    if dev.variant_ops().migration.is_null() {
        return;
    }
    let mut mig = dev.migration.lock();
    end_session(&mut mig);
    mig.state = logic::STATE_RUNNING;
}

fn end_session(mig: &mut MigrationState) {
    if let Some(f) = mig.file.take() {
        let mut inner = f.inner.lock();
        inner.phase = DataPhase::Disabled;
        // What was saved or written goes now, not when user space closes the fd.
        inner.bytes = KVec::new();
        inner.read = 0;
    }
}

fn ops(dev: &DeviceState) -> Option<&MigrationOps> {
    let ops = dev.variant_ops().migration;
    // SAFETY: a variant's `MigrationOps` is a `static` of the variant, valid while it has
    // devices (the same lifetime as its `VariantOps`).
    (!ops.is_null()).then(|| unsafe { &*ops })
}

/// `migration_set_state`: walks arc by arc to `new`; returns the data fd of a session the
/// last arc began, null, or an `ERR_PTR`.
unsafe extern "C" fn set_state(
    vdev: *mut bindings::vfio_device,
    new: bindings::vfio_device_mig_state,
) -> *mut bindings::file {
    // SAFETY: the VFIO core calls mig_ops only for registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    let Some(ops) = ops(dev) else {
        return err_ptr(EINVAL);
    };
    let mut mig = dev.migration.lock();
    let mut filp: *mut bindings::file = core::ptr::null_mut();
    while mig.state != new {
        // ERROR is left only through a reset; asking the VFIO core from ERROR would WARN.
        if mig.state == logic::STATE_ERROR {
            return err_ptr(EINVAL);
        }
        let mut next = 0;
        // SAFETY: a registered device with `migration_flags` set at registration.
        if unsafe { bindings::vfio_mig_get_next_state(vdev, mig.state, new, &mut next) } != 0 {
            return err_ptr(EINVAL);
        }
        match arc(dev, ops, &mut mig, next) {
            Ok(f) => filp = f,
            Err(e) => return err_ptr(e),
        }
        mig.state = next;
        // Only the last arc may begin a session (the VFIO core's arcs guarantee it).
        if !filp.is_null() && mig.state != new {
            // SAFETY: the one reference of a file we just made.
            unsafe { kernel::bindings::fput(filp) };
            end_session(&mut mig);
            return err_ptr(EINVAL);
        }
    }
    filp
}

fn err_ptr(e: Error) -> *mut bindings::file {
    e.to_errno() as isize as *mut bindings::file
}

/// One arc, `mig.state` -> `next`.
fn arc(
    dev: &DeviceState,
    ops: &MigrationOps,
    mig: &mut MigrationState,
    next: u32,
) -> Result<*mut bindings::file> {
    let change = |c| change(dev, ops, c);
    let none = core::ptr::null_mut();
    match logic::step(ops.flags, mig.state, next).ok_or(EINVAL)? {
        Step::Quiesce => change(MigrationChange::Quiesce).map(|()| none),
        Step::Unquiesce => change(MigrationChange::Unquiesce).map(|()| none),
        Step::Stop => change(MigrationChange::Stop).map(|()| none),
        Step::Start => change(MigrationChange::Start).map(|()| none),
        Step::QuiesceAndStop => {
            change(MigrationChange::Quiesce)?;
            if let Err(e) = change(MigrationChange::Stop) {
                // The arc failed: back to where it began.
                let _ = change(MigrationChange::Unquiesce);
                return Err(e);
            }
            Ok(none)
        }
        Step::StartAndUnquiesce => {
            change(MigrationChange::Start)?;
            change(MigrationChange::Unquiesce).map(|()| none)
        }
        Step::BeginPreCopy => begin_saving(dev, ops, mig, DataPhase::PreCopy),
        Step::BeginStopCopy => begin_saving(dev, ops, mig, DataPhase::StopCopy),
        Step::StopAndFinishPreCopy => {
            change(MigrationChange::Stop)?;
            finish_pre_copy(dev, ops, mig).map(|()| none)
        }
        Step::FinishPreCopy => finish_pre_copy(dev, ops, mig).map(|()| none),
        Step::EndPreCopy | Step::EndStopCopy => {
            end_session(mig);
            Ok(none)
        }
        Step::BeginResuming => begin_resuming(ops, mig),
        Step::Load => load(dev, ops, mig).map(|()| none),
    }
}

fn change(dev: &DeviceState, ops: &MigrationOps, c: MigrationChange) -> Result {
    // SAFETY: the variant data is live while the device is registered, and mig_ops run only
    // on registered devices.
    kernel::error::to_result(unsafe { (ops.change)(dev.variant_data(), dev.handle(), c) })
}

/// Appends one frame of the device's state to `out`.
fn save_frame(dev: &DeviceState, ops: &MigrationOps, out: &mut KVec<u8>) -> Result {
    let mut payload = KVec::with_capacity(ops.max_state, GFP_KERNEL)?;
    // SAFETY: variant data as in `change`; `payload` has room for `max_state` bytes.
    let n = unsafe {
        (ops.save)(
            dev.variant_data(),
            dev.handle(),
            payload.as_mut_ptr(),
            ops.max_state,
        )
    };
    if n < 0 {
        return Err(Error::from_errno(n as c_int));
    }
    let n = n as usize;
    if n > ops.max_state {
        return Err(EINVAL);
    }
    // SAFETY: the variant wrote `n` bytes, at most the capacity.
    unsafe { payload.set_len(n) };
    out.extend_from_slice(&logic::frame_header(&payload), GFP_KERNEL)?;
    out.extend_from_slice(&payload, GFP_KERNEL)?;
    Ok(())
}

/// A new data file in `phase`, its first bytes `bytes`; returns the fd's file.
fn new_session(
    mig: &mut MigrationState,
    phase: DataPhase,
    bytes: KVec<u8>,
    limit: usize,
) -> Result<*mut bindings::file> {
    // The VFIO core's arcs begin a session only from states without one; be sure anyway.
    end_session(mig);
    let file = Arc::pin_init(
        pin_init!(DataFile {
            inner <- new_mutex!(
                DataFileInner { phase, bytes, read: 0, limit },
                "vfio_pci_common::mig_file"
            ),
        }),
        GFP_KERNEL,
    )?;
    let raw = Arc::into_raw(file.clone()).cast_mut().cast::<c_void>();
    // SAFETY: `raw` is a reference the file owns from here on (released in
    // `vfio_pci_common_mig_file_release`).
    let filp = unsafe { vfio_pci_common_mig_file_new(raw, phase == DataPhase::Resuming) };
    if let Err(e) = kernel::error::from_err_ptr(filp) {
        // SAFETY: the file was not made, so the reference is still ours.
        drop(unsafe { Arc::from_raw(raw.cast::<DataFile>()) });
        return Err(e);
    }
    mig.file = Some(file);
    Ok(filp)
}

fn begin_saving(
    dev: &DeviceState,
    ops: &MigrationOps,
    mig: &mut MigrationState,
    phase: DataPhase,
) -> Result<*mut bindings::file> {
    let mut bytes = KVec::new();
    save_frame(dev, ops, &mut bytes)?;
    new_session(mig, phase, bytes, 0)
}

fn finish_pre_copy(dev: &DeviceState, ops: &MigrationOps, mig: &mut MigrationState) -> Result {
    let file = mig.file.as_ref().ok_or(EINVAL)?;
    let mut frame = KVec::new();
    save_frame(dev, ops, &mut frame)?;
    let mut inner = file.inner.lock();
    inner.bytes.extend_from_slice(&frame, GFP_KERNEL)?;
    inner.phase = DataPhase::StopCopy;
    Ok(())
}

fn begin_resuming(ops: &MigrationOps, mig: &mut MigrationState) -> Result<*mut bindings::file> {
    let limit = MAX_FRAMES * (logic::HEADER_LEN + ops.max_state);
    new_session(mig, DataPhase::Resuming, KVec::new(), limit)
}

/// RESUMING -> STOP: the whole stream is checked before the variant sees any of it, so a
/// refused stream leaves the device as it was (still RESUMING, with what was written so far:
/// user space may write the rest and try again, or reset). A variant that fails to load a
/// checked frame may have changed the device: it is then in ERROR (reset to leave it).
fn load(dev: &DeviceState, ops: &MigrationOps, mig: &mut MigrationState) -> Result {
    let file = mig.file.clone().ok_or(EINVAL)?;
    let inner = file.inner.lock();
    if let Err(e) = logic::validate(&inner.bytes, ops.max_state) {
        crate::primitives::pci_function::dev_notice(
            &dev.pdev,
            format_args!("migration stream refused: {}\n", e.describe()),
        );
        return Err(Error::from_errno(-e.errno().0));
    }
    let mut result = Ok(());
    for payload in logic::payloads(&inner.bytes, ops.max_state) {
        // SAFETY: variant data as in `change`; `payload` is valid for its length.
        let ret = unsafe {
            (ops.load)(
                dev.variant_data(),
                dev.handle(),
                payload.as_ptr(),
                payload.len(),
            )
        };
        if ret != 0 {
            result = Err(Error::from_errno(ret));
            break;
        }
    }
    drop(inner);
    end_session(mig);
    if result.is_err() {
        mig.state = logic::STATE_ERROR;
    }
    result
}

/// `migration_get_state`.
unsafe extern "C" fn get_state(
    vdev: *mut bindings::vfio_device,
    state: *mut bindings::vfio_device_mig_state,
) -> c_int {
    // SAFETY: the VFIO core calls mig_ops only for registered devices, with a valid `state`.
    unsafe {
        let dev = VfioPciDevice::from_vdev(vdev);
        *state = dev.migration.lock().state;
    }
    0
}

/// `migration_get_data_size`: one frame of the largest state (what STOP_COPY produces).
unsafe extern "C" fn get_data_size(vdev: *mut bindings::vfio_device, len: *mut c_ulong) -> c_int {
    // SAFETY: as in `get_state`.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    let Some(ops) = ops(dev) else {
        return EINVAL.to_errno();
    };
    // SAFETY: a valid out-pointer from the VFIO core.
    unsafe { *len = (logic::HEADER_LEN + ops.max_state) as c_ulong };
    0
}

// ---- the data fd's file operations (called by `primitives/mig_file_shims.c`) ------------------

/// # Safety
///
/// `data` is the `private_data` of a live migration data file.
unsafe fn data_file<'a>(data: *mut c_void) -> ArcBorrow<'a, DataFile> {
    // SAFETY: `private_data` is a reference made by `Arc::into_raw` in `new_session`, dropped
    // only at the file's release, after every other file operation.
    unsafe { ArcBorrow::from_raw(data.cast::<DataFile>()) }
}

/// `read` of a saving data fd (the VFS refused positioned reads: a stream file).
#[no_mangle]
unsafe extern "C" fn vfio_pci_common_mig_file_read(
    data: *mut c_void,
    buf: usize,
    len: usize,
) -> isize {
    // SAFETY: the shim passes the file's `private_data`.
    let file = unsafe { data_file(data) };
    let mut inner = file.inner.lock();
    let at = inner.read;
    let ret = match inner.phase {
        DataPhase::Disabled => Err(ENODEV),
        DataPhase::Resuming => Err(EINVAL),
        _ if at > inner.bytes.len() => Err(EINVAL),
        // The temporary end of a pre-copy stream (uAPI: `VFIO_MIG_GET_PRECOPY_INFO`).
        DataPhase::PreCopy if at == inner.bytes.len() && len > 0 => {
            Err(Error::from_errno(-(bindings::ENOMSG as c_int)))
        }
        _ => {
            let n = len.min(inner.bytes.len() - at);
            UserSlice::new(buf, n)
                .writer()
                .write_slice(&inner.bytes[at..at + n])
                .map(|()| n)
        }
    };
    if let Ok(n) = ret {
        inner.read += n;
    }
    ssize(ret)
}

/// A read or write's answer: the bytes done or a negative errno.
fn ssize(r: Result<usize>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `write` of a resuming data fd.
#[no_mangle]
unsafe extern "C" fn vfio_pci_common_mig_file_write(
    data: *mut c_void,
    buf: usize,
    len: usize,
) -> isize {
    // SAFETY: the shim passes the file's `private_data`.
    let file = unsafe { data_file(data) };
    let mut inner = file.inner.lock();
    let ret = match inner.phase {
        DataPhase::Resuming => {
            match inner.bytes.len().checked_add(len) {
                // As hisi_acc: more than the device's state is `-ENOMEM`.
                Some(total) if total <= inner.limit => UserSlice::new(buf, len)
                    .read_all(&mut inner.bytes, GFP_KERNEL)
                    .map(|()| len),
                _ => Err(ENOMEM),
            }
        }
        DataPhase::Disabled => Err(ENODEV),
        _ => Err(EINVAL),
    };
    ssize(ret)
}

/// `unlocked_ioctl` of a saving data fd: `VFIO_MIG_GET_PRECOPY_INFO` only.
#[no_mangle]
unsafe extern "C" fn vfio_pci_common_mig_file_ioctl(
    data: *mut c_void,
    cmd: u32,
    arg: usize,
) -> c_long {
    // SAFETY: the shim passes the file's `private_data`.
    let file = unsafe { data_file(data) };
    let ret = (|| -> Result {
        if cmd != logic::VFIO_MIG_GET_PRECOPY_INFO {
            return Err(ENOTTY);
        }
        let mut info = [0u8; logic::PRECOPY_INFO_MINSZ];
        UserSlice::new(arg, info.len())
            .reader()
            .read_slice(&mut info)?;
        let argsz = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
        if (argsz as usize) < logic::PRECOPY_INFO_MINSZ {
            return Err(EINVAL);
        }
        let inner = file.inner.lock();
        // Only in PRE_COPY (uAPI); a disabled fd is in no PRE_COPY state either (as hisi_acc
        // and mlx5 answer once the device has left PRE_COPY).
        if inner.phase != DataPhase::PreCopy {
            return Err(EINVAL);
        }
        let initial = inner.bytes.len().saturating_sub(inner.read) as u64;
        drop(inner);
        info[8..16].copy_from_slice(&initial.to_ne_bytes());
        // Our pre-copy data is one snapshot: nothing is dirtied after it.
        info[16..24].copy_from_slice(&0u64.to_ne_bytes());
        UserSlice::new(arg, info.len()).writer().write_slice(&info)
    })();
    match ret {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `release` of a data fd: the fd's reference goes.
#[no_mangle]
unsafe extern "C" fn vfio_pci_common_mig_file_release(data: *mut c_void) {
    // SAFETY: the fd's reference, made in `new_session`; release is the last file operation.
    drop(unsafe { Arc::from_raw(data.cast::<DataFile>()) });
}
