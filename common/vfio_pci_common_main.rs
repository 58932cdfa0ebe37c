// SPDX-License-Identifier: GPL-2.0
//! `vfio_pci_common`: the library module that owns the security-critical parts of handing a PCI
//! function to user space through VFIO. Variant drivers reach it only through the SDK
//! (`common/sdk/`), which calls the versioned C ABI in [`abi`].
//!
//! This file is the crate root: `mod` lines and `module!` only.

// `pin_init!` of the per-device state (`abi_exports.rs`) expands one level per field; the
// default limit of 128 is reached at its 13 fields.
#![recursion_limit = "256"]

use kernel::prelude::*;

/// Pure logic shared with the host tests (`common/logic/`).
#[path = "logic/src"]
#[allow(dead_code, unreachable_pub, missing_docs)]
#[forbid(unsafe_code)]
mod logic {
    pub(crate) mod bar_rw;
    pub(crate) mod config_fast;
    pub(crate) mod config_init;
    pub(crate) mod config_rw;
    pub(crate) mod config_space;
    pub(crate) mod config_variant;
    pub(crate) mod errno;
    pub(crate) mod irq;
    pub(crate) mod lifecycle;
    pub(crate) mod memory_bar;
    pub(crate) mod memory_gate;
    pub(crate) mod migration;
    pub(crate) mod overlay;
    pub(crate) mod pci_regs;
    pub(crate) mod perm;
    pub(crate) mod region;
    pub(crate) mod region_info;
    pub(crate) mod uapi;
    pub(crate) mod vga;
}

// The layers, bottom up; a file imports only from its own layer or the ones below
// (`cargo xtask test` fails on any import cycle). See `Documentation/architecture.md`, "Layers".

/// The C ABI types shared with the SDK (compiled into both sides).
mod abi;
/// Generated kernel bindings (shared with the SDK).
mod bindings;
/// Device-prefixed printing (shared with the SDK).
mod dev_print;

/// Kernel primitives: wrappers of kernel objects that know nothing of a VFIO device.
mod primitives {
    pub(crate) mod bar_map;
    pub(crate) mod dev_set;
    pub(crate) mod eventfd;
    pub(crate) mod irq;
    pub(crate) mod layout;
    pub(crate) mod memory_map;
    pub(crate) mod params;
    pub(crate) mod pci_function;
    pub(crate) mod state_mutex;
    pub(crate) mod vga;
}

/// The state of a VFIO PCI device, in one file; imports no feature.
mod state;

/// The features, each over the state and the primitives.
mod features {
    pub(crate) mod bar;
    pub(crate) mod config;
    pub(crate) mod device_context;
    pub(crate) mod device_info;
    pub(crate) mod device_regions;
    pub(crate) mod hot_reset;
    pub(crate) mod interrupts;
    pub(crate) mod ioeventfd;
    pub(crate) mod memory_bar;
    pub(crate) mod migration;
    pub(crate) mod power;
    pub(crate) mod reset;
    pub(crate) mod sriov;
    pub(crate) mod vga;
}

/// The exported C ABI functions (variant and device registration).
mod abi_exports;
/// `VFIO_DEVICE_*` ioctl dispatch.
mod ioctl;
/// Opening and closing a device: the features in order.
mod open_close;
/// The `vfio_device_ops` callbacks.
mod vfio_ops;

module! {
    type: VfioPciCommon,
    name: "vfio_pci_common",
    author: "vfio-pci-rs developers",
    description: "Common VFIO PCI device support for Rust variant drivers",
    license: "GPL",
}

struct VfioPciCommon;

impl kernel::Module for VfioPciCommon {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        primitives::layout::check()?;
        pr_info!("ABI version {}\n", abi::ABI_VERSION);
        Ok(VfioPciCommon)
    }
}
