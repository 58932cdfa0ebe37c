// SPDX-License-Identifier: GPL-2.0
//! Test-only variant for QEMU's edu device that exercises the SDK's hooks and device context.
//!
//! - **BAR window**: 256 bytes at 0x1000 of BAR0 are emulated. Bytes 0x00..0x04 read
//!   [`MAGIC`] (writes ignored), 0x10 reads edu's ident register through the device context
//!   (`dev.read32(0, 0)`), a write to 0x14 goes to edu's liveness register through it and a
//!   read of 0x18 reads that register back (edu answers the complement); every other byte is
//!   scratch memory. The rest of BAR0 is the device; mmap is offered only around the window's
//!   page (sparse-mmap capability).
//! - **emulated BAR**: BAR 2 (which edu does not have) is 4 KiB of memory of the variant's.
//! - **ioctl hook**: [`PRIVATE`] (`_IO(';', 200)`) answers queries chosen by its argument (see
//!   [`Query`]); [`SET_OVERLAY`] (`_IO(';', 201)`) sets the overlay at 0xf0 to its argument;
//!   `VFIO_DEVICE_GET_INFO` and every device feature are counted and fall through to the
//!   common handling.
//! - **reset hook**: `VFIO_DEVICE_RESET` (which edu, lacking a function reset, otherwise
//!   refuses) restores the window's scratch bytes and counts the reset (also done at open
//!   and close); `reset_prepare`/`reset_done` count the notices around it.
//! - **open**: hides edu's MSI capability from the virtual list.
//!
//! Checked by the guest's `hooks-*` checks (tests/guest/src/hooks.rs). Never shipped.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../../common/sdk/mod.rs"]
mod sdk;

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{new_mutex, sync::Mutex};
use sdk::prelude::*;

/// What the window's first dword reads ("hook").
const MAGIC: u32 = 0x6b6f_6f68;
/// Where the window is in BAR0, and its length.
const WINDOW: (u64, usize) = (0x1000, 0x100);
/// Size of the emulated BAR 2 (edu has none): memory that keeps what is written.
const EMULATED_BAR_SIZE: usize = 0x1000;
/// `_IO(';', 200)`: the private query ioctl.
const PRIVATE: u32 = 0x3bc8;
/// `_IO(';', 201)`: sets the overlay at 0xf0.
const SET_OVERLAY: u32 = 0x3bc9;
/// `VFIO_DEVICE_GET_INFO`.
const GET_INFO: u32 = 0x3b6b;
/// `PCI_CAP_ID_MSI`.
const CAP_MSI: u8 = 0x05;

/// The queries of [`PRIVATE`], by argument.
#[repr(usize)]
enum Query {
    /// Counts this call; returns the new count.
    Count = 0,
    /// `VFIO_DEVICE_GET_INFO` calls seen.
    GetInfoSeen = 1,
    /// Device features seen.
    FeaturesSeen = 2,
    /// Resets done by the hook.
    Resets = 3,
    /// What hiding a capability outside `open` returns (a negative errno).
    HideOutsideOpen = 4,
    /// The capability pointer as user space sees it (bits 8..16) and as the device has it
    /// (bits 0..8), through the device context.
    CapPointers = 5,
    /// `reset_prepare` calls (bits 16..32) and successful `reset_done` calls (bits 0..16).
    ResetNotices = 6,
}

#[pin_data]
struct HookTest {
    calls: AtomicU32,
    get_info_seen: AtomicU32,
    features_seen: AtomicU32,
    resets: AtomicU32,
    reset_prepares: AtomicU32,
    reset_dones: AtomicU32,
    #[pin]
    window: Mutex<[u8; WINDOW.1]>,
    #[pin]
    bar2: Mutex<[u8; EMULATED_BAR_SIZE]>,
}

#[vtable]
impl Variant for HookTest {
    type IdInfo = ();

