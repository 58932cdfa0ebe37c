// SPDX-License-Identifier: GPL-2.0
//! `vfio_pci_common`: the library module that owns the security-critical parts of handing a PCI
//! function to user space through VFIO. Variant drivers reach it only through the SDK
//! (`common/sdk/`), which calls the versioned C ABI in [`abi`].
//!
//! This file is the crate root: `mod` lines and `module!` only.

use kernel::prelude::*;

/// Pure logic shared with the host tests (`common/logic/`).
#[path = "logic/src"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod logic {
    pub(crate) mod bar_rw;
    pub(crate) mod config_fast;
    pub(crate) mod config_init;
    pub(crate) mod config_rw;
    pub(crate) mod config_space;
    pub(crate) mod errno;
    pub(crate) mod irq;
    pub(crate) mod lifecycle;
    pub(crate) mod overlay;
    pub(crate) mod pci_regs;
    pub(crate) mod perm;
    pub(crate) mod region;
    pub(crate) mod region_info;
    pub(crate) mod uapi;
}

mod abi;
mod bar;
mod bindings;
mod config;
mod device;
mod hot_reset;
mod info;
mod ioeventfd;
mod intrs;
mod layout;
mod lifecycle;
mod params;
mod pci;
mod regions;
mod reset;
mod sriov;
mod state;
mod state_lock;

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
        layout::check()?;
        pr_info!("ABI version {}\n", abi::ABI_VERSION);
        Ok(VfioPciCommon)
    }
}
