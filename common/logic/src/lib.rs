// SPDX-License-Identifier: GPL-2.0
//! Pure logic of the VFIO PCI framework: no kernel calls, no allocation, no `unsafe`.
//!
//! Compiled twice: into `vfio_pci_common.ko` (each file through `#[path]`, see
//! `common/vfio_pci_common_main.rs`) and as this host crate, where it is unit- and
//! property-tested in seconds. Everything here must therefore stay `no_std` and
//! dependency-free, and every function must be total: errors are values, never panics.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod bar_rw;
pub mod config_fast;
pub mod config_init;
pub mod config_rw;
pub mod config_space;
pub mod config_variant;
pub mod errno;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod irq;
pub mod lifecycle;
pub mod memory_bar;
pub mod memory_gate;
pub mod migration;
pub mod overlay;
pub mod pci_regs;
pub mod perm;
pub mod region;
pub mod region_info;
pub mod uapi;
pub mod vga;

#[cfg(test)]
mod config_prop_tests;
#[cfg(test)]
mod config_spec_tests;
#[cfg(test)]
mod irq_tests;
