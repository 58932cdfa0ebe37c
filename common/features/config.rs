// SPDX-License-Identifier: GPL-2.0
//! Config-region access from user space: `read`/`write` on the device fd at the config
//! region's offset, answered by the emulator of `logic::config_space` (upstream
//! `vfio_pci_config.c` behaviour) over the real device ([`HostConfig`]).
//!
//! Every chunk (1, 2 or 4 bytes, split as upstream splits) is emulated under the device state
//! mutex, except the reads and writes `logic::config_fast` does without it (every dword whose
//! read has no side effect, and writes that are only a device read-modify-write or only a
//! store of virtual bits such as `INTERRUPT_LINE`; upstream takes no lock for any config read
//! nor for those writes), whose table is brought up to date after every emulated access. The copy to user space happens after the mutex is
//! dropped, the copy from user space inside it
//! (upstream copies from user space only when the owner of the bytes accepts writes, so the
//! emulator asks for the bytes itself).

use crate::abi::{ConfigOverlay, VariantOps};
use crate::logic::config_fast::FastChunk;
use crate::logic::config_space::{ConfigDevice, Notice};
use crate::logic::errno::{Errno, EFAULT};
use crate::logic::irq::Mode;
use crate::logic::overlay::{Overlay, OverlayInit};
use crate::primitives::pci_function::PciFunction;
use crate::state::DeviceState;
use crate::state::IrqShared;
use crate::state::PmState;
use core::ffi::c_void;
use kernel::error::{code::EINVAL, Error, Result};
use kernel::uaccess::UserSlice;

fn to_errno(e: Error) -> Errno {
    Errno(-e.to_errno())
}

fn from_errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

/// The real device behind a device's virtual config space, and the variant's overlay hooks.
pub(crate) struct HostConfig<'a> {
    dev: &'a DeviceState,
    pub(crate) pdev: &'a PciFunction,
    pub(crate) pm: &'a mut PmState,
    pub(crate) variant: &'a VariantOps,
    /// The variant's data, live while the device is registered.
    pub(crate) data: *mut c_void,
    /// The interrupt state the INTx-disable bit and the MSI capability follow.
    pub(crate) irq: &'a IrqShared,
}

impl<'a> HostConfig<'a> {
    pub(crate) fn new(dev: &'a DeviceState, pm: &'a mut PmState) -> Self {
        Self {
            dev,
            pdev: &dev.pdev,
            pm,
            variant: dev.variant_ops(),
            data: dev.variant_data(),
            irq: &dev.irq,
        }
    }
}

/// The variant's overlays as the emulator takes them.
pub(crate) fn overlays(ops: &VariantOps) -> impl Iterator<Item = Overlay> + '_ {
    let table: &[ConfigOverlay] = if ops.overlays.is_null() || ops.n_overlays == 0 {
        &[]
    } else {
        // SAFETY: `overlays` points to a `static` table of `n_overlays` entries in the variant
        // module (built by the SDK), alive while the variant is registered.
        unsafe { core::slice::from_raw_parts(ops.overlays, ops.n_overlays) }
    };
    table.iter().map(|o| Overlay {
        offset: o.offset,
        size: o.size,
        writable: o.writable,
        init: if o.from_device != 0 {
            OverlayInit::Device
        } else {
            OverlayInit::Value(o.value)
        },
    })
}

