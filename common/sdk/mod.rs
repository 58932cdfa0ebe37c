// SPDX-License-Identifier: GPL-2.0
//! The variant SDK: everything a VFIO PCI variant driver is written against.
//!
//! A variant is a type implementing [`Variant`] plus one [`module_vfio_pci_variant!`] line. The
//! SDK turns that into the `pci_driver`, the override-only ID table modpost turns into
//! `vfio_pci:` aliases, the module boilerplate, and calls into `vfio_pci_common` through its
//! versioned C ABI. All `unsafe` of a variant lives here, in thin documented wrappers, so
//! variant files need none.
//!
//! Compiled into each variant module with
//! `#[path = "<relative path to>/common/sdk/mod.rs"] mod sdk;`.

#[path = "../abi.rs"]
pub(crate) mod abi;
#[path = "../bindings.rs"]
pub(crate) mod bindings;
mod checks;
#[path = "../dev_print.rs"]
mod dev_print;
mod device;
mod id;
mod mdev;
mod memmap;
#[allow(dead_code)]
pub(crate) mod migration;
mod pci;
mod registration;

pub(crate) use abi::{BarWindow, ConfigOverlay, MemoryBar};
pub(crate) use device::Device;
pub(crate) use id::PciId;
#[allow(unused_imports)]
pub(crate) use mdev::{MdevBusMaster, MdevType};
#[allow(unused_imports)]
pub(crate) use memmap::MemMap;
#[allow(unused_imports)]
pub(crate) use pci::{devfn, PciFunction};
pub(crate) use registration::Registration;

/// `EOVERFLOW` (a value too large), which the 6.12 kernel crate does not name.
#[allow(dead_code)]
pub(crate) fn eoverflow() -> kernel::error::Error {
    kernel::error::Error::from_errno(-(kernel::bindings::EOVERFLOW as i32))
}

/// What a variant file needs, in one `use`.
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub(crate) use super::migration::{Migration, StateReader, StateWriter};
    pub(crate) use super::{
        BarWindow, ConfigOverlay, Device, Handled, MdevBusMaster, MdevType, MemoryBar, MmapTarget,
        PciFunction, PciId, Regions, Variant,
    };
    pub(crate) use core::pin::Pin;
    pub(crate) use kernel::prelude::*;
}

use core::pin::Pin;
use kernel::error::{Error, Result};
use kernel::init::PinInit;
use kernel::prelude::vtable;

