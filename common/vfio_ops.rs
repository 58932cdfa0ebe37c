// SPDX-License-Identifier: GPL-2.0
//! The `vfio_device_ops` of every variant: [`table`] builds one per registered variant, and
//! each callback finds the device's [`DeviceState`] and hands the call to the feature that
//! answers it (read and write by region index, as upstream `vfio_pci_rw`).

use crate::bindings;
use crate::state::{DeviceState, VfioPciDevice};
use core::ffi::{c_int, c_uint, c_void};
use core::ptr::{self, addr_of_mut};
use kernel::error::{code::EINVAL, from_result, Result};
use kernel::ffi::{c_char, c_long, c_ulong};

/// The ops table for a variant whose VFIO ops name is `name` (a static string).
pub(crate) fn table(name: *const c_char) -> bindings::vfio_device_ops {
    bindings::vfio_device_ops {
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        ..common_ops(name)
    }
}

/// The ops table of the variant's mediated devices: iommufd sees an emulated IOMMU (the device
/// has no IOMMU domain; it never does DMA, see `DeviceState::mediated`).
pub(crate) fn table_mediated(name: *const c_char) -> bindings::vfio_device_ops {
    bindings::vfio_device_ops {
        bind_iommufd: Some(bindings::vfio_iommufd_emulated_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_emulated_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_emulated_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_emulated_detach_ioas),
        // The VFIO core's default: the device's own name (an mdev's UUID), no VF token.
        match_: None,
        ..common_ops(name)
    }
}

fn common_ops(name: *const c_char) -> bindings::vfio_device_ops {
    bindings::vfio_device_ops {
        name: name.cast_mut(),
        release: Some(release),
        open_device: Some(open_device),
        close_device: Some(close_device),
        read: Some(read),
        write: Some(write),
        ioctl: Some(ioctl),
        mmap: Some(mmap),
        request: Some(request),
        match_: Some(match_name),
        device_feature: Some(device_feature),
        ..Default::default()
    }
}

unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
    // SAFETY: the VFIO core calls `release` once, on the last reference, before freeing the
    // allocation; `state` was written right after allocation, before any failure path.
    unsafe { ptr::drop_in_place(addr_of_mut!((*vdev.cast::<VfioPciDevice>()).state)) };
}

unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    from_result(|| crate::open_close::open(dev).map(|()| 0))
}

unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    crate::open_close::close(dev);
}

unsafe extern "C" fn read(
    vdev: *mut bindings::vfio_device,
    buf: *mut c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: forwarding our caller's guarantees.
    unsafe { rw_op(vdev, buf as usize, count, ppos, false) }
}

unsafe extern "C" fn write(
    vdev: *mut bindings::vfio_device,
    buf: *const c_char,
    count: usize,
    ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: forwarding our caller's guarantees.
    unsafe { rw_op(vdev, buf as usize, count, ppos, true) }
}

/// The body of the `read` and `write` ops: the access, then the file position moves on.
///
/// # Safety
///
/// `vdev` is a registered device of ours and `ppos` the file position the VFS passes in.
unsafe fn rw_op(
    vdev: *mut bindings::vfio_device,
    buf: usize,
    count: usize,
    ppos: *mut bindings::loff_t,
    is_write: bool,
) -> isize {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    from_result(|| {
        // SAFETY: `ppos` is valid for this call (the caller's contract).
        let pos = unsafe { &mut *ppos };
        let done = region_rw(dev, buf, count, *pos, is_write)?;
        *pos += done as bindings::loff_t;
        Ok(done as isize)
    })
}

/// `read`/`write` on the device fd: dispatches on the region index encoded in the offset
/// (upstream `vfio_pci_rw`).
fn region_rw(
    dev: &DeviceState,
    buf: usize,
    count: usize,
    pos: i64,
    is_write: bool,
) -> Result<usize> {
    use crate::logic::region;
    if count == 0 {
        return Ok(0);
    }
    let (index, offset) = region::split_offset(pos as u64);
    match index {
        region::index::CONFIG if is_write => {
            crate::features::config::write(dev, buf, count, offset)
        }
        region::index::CONFIG => crate::features::config::read(dev, buf, count, offset),
        region::index::ROM if is_write => Err(EINVAL),
        i @ region::index::BAR0..=region::index::ROM => {
            crate::features::bar::rw(dev, i as usize, buf, count, offset, is_write)
        }
        region::index::VGA => crate::features::vga::rw(dev, buf, count, offset, is_write),
        i => crate::features::device_regions::rw(
            dev,
            (i - region::NUM_REGIONS) as usize,
            buf,
            count,
            offset,
            is_write,
        ),
    }
}

unsafe extern "C" fn mmap(
    vdev: *mut bindings::vfio_device,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    from_result(|| crate::features::bar::mmap(dev, vma).map(|()| 0))
}

unsafe extern "C" fn request(vdev: *mut bindings::vfio_device, count: c_uint) {
    // SAFETY: the VFIO core only calls ops on registered devices (`request` from inside
    // `vfio_unregister_group_dev`, before it returns).
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    crate::features::interrupts::request(dev, count);
}

unsafe extern "C" fn match_name(vdev: *mut bindings::vfio_device, buf: *mut c_char) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    // SAFETY: the VFIO core passes the NUL-terminated name user space gave
    // (`VFIO_GROUP_GET_DEVICE_FD`), copied into kernel memory, valid for this call.
    let buf = unsafe { kernel::str::CStr::from_char_ptr(buf) };
    from_result(|| crate::features::sriov::match_name(dev, buf.as_bytes()).map(c_int::from))
}

unsafe extern "C" fn device_feature(
    vdev: *mut bindings::vfio_device,
    flags: u32,
    arg: *mut c_void,
    argsz: usize,
) -> c_int {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    from_result(|| {
        if let Some(hook) = dev.variant_ops().device_feature {
            let mut ret = 0i64;
            // SAFETY: the variant data is live while the device is registered; the handle is
            // this device's; `ret` is a live local.
            let r = unsafe {
                hook(
                    dev.variant_data(),
                    dev.handle(),
                    flags,
                    arg as usize,
                    argsz,
                    &mut ret,
                )
            };
            if let Some(answer) = crate::ioctl::variant_answer(r, ret) {
                return answer.map(|v| v as c_int);
            }
        }
        crate::features::sriov::device_feature(dev, flags, arg as usize, argsz)
    })
}

unsafe extern "C" fn ioctl(vdev: *mut bindings::vfio_device, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: the VFIO core only calls ops on registered devices.
    let dev = unsafe { VfioPciDevice::from_vdev(vdev) };
    from_result(|| crate::ioctl::ioctl(dev, cmd, arg as usize).map(|v| v as c_long))
}
