// SPDX-License-Identifier: GPL-2.0
//! Load-time check that our generated bindings agree with the C compiler on the size of every
//! kernel structure we allocate, embed or read fields of. The bindings are made with the
//! kernel's own bindgen flags, so a mismatch means a broken toolchain or header set; refusing
//! to load is the only safe answer.

use crate::bindings;
use core::mem::size_of;
use kernel::error::{code::EINVAL, Result};
use kernel::prelude::*;

extern "C" {
    fn vfio_pci_common_c_sizeof_vfio_device() -> usize;
    fn vfio_pci_common_c_sizeof_pci_dev() -> usize;
    fn vfio_pci_common_c_sizeof_pci_driver() -> usize;
}

pub(crate) fn check() -> Result {
    // SAFETY: plain C functions in this module returning a constant.
    let c = unsafe {
        [
            (
                "struct vfio_device",
                vfio_pci_common_c_sizeof_vfio_device(),
                size_of::<bindings::vfio_device>(),
            ),
            (
                "struct pci_dev",
                vfio_pci_common_c_sizeof_pci_dev(),
                size_of::<bindings::pci_dev>(),
            ),
            (
                "struct pci_driver",
                vfio_pci_common_c_sizeof_pci_driver(),
                size_of::<bindings::pci_driver>(),
            ),
        ]
    };
    let mut ok = true;
    for (name, c_size, rust_size) in c {
        if c_size != rust_size {
            pr_err!(
                "{name} is {c_size} bytes in C but {rust_size} in our bindings; refusing to load\n"
            );
            ok = false;
        }
    }
    if ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}