/// A VFIO PCI variant driver.
///
/// `Self` is the pinned per-device state: [`Variant::probe`] returns its initializer, the SDK
/// places it in a `Pin<KBox<Self>>` that lives from a successful probe until the device is
/// unregistered (after user space has closed it).
///
/// The optional hooks default to the common behaviour: implement only those you need, and mark
/// the `impl` with `#[vtable]` so the SDK knows which ones you wrote.
#[vtable]
pub(crate) trait Variant: Send + Sync + Sized + 'static {
    /// Data attached to each ID table entry, handed to `probe` for the entry that matched.
    type IdInfo: Send + Sync + 'static;

    /// Sets up a device that matched ID table entry `id`. Failing here refuses the device.
    fn probe(dev: &PciFunction, id: &'static Self::IdInfo) -> impl PinInit<Self, Error>;

    /// User space opened the device (first open), after the common module enabled it and
    /// built the virtual config space. Failing here fails the open. The only hook in which
    /// `dev` may hide capabilities. Runs under the dev_set lock (no other device sharing a
    /// reset with this one opens or closes meanwhile), without the state mutex.
    fn open(self: Pin<&Self>, _dev: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// User space closed the device (last close), before the common module disables it.
    /// Same locks as [`Variant::open`].
    fn close(self: Pin<&Self>, _dev: &Device) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Virtual config registers this variant adds on top of the emulated config space (at
    /// every open): user space reads their virtual value and changes only their writable
    /// bits; the device sees neither.
    const CONFIG_OVERLAYS: &'static [ConfigOverlay] = &[];

    /// Non-empty makes this a mediated variant (`sdk/mdev.rs`): each function it binds
    /// becomes an mdev parent offering these types (at most [`MdevType::MAX_TYPES`], one
    /// instance in all per function) instead of a VFIO device, and [`Variant::probe`] runs
    /// for each mdev created on it, whose VFIO device (emulated IOMMU) the common module
    /// serves over the function. [`MdevType::bus_master`] says whether the type's devices get
    /// [`Variant::BAR_WINDOWS`] and MSI. Checked at compile time.
    const MEDIATED: &'static [MdevType] = &[];

    /// What user space reads from an overlay (`size` bytes at `offset`), given its virtual
    /// value. Runs under the device's state lock: compute, do not block.
    fn config_read(self: Pin<&Self>, _offset: u16, _size: usize, _value: u32) -> u32 {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// A user write changed an overlay to `value`. Same rules as [`Variant::config_read`].
    fn config_write(self: Pin<&Self>, _offset: u16, _size: usize, _value: u32) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The device-specific regions of this open (indexes 9 and up, in the order added), asked
    /// at every open after [`Variant::open`]. Implement [`Variant::region_read`] (and
    /// [`Variant::region_write`] for writable regions) with it.
    fn regions(self: Pin<&Self>, _regions: &mut Regions<'_>) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Fills `buf` from device-specific region `index` (0-based among this variant's regions)
    /// at `pos`; the common module has checked that `pos..pos + buf.len()` is inside the
    /// region. Returns the bytes filled. Runs without the common module's locks.
    fn region_read(
        self: Pin<&Self>,
        _dev: &Device,
        _index: usize,
        _pos: u64,
        _buf: &mut [u8],
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// User space asked for a device reset (`VFIO_DEVICE_RESET`); it is about to happen.
    /// Runs without the common module's locks.
    fn reset_prepare(self: Pin<&Self>, _dev: &Device) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The reset [`Variant::reset_prepare`] announced is over (`result` is what user space gets).
    fn reset_done(self: Pin<&Self>, _dev: &Device, _result: Result) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// A slot or bus reset that resets this device is about to happen: a
    /// `VFIO_DEVICE_PCI_HOT_RESET` (on this device or another one sharing the reset), or the
    /// reset the common module does when the last open device sharing it closes. No device
    /// sharing the reset can be opened or closed until [`Variant::bus_reset_done`]. Runs
    /// under the dev_set lock, without the state mutex.
    fn bus_reset_prepare(self: Pin<&Self>, _dev: &Device) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The reset [`Variant::bus_reset_prepare`] announced is over, with its result.
    fn bus_reset_done(self: Pin<&Self>, _dev: &Device, _result: Result) {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes `buf` to a writable device-specific region at `pos` (inside the region).
    /// Runs without the common module's locks.
    fn region_write(
        self: Pin<&Self>,
        _dev: &Device,
        _index: usize,
        _pos: u64,
        _buf: &[u8],
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Sees every `ioctl` on the device fd (`cmd`, and `arg` as user space passed it: a
    /// user pointer for most commands, to be read with `kernel::uaccess::UserSlice`) before
    /// the common module. Return [`Handled::FallThrough`] for every command you do not own,
    /// also standard ones you only watch. Runs without the common module's locks, possibly on
    /// several threads at once.
    fn ioctl(self: Pin<&Self>, _dev: &Device, _cmd: u32, _arg: usize) -> Result<Handled> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Sees every `VFIO_DEVICE_FEATURE` first: `flags` of the header (feature number and
    /// `GET`/`SET`/`PROBE`), `arg` the user pointer to the `argsz` bytes after it. Same
    /// rules as [`Variant::ioctl`].
    fn device_feature(
        self: Pin<&Self>,
        _dev: &Device,
        _flags: u32,
        _arg: usize,
        _argsz: usize,
    ) -> Result<Handled> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Replaces the function reset of `VFIO_DEVICE_RESET` (which is then offered even if the
    /// device has none). Called after user mappings of the BARs were revoked and the device
    /// put in D0, between `reset_prepare` and `reset_done`, without the state mutex (so the
    /// device context works); user read/write may run meanwhile. The open and close of the
    /// device keep the common module's function reset.
    fn reset(self: Pin<&Self>, _dev: &Device) -> Result {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Windows of BARs this variant emulates, at most one per BAR: user `read`/`write`
    /// inside a window goes to [`Variant::bar_window_read`]/[`Variant::bar_window_write`],
    /// the rest of the BAR to the device; mmap of any page holding part of a window is
    /// refused and `GET_REGION_INFO` lists the mappable areas around it (sparse-mmap
    /// capability); ioeventfds into a window are refused. `BarWindow::emulated_bar(bar, size)`
    /// makes a whole BAR the variant's, with its own size (also where the device has no BAR):
    /// readable and writable, never mappable. Checked at compile time.
    const BAR_WINDOWS: &'static [BarWindow] = &[];

    /// Fills `buf` from the window of BAR `bar` at `pos` (relative to the window; the common
    /// module keeps `pos..pos + buf.len()` inside it, at most 64 bytes at a time). Returns
    /// the bytes filled. Runs without the common module's locks, possibly concurrently.
    fn bar_window_read(
        self: Pin<&Self>,
        _dev: &Device,
        _bar: usize,
        _pos: u64,
        _buf: &mut [u8],
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// A user write of `buf` to the window of BAR `bar` at `pos`. Same rules as
    /// [`Variant::bar_window_read`].
    fn bar_window_write(
        self: Pin<&Self>,
        _dev: &Device,
        _bar: usize,
        _pos: u64,
        _buf: &[u8],
    ) -> Result<usize> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Device memory the CPU reaches coherently at a physical address firmware describes
    /// (NVLink-C2C, CXL type 2), shown to user space as emulated 64-bit prefetchable BARs
    /// ([`MemoryBar::cached`], [`MemoryBar::write_combined`]): asked once per device, right
    /// after [`Variant::probe`]. The common module serves them whole: config-space sizing
    /// (registers 0 at open and at `VFIO_DEVICE_RESET`), region info with a sparse-mmap
    /// capability over the memory, read/write (`0xff` past the memory, up to the power-of-two
    /// BAR size), mmap of the memory, no ioeventfd; it refuses (fails the probe) a range that
    /// touches System RAM. `None` entries are skipped: no memory, the device is a plain one.
    fn memory_bars(self: Pin<&Self>) -> [Option<MemoryBar>; 3] {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// What page `page` of device-specific region `index` (added with `REGION_MMAP`) maps to,
    /// asked when user space touches its mapping: a page of one of the device's BARs
    /// ([`MmapTarget::bar`]), or a frame the variant vouches for
    /// ([`MmapTarget::pfn`], `unsafe`). The common module checks the mapping fits the region
    /// and its READ/WRITE flags, maps the page only while memory decode is on, and revokes it
    /// on reset, decode off and D3 like BAR mappings. Runs without the common module's locks.
    fn region_mmap(
        self: Pin<&Self>,
        _dev: &Device,
        _index: usize,
        _page: u64,
    ) -> Result<MmapTarget> {
        kernel::build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// What a variant's [`Variant::ioctl`] or [`Variant::device_feature`] hook did with a call.
#[allow(dead_code)]
pub(crate) enum Handled {
    /// The variant answered; user space gets this value.
    Done(i64),
    /// Not the variant's: the common module answers as if the hook were not there.
    FallThrough,
}

/// Polls `done` about every millisecond (sleeping in between) until it returns `true`, for
/// at most `timeout_ms`; `EBUSY` if it never does. For hooks that wait for their device
/// (a migration `stop` waiting for work in flight to finish).
#[allow(dead_code)]
pub(crate) fn poll_until(timeout_ms: u32, mut done: impl FnMut() -> Result<bool>) -> Result {
    for _ in 0..=timeout_ms {
        if done()? {
            return Ok(());
        }
        // SAFETY: `msleep` only sleeps; hooks run in process context.
        unsafe { kernel::bindings::msleep(1) };
    }
    Err(kernel::error::code::EBUSY)
}

/// `VFIO_REGION_TYPE_PCI_VENDOR_TYPE`: region types private to one PCI vendor.
#[allow(dead_code)]
pub(crate) const REGION_TYPE_PCI_VENDOR: u32 = 1 << 31;
/// A readable region (`VFIO_REGION_INFO_FLAG_READ`).
#[allow(dead_code)]
pub(crate) const REGION_READ: u32 = 1 << 0;
/// A writable region (`VFIO_REGION_INFO_FLAG_WRITE`).
#[allow(dead_code)]
pub(crate) const REGION_WRITE: u32 = 1 << 1;
/// A region user space may mmap (`VFIO_REGION_INFO_FLAG_MMAP`); needs `Variant::region_mmap`.
#[allow(dead_code)]
pub(crate) const REGION_MMAP: u32 = 1 << 2;

/// What a page of a mappable device-specific region is ([`Variant::region_mmap`]).
pub(crate) struct MmapTarget(abi::MmapTarget);

#[allow(dead_code)]
impl MmapTarget {
    /// The page at `offset` (page-aligned, inside the BAR) of the device's memory BAR `bar`;
    /// checked by the common module at every fault (SIGBUS otherwise).
    pub(crate) const fn bar(bar: usize, offset: u64) -> Self {
        Self(abi::MmapTarget {
            kind: abi::MMAP_TARGET_BAR,
            bar: bar as u32,
            value: offset,
        })
    }

    /// Page frame `pfn`, mapped into user space uncached as it is.
    ///
    /// # Safety
    ///
    /// `pfn` must be memory that belongs to this device and that its user may read and write
    /// for as long as the device is bound (device memory outside its BARs, such as nvgrace's
    /// coherent GPU memory): never RAM the kernel or another device uses.
    pub(crate) const unsafe fn pfn(pfn: u64) -> Self {
        Self(abi::MmapTarget {
            kind: abi::MMAP_TARGET_PFN,
            bar: 0,
            value: pfn,
        })
    }
}

/// The device-specific regions a variant declares in [`Variant::regions`].
pub(crate) struct Regions<'a> {
    out: &'a mut [abi::RegionDesc],
    n: usize,
}

#[allow(dead_code)]
impl Regions<'_> {
    /// Adds a region of `size` bytes with VFIO type and subtype and `REGION_READ` /
    /// `REGION_WRITE` flags; returns its index among this variant's regions.
    pub(crate) fn add(&mut self, type_: u32, subtype: u32, size: u64, flags: u32) -> Result<usize> {
        let slot = self
            .out
            .get_mut(self.n)
            .ok_or(kernel::error::code::ENOSPC)?;
        *slot = abi::RegionDesc::new(
            type_,
            subtype,
            size,
            flags & (REGION_READ | REGION_WRITE | REGION_MMAP),
        );
        self.n += 1;
        Ok(self.n - 1)
    }

    /// Adds an extra `GET_REGION_INFO` capability (header `id`/`version`, then `body`) to the
    /// region at `index`.
    pub(crate) fn add_capability(
        &mut self,
        index: usize,
        id: u16,
        version: u16,
        body: &[u8],
    ) -> Result {
        use kernel::error::code::{EINVAL, ENOSPC};
        let r = self
            .out
            .get_mut(..self.n)
            .and_then(|r| r.get_mut(index))
            .ok_or(EINVAL)?;
        let c = r.caps.get_mut(r.n_caps as usize).ok_or(ENOSPC)?;
        let dst = c.body.get_mut(..body.len()).ok_or(ENOSPC)?;
        dst.copy_from_slice(body);
        c.id = id;
        c.version = version;
        c.len = body.len() as u16;
        r.n_caps += 1;
        Ok(())
    }
}

/// Declares a variant module: its `pci_driver`, its override-only ID table (exported to modpost
/// as `vfio_pci:` aliases) and the module boilerplate.
///
/// ```ignore
/// module_vfio_pci_variant! {
///     type: MyVariant,
///     name: "vfio_pci_my",             // module name (KBUILD_MODNAME)
///     driver: "vfio-pci-my",           // pci_driver name, for driver_override
///     author: "...",
///     description: "...",
///     license: "GPL",
///     ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
///     migration: true,                 // optional: `MyVariant` implements `Migration`
/// }
/// ```
macro_rules! module_vfio_pci_variant {
    (
        type: $type:ty,
        name: $name:tt,
        driver: $driver:tt,
        author: $author:tt,
        description: $description:tt,
        license: $license:tt,
        ids: [$(($id:expr, $info:expr)),+ $(,)?]
        $(, migration: $migration:tt)? $(,)?
    ) => {
        const __VFIO_VARIANT_IDS: &[$crate::sdk::PciId] = &[$($id),+];
        const __VFIO_VARIANT_N: usize = __VFIO_VARIANT_IDS.len();

        /// The ID table, under the symbol name modpost reads in 6.12
        /// (`__mod_<bus>__<name>_device_table`), so modpost itself generates the aliases. Every
        /// entry is override-only: `PciId` offers no other kind.
        // `no_mangle` counts as unsafe code; `#![deny(unsafe_code)]` in a variant's crate root
        // must not refuse what the SDK writes for it.
        #[allow(unsafe_code)]
        #[no_mangle]
        #[used]
        static __mod_pci__vfio_pci_variant_ids_device_table:
            [$crate::sdk::bindings::pci_device_id; __VFIO_VARIANT_N + 1] =
            $crate::sdk::PciId::table::<__VFIO_VARIANT_N, { __VFIO_VARIANT_N + 1 }>(
                __VFIO_VARIANT_IDS,
            );

        static __VFIO_VARIANT_INFO: [<$type as $crate::sdk::Variant>::IdInfo; __VFIO_VARIANT_N] =
            [$($info),+];

        static __VFIO_VARIANT_OPS: $crate::sdk::abi::VariantOps = $crate::sdk::abi::VariantOps {
            migration: $crate::sdk::migration::__vfio_variant_migration!($type $(, $migration)?),
            ..$crate::sdk::Registration::<$type>::ops(::kernel::c_str!($driver))
        };

        /// The module's state: the registered driver, unregistered when the module unloads.
        struct __VfioVariantModule {
            _reg: ::core::pin::Pin<::kernel::alloc::KBox<$crate::sdk::Registration<$type>>>,
        }

        ::kernel::prelude::module! {
            type: __VfioVariantModule,
            name: $name,
            author: $author,
            description: $description,
            license: $license,
        }

        impl ::kernel::Module for __VfioVariantModule {
            fn init(module: &'static ::kernel::ThisModule) -> ::kernel::error::Result<Self> {
                Ok(__VfioVariantModule {
                    _reg: ::kernel::alloc::KBox::pin_init(
                        $crate::sdk::Registration::<$type>::new(
                            module,
                            ::kernel::c_str!($name),
                            &__VFIO_VARIANT_OPS,
                            &__mod_pci__vfio_pci_variant_ids_device_table,
                            &__VFIO_VARIANT_INFO,
                        ),
                        ::kernel::alloc::flags::GFP_KERNEL,
                    )?,
                })
            }
        }
    };
}
pub(crate) use module_vfio_pci_variant;