impl ConfigDevice for HostConfig<'_> {
    fn read(&mut self, off: u16, size: u8) -> Result<u32, Errno> {
        self.pdev
            .read_config(off.into(), size.into())
            .map_err(to_errno)
    }

    fn write(&mut self, off: u16, size: u8, val: u32) -> Result<(), Errno> {
        self.pdev
            .write_config(off.into(), size.into(), val)
            .map_err(to_errno)
    }

    fn read_init(&mut self, off: u16, size: u8) -> Result<u32, Errno> {
        self.pdev
            .read_config_host(off.into(), size.into())
            .map_err(to_errno)
    }

    // The state mutex, held around every emulated access, is the memory lock: only the zap
    // and the memory gate are left to do (with the mutex held, faults wait and then see the
    // new state). The gate opens again after the emulator returns (`write`), where the new
    // COMMAND can be read.
    fn lock_memory(&mut self, zap: bool) {
        if zap {
            crate::features::bar::zap(self.dev);
        } else {
            crate::features::bar::block_memory(self.dev);
        }
    }

    fn unlock_memory(&mut self) {}

    fn reset_function(&mut self) {
        crate::features::bar::zap(self.dev);
        // Upstream ignores the result of a user-triggered FLR.
        let _ = self.pdev.try_reset_function();
    }

    fn set_power_state(&mut self, state: u8) {
        // Leaving D0 makes BARs inaccessible: drop the mappings first (upstream
        // vfio_lock_and_set_power_state, which write-locks the memory lock for any change).
        if state >= 3 {
            crate::features::bar::zap(self.dev);
        } else {
            crate::features::bar::block_memory(self.dev);
        }
        let _ = crate::features::power::set_power_state(
            self.pdev,
            self.pm,
            state.into(),
            self.dev.sriov.active(),
        );
    }

    // The emulator has just changed its `virq_disabled`; the mutex it runs under is upstream's
    // `igate` for these calls.
    fn intx_mask(&mut self) {
        self.irq.set_virq_disabled(true);
        self.irq.intx_mask(self.pdev);
    }

    fn intx_unmask(&mut self) {
        self.irq.set_virq_disabled(false);
        self.irq.intx_unmask(self.pdev);
    }

    fn msi_active(&self) -> bool {
        self.irq.mode() == Mode::Msi
    }

    fn msi_qmax(&self) -> u8 {
        self.irq.msi_qmax()
    }

    fn pcie_mps(&mut self) -> u32 {
        self.pdev.pcie_mps()
    }

    fn pcie_set_readrq(&mut self, bytes: u32) {
        let _ = self.pdev.pcie_set_readrq(bytes);
    }

    fn vpd_read(&mut self, addr: u16) -> Result<[u8; 4], Errno> {
        let mut b = [0u8; 4];
        self.pdev.read_vpd(addr, &mut b).map_err(to_errno)?;
        Ok(b)
    }

    fn vpd_write(&mut self, addr: u16, data: [u8; 4]) -> Result<usize, Errno> {
        self.pdev.write_vpd(addr, &data).map_err(to_errno)
    }

    fn overlay_read(&mut self, pos: u16, count: usize, val: u32) -> u32 {
        match self.variant.config_read {
            // SAFETY: the variant data is live while the device is registered; the hook's
            // contract (abi.rs) is to only compute a value.
            Some(hook) => unsafe { hook(self.data, pos, count as u32, val) },
            None => val,
        }
    }

    fn overlay_write(&mut self, pos: u16, count: usize, val: u32) {
        if let Some(hook) = self.variant.config_write {
            // SAFETY: as in `overlay_read`.
            unsafe { hook(self.data, pos, count as u32, val) };
        }
    }

    fn notice(&mut self, what: Notice) {
        // Upstream prints the hiding of capabilities only at debug level.
        let p = self.pdev;
        match what {
            Notice::HidingCap { .. } | Notice::HidingEcap { .. } => {}
            Notice::UnknownLength { id, pos, extended } => {
                crate::primitives::pci_function::dev_notice(
                    p,
                    format_args!(
                        "unknown length for {}capability 0x{id:x}@0x{pos:x}\n",
                        if extended { "extended " } else { "" }
                    ),
                )
            }
            Notice::Conflict { pos, was, now, .. } => crate::primitives::pci_function::dev_notice(
                p,
                format_args!("config space conflict at 0x{pos:x}: 0x{was:x} vs 0x{now:x}\n"),
            ),
            Notice::BogusVfIntxPin(pin) => crate::primitives::pci_function::dev_notice(
                p,
                format_args!("VF reports an INTx pin ({pin}); hiding it\n"),
            ),
            Notice::BarRestore => crate::primitives::pci_function::dev_notice(
                p,
                format_args!("restoring BARs lost behind our back\n"),
            ),
        }
    }
}

