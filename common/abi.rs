// SPDX-License-Identifier: GPL-2.0
//! The versioned C ABI between `vfio_pci_common` and the variant modules.
//!
//! Rust on 6.12 cannot export Rust items from one out-of-tree module to another, so the common
//! module exports `extern "C"` functions (listed in `exports.c`) and these `#[repr(C)]` types.
//! This file is compiled into both sides (the common module and, through the SDK, every
//! variant), so the two always agree on the layout for one build; `abi_version` catches a
//! variant built against another version of this file.
//!
//! Lifetimes: a [`VariantOps`] is a `static` in the variant module and outlives every handle
//! made from it; a variant handle lives from module init to module exit; a device handle from
//! a successful probe to remove. The variant's per-device data is owned by the common device
//! from `vfio_pci_common_device_register` on and released exactly once, through
//! [`VariantOps::release`], when the device is unregistered (or registration fails).

use core::ffi::{c_int, c_void};
use kernel::ffi::c_char;


/// Bumped on any incompatible change of the types or functions in this file.
pub(crate) const ABI_VERSION: u32 = 1;

/// What a variant tells the common module about itself (one `static` per variant driver).
#[repr(C)]
pub(crate) struct VariantOps {
    /// Must be [`ABI_VERSION`] of the variant's build; refused otherwise.
    pub(crate) abi_version: u32,
    /// NUL-terminated driver name; also the VFIO device ops name (so SR-IOV VF capture and
    /// `driver_override` agree).
    pub(crate) name: *const c_char,
    /// Drops the variant's per-device data (the pointer given at device registration).
    pub(crate) release: Option<unsafe extern "C" fn(data: *mut c_void)>,
    /// Optional: called when user space first opens the device, after the common module has
    /// done its part; an error fails the open. `None` means the common behaviour only.
    pub(crate) open_device: Option<unsafe extern "C" fn(data: *mut c_void) -> c_int>,
    /// Optional: called when user space last closes the device, before the common module
    /// does its part.
    pub(crate) close_device: Option<unsafe extern "C" fn(data: *mut c_void)>,
}

// SAFETY: `VariantOps` is immutable after construction and only holds a pointer to a static
// string and a function pointer, both valid from any thread.
unsafe impl Sync for VariantOps {}

/// Opaque handle to a registered variant (owned by the common module).
#[repr(C)]
pub(crate) struct VariantHandle {
    _private: [u8; 0],
}

/// Opaque handle to a registered device (owned by the common module).
#[repr(C)]
pub(crate) struct DeviceHandle {
    _private: [u8; 0],
}

// The functions, implemented in `device.rs` and declared for variants in
// `sdk/registration.rs`:
// - `u32 vfio_pci_common_abi_version(void)`;
// - `VariantHandle *vfio_pci_common_variant_register(const VariantOps *)`: a handle or an
//   `ERR_PTR` (`-EINVAL` on an ABI mismatch, with a message naming both versions);
// - `void vfio_pci_common_variant_unregister(VariantHandle *)`: after all its devices are gone;
// - `DeviceHandle *vfio_pci_common_device_register(VariantHandle *, struct pci_dev *, void *data)`:
//   creates and registers the VFIO device (group and cdev) and takes ownership of `data`, also
//   on failure (then already released);
// - `void vfio_pci_common_device_unregister(DeviceHandle *)`: waits until user space has
//   closed the device, releases the variant data, drops the common module's reference;
// - `unsigned int vfio_pci_common_error_detected(DeviceHandle *, unsigned int state)`: the PCI
//   error handler (AER) of every variant; returns a `pci_ers_result_t`;
// - `bool vfio_pci_common_bound_by_override(struct pci_dev *)`: whether the device's
//   `driver_override` names the driver probing it (in `helpers.c`).