    const CONFIG_OVERLAYS: &'static [ConfigOverlay] = &[ConfigOverlay::value(0xf0, 4, 0, 0)];
    const BAR_WINDOWS: &'static [BarWindow] = &[
        BarWindow::new(0, WINDOW.0, WINDOW.1 as u64),
        BarWindow::emulated_bar(2, EMULATED_BAR_SIZE as u64),
    ];

    fn probe(_dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        try_pin_init!(HookTest {
            calls: AtomicU32::new(0),
            get_info_seen: AtomicU32::new(0),
            features_seen: AtomicU32::new(0),
            resets: AtomicU32::new(0),
            reset_prepares: AtomicU32::new(0),
            reset_dones: AtomicU32::new(0),
            window <- new_mutex!([0u8; WINDOW.1]),
            bar2 <- new_mutex!([0u8; EMULATED_BAR_SIZE]),
        })
    }

    fn open(self: Pin<&Self>, dev: &Device) -> Result {
        *self.window.lock() = [0u8; WINDOW.1];
        dev.hide_capability(CAP_MSI)
    }

    fn ioctl(self: Pin<&Self>, dev: &Device, cmd: u32, arg: usize) -> Result<Handled> {
        let count = |c: &AtomicU32| Ok(Handled::Done(c.load(Ordering::Relaxed).into()));
        match cmd {
            GET_INFO => {
                self.get_info_seen.fetch_add(1, Ordering::Relaxed);
                Ok(Handled::FallThrough)
            }
            SET_OVERLAY => {
                dev.set_overlay(0xf0, arg as u32)?;
                Ok(Handled::Done(0))
            }
            PRIVATE => match arg {
                x if x == Query::Count as usize => {
                    let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
                    Ok(Handled::Done(n.into()))
                }
                x if x == Query::GetInfoSeen as usize => count(&self.get_info_seen),
                x if x == Query::FeaturesSeen as usize => count(&self.features_seen),
                x if x == Query::Resets as usize => count(&self.resets),
                x if x == Query::HideOutsideOpen as usize => {
                    let r = dev.hide_capability(CAP_MSI);
                    Ok(Handled::Done(
                        r.map_or_else(|e| e.to_errno().into(), |()| 0),
                    ))
                }
                x if x == Query::ResetNotices as usize => {
                    let p = self.reset_prepares.load(Ordering::Relaxed);
                    let d = self.reset_dones.load(Ordering::Relaxed);
                    Ok(Handled::Done(((p << 16) | d).into()))
                }
                x if x == Query::CapPointers as usize => {
                    let user = dev.config_read(0x34, 1)?;
                    let raw = dev.raw_config_read(0x34, 1)?;
                    Ok(Handled::Done(((user << 8) | raw).into()))
                }
                _ => Err(EINVAL),
            },
            _ => Ok(Handled::FallThrough),
        }
    }

    fn device_feature(
        self: Pin<&Self>,
        _dev: &Device,
        _flags: u32,
        _arg: usize,
        _argsz: usize,
    ) -> Result<Handled> {
        self.features_seen.fetch_add(1, Ordering::Relaxed);
        Ok(Handled::FallThrough)
    }

    fn reset_prepare(self: Pin<&Self>, _dev: &Device) {
        self.reset_prepares.fetch_add(1, Ordering::Relaxed);
    }

    fn reset_done(self: Pin<&Self>, _dev: &Device, result: Result) {
        if result.is_ok() {
            self.reset_dones.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset(self: Pin<&Self>, _dev: &Device) -> Result {
        *self.window.lock() = [0u8; WINDOW.1];
        self.resets.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn bar_window_read(
        self: Pin<&Self>,
        dev: &Device,
        bar: usize,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let at = usize::try_from(pos).map_err(|_| EINVAL)?;
        if bar == 2 {
            let b = self.bar2.lock();
            buf.copy_from_slice(b.get(at..at + buf.len()).ok_or(EINVAL)?);
            return Ok(buf.len());
        }
        let device_reg = match at {
            0x10 => Some(dev.read32(0, 0)?),
            0x18 => Some(dev.read32(0, 0x04)?),
            _ => None,
        };
        let mut w = *self.window.lock();
        w[..4].copy_from_slice(&MAGIC.to_le_bytes());
        if let Some(v) = device_reg {
            let reg = w.get_mut(at..at + 4).ok_or(EINVAL)?;
            reg.copy_from_slice(&v.to_le_bytes());
        }
        buf.copy_from_slice(w.get(at..at + buf.len()).ok_or(EINVAL)?);
        Ok(buf.len())
    }

    fn bar_window_write(
        self: Pin<&Self>,
        dev: &Device,
        bar: usize,
        pos: u64,
        buf: &[u8],
    ) -> Result<usize> {
        let at = usize::try_from(pos).map_err(|_| EINVAL)?;
        if bar == 2 {
            let mut b = self.bar2.lock();
            b.get_mut(at..at + buf.len())
                .ok_or(EINVAL)?
                .copy_from_slice(buf);
            return Ok(buf.len());
        }
        if at == 0x14 && buf.len() == 4 {
            let v = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            dev.write32(0, 0x04, v)?;
            return Ok(4);
        }
        let mut w = self.window.lock();
        let dst = w.get_mut(at..at + buf.len()).ok_or(EINVAL)?;
        dst.copy_from_slice(buf);
        Ok(buf.len())
    }
}

sdk::module_vfio_pci_variant! {
    type: HookTest,
    name: "vfio_pci_hooktest",
    driver: "vfio-pci-hooktest",
    author: "vfio-pci-rs",
    description: "Test-only VFIO PCI variant exercising the SDK's hooks on QEMU edu",
    license: "GPL",
    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
}