/// `read` of the config region: `offset` inside the region, `count` bytes to `buf`.
pub(crate) fn read(dev: &DeviceState, buf: usize, count: usize, offset: u64) -> Result<usize> {
    let mut out = UserSlice::new(buf, count).writer();
    let mut done = 0usize;
    while done < count {
        let at = offset.checked_add(done as u64).ok_or(from_errno(EFAULT))?;
        let fast = dev.cfg_fast.read_chunk(at, count - done, |pos, size| {
            dev.pdev
                .read_config(pos.into(), size.into())
                .map_err(to_errno)
        });
        let (n, v) = match fast.map_err(from_errno)? {
            FastChunk::Done(n, v) => (n, v),
            FastChunk::Locked => {
                let mut guard = dev.inner.lock();
                let inner = &mut *guard;
                let mut host = HostConfig::new(dev, &mut inner.pm);
                let got = inner.config.read(&mut host, at, count - done);
                // Reads may change the image too (BAR sizing).
                inner.config.sync_fast_reads(&dev.cfg_fast);
                got.map_err(from_errno)?
            }
        };
        // Config space is little-endian; user space gets the bytes in bus order. Typed writes
        // copy straight to user space (no slice helper on this hot path).
        match n {
            4 => out.write(&v.to_le())?,
            2 => out.write(&(v as u16).to_le())?,
            _ => out.write(&(v as u8))?,
        }
        done += n;
    }
    Ok(done)
}

/// `write` of the config region: `offset` inside the region, `count` bytes from `buf`.
///
/// User bytes are copied before the state mutex is taken: the buffer may be a mapping of one
/// of this device's BARs, whose fault handler takes that mutex. The common case needs one
/// lock: the next (up to) 4 bytes are copied first; only when that copy fails is the write
/// planned first, so a write to read-only bytes succeeds without reading the buffer, as
/// upstream.
pub(crate) fn write(dev: &DeviceState, buf: usize, count: usize, offset: u64) -> Result<usize> {
    let mut input = UserSlice::new(buf, count).reader();
    let mut done = 0usize;
    while done < count {
        let at = offset.checked_add(done as u64).ok_or(from_errno(EFAULT))?;
        let left = count - done;
        let mut bytes = [0u8; 4];
        let want = left.min(4);
        let prefetched = input
            .clone_reader()
            .read_slice(bytes.get_mut(..want).ok_or(EINVAL)?)
            .is_ok();
        // The bytes the chunk may take (all of `left` when prefetched).
        let mut avail = left;
        if !prefetched {
            let (n, takes_data) = dev
                .inner
                .lock()
                .config
                .write_plan(at, left)
                .map_err(from_errno)?;
            if takes_data {
                input
                    .clone_reader()
                    .read_slice(bytes.get_mut(..n).ok_or(EINVAL)?)?;
            }
            avail = n;
        }
        // A plain device read-modify-write, or a store of virtual bits, needs no lock
        // (upstream takes none either). Virtual-write dwords must go this way while the table
        // is published: the table holds their bits (`logic::config_fast`).
        let fast = dev.cfg_fast.write_chunk(
            at,
            avail,
            u32::from_le_bytes(bytes),
            |pos, size| {
                dev.pdev
                    .read_config(pos.into(), size.into())
                    .map_err(to_errno)
            },
            |pos, size, val| {
                dev.pdev
                    .write_config(pos.into(), size.into(), val)
                    .map_err(to_errno)
            },
        );
        if let FastChunk::Done(n, _) = fast.map_err(from_errno)? {
            input.skip(n)?;
            done += n;
            continue;
        }
        let n = {
            let mut guard = dev.inner.lock();
            let inner = &mut *guard;
            let mut host = HostConfig::new(dev, &mut inner.pm);
            // Bytes past the chunk are either not copied (zero) or the next chunk's: the
            // emulator masks the value to the chunk's size.
            let written = inner
                .config
                .write(&mut host, at, left, |_| Ok(u32::from_le_bytes(bytes)));
            inner.config.sync_fast_reads(&dev.cfg_fast);
            crate::features::bar::unblock_memory(dev, inner);
            written.map_err(from_errno)?
        };
        input.skip(n)?;
        done += n;
    }
    Ok(done)
}
