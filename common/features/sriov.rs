// SPDX-License-Identifier: GPL-2.0
//! SR-IOV, as upstream `vfio_pci_core.c` does it: a PF that already has VFs is refused at
//! registration; a PF we drive captures the VFs it creates (a bus notifier sets their
//! `driver_override` to the PF's driver name) and enables them through `sriov_configure`; the
//! trust between a PF user and VF users is opted into with a shared VF token (a UUID), set
//! with `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` on the PF or given as `vf_token=` after the device
//! name when a group hands out a device fd (the `match` op). Decisions are in
//! `logic::lifecycle`; this file keeps the state.
//!
//! Lifetimes: a VF finds its PF's [`DeviceState`] at registration, from the list of PFs that
//! enabled SR-IOV through us (`primitives/sriov_shims.c`). The PF disables SR-IOV (which unbinds and removes
//! its VFs) before it unregisters, so the PF's state outlives every VF that points to it.

use crate::logic::lifecycle::{self as lc, SriovRole, TokenDecision, TokenRefusal, UUID_SIZE};
use crate::state::DeviceState;
use crate::state::{Sriov, VfToken};
use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::error::{code::*, Error, Result};
use kernel::new_mutex;
use kernel::prelude::*;

#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_common_sriov_pf_add(pdev: *mut crate::bindings::pci_dev, owner: *mut c_void)
        -> i32;
    fn vfio_pci_common_sriov_pf_del(pdev: *mut crate::bindings::pci_dev);
    fn vfio_pci_common_sriov_pf_of(vf: *mut crate::bindings::pci_dev) -> *mut c_void;
    fn vfio_pci_common_vf_capture_start(
        pf: *mut crate::bindings::pci_dev,
        name: *const kernel::ffi::c_char,
    ) -> *mut c_void;
    fn vfio_pci_common_vf_capture_stop(capture: *mut c_void);
    fn vfio_pci_common_uuid_gen(out: *mut u8);
}

impl Sriov {
    /// The state of a device being registered: a PF gets a random token; a VF looks up its
    /// PF among those that enabled SR-IOV through us.
    pub(crate) fn new(pdev: &crate::primitives::pci_function::PciFunction) -> impl PinInit<Self> {
        let mut uuid = [0u8; UUID_SIZE];
        let is_pf = pdev.is_physfn();
        if is_pf {
            // SAFETY: `uuid` is 16 writable bytes.
            unsafe { vfio_pci_common_uuid_gen(uuid.as_mut_ptr()) };
        }
        let pf = if pdev.is_virtfn() {
            // SAFETY: valid device; the owner pointers in the list are PF `DeviceState`s.
            NonNull::new(
                unsafe { vfio_pci_common_sriov_pf_of(pdev.as_raw()) }.cast::<DeviceState>(),
            )
        } else {
            None
        };
        pin_init!(Self {
            is_pf,
            token <- new_mutex!(VfToken { uuid, users: 0 }, "vfio_pci_common::vf_token"),
            active: AtomicBool::new(false),
            pf,
            capture: AtomicPtr::new(core::ptr::null_mut()),
        })
    }
}

/// At registration (upstream `vfio_pci_vf_init`): a PF starts capturing its future VFs for
/// driver `name`.
pub(crate) fn register(dev: &DeviceState, name: *const kernel::ffi::c_char) -> Result {
    if !dev.sriov.is_pf {
        return Ok(());
    }
    // SAFETY: valid device; `name` is the variant's static driver name, which outlives the
    // device (the variant unregisters after all its devices).
    let c = kernel::error::from_err_ptr(unsafe {
        vfio_pci_common_vf_capture_start(dev.pdev.as_raw(), name)
    })?;
    dev.sriov.capture.store(c, Ordering::Release);
    Ok(())
}

/// At unregistration, after the VFIO device is gone (upstream `vfio_pci_vf_uninit`).
pub(crate) fn unregister(dev: &DeviceState) {
    let c = dev
        .sriov
        .capture
        .swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: `c` came from `vfio_pci_common_vf_capture_start` (or is null), stopped once.
    unsafe { vfio_pci_common_vf_capture_stop(c) };
}

/// `sriov_configure` (upstream `vfio_pci_core_sriov_configure`): with the PF's device lock held.
/// Returns the number of VFs enabled, or 0 after disabling.
pub(crate) fn configure(dev: &DeviceState, nr: i32) -> Result<i32> {
    let pdev = &dev.pdev;
    let step = lc::sriov_step(nr, dev.sriov.active.load(Ordering::Acquire))
        .map_err(|e| Error::from_errno(-e.0))?;
    match step {
        lc::SriovStep::Enable(nr) => {
            let owner = core::ptr::from_ref(dev).cast_mut().cast::<c_void>();
            // SAFETY: valid device; `owner` is this PF's state, removed from the list before
            // the state goes (here on failure, in `Disable` otherwise).
            kernel::error::to_result(unsafe {
                vfio_pci_common_sriov_pf_add(pdev.as_raw(), owner)
            })?;
            if let Err(e) = pdev.pm_get() {
                // SAFETY: valid device.
                unsafe { vfio_pci_common_sriov_pf_del(pdev.as_raw()) };
                return Err(e);
            }
            {
                // The PF must stay in D0 while it has VFs; the state mutex is our memory lock.
                // `active` is set under it before any VF exists, so a D3 write racing with
                // `enable_sriov` below is refused (upstream `sriov_active`).
                let mut inner = dev.inner.lock();
                dev.sriov.active.store(true, Ordering::Release);
                crate::features::bar::block_memory(dev);
                let _ = crate::features::power::set_power_state(pdev, &mut inner.pm, 0, true);
                crate::features::bar::unblock_memory(dev, &inner);
            }
            if let Err(e) = pdev.enable_sriov(nr) {
                pdev.pm_put();
                dev.sriov.active.store(false, Ordering::Release);
                // SAFETY: valid device.
                unsafe { vfio_pci_common_sriov_pf_del(pdev.as_raw()) };
                return Err(e);
            }
            Ok(nr)
        }
        lc::SriovStep::Disable => {
            if pdev.num_vf() > 0 {
                pdev.disable_sriov();
                pdev.pm_put();
            }
            dev.sriov.active.store(false, Ordering::Release);
            // SAFETY: valid device.
            unsafe { vfio_pci_common_sriov_pf_del(pdev.as_raw()) };
            Ok(0)
        }
    }
}

/// A VF of ours opened: one more user of its PF's token (upstream `finish_enable`).
pub(crate) fn vf_opened(dev: &DeviceState) {
    if let Some(pf) = dev.sriov.pf() {
        pf.sriov.token.lock().users += 1;
    }
}

/// A VF of ours closed.
pub(crate) fn vf_closed(dev: &DeviceState) {
    if let Some(pf) = dev.sriov.pf() {
        let mut t = pf.sriov.token.lock();
        t.users = t.users.saturating_sub(1);
    }
}

/// The `match` op (upstream `vfio_pci_core_match`): 1 if `buf` names this device (with a
/// valid VF token where one is needed), 0 if not, or a negative errno.
pub(crate) fn match_name(dev: &DeviceState, buf: &[u8]) -> Result<bool> {
    let given = match lc::match_name(dev.pdev.name().as_bytes(), buf) {
        Ok(lc::NameMatch::No) => return Ok(false),
        Ok(lc::NameMatch::Yes(t)) => t,
        Err(e) => return Err(Error::from_errno(-e.0)),
    };
    let decide = |role| lc::validate_vf_token(role, given);
    let decision = if dev.pdev.is_virtfn() {
        match dev.sriov.pf() {
            Some(pf) => {
                let t = pf.sriov.token.lock();
                decide(SriovRole::Vf {
                    pf_token: Some(t.uuid),
                })
            }
            None => decide(SriovRole::Vf { pf_token: None }),
        }
    } else if dev.sriov.is_pf {
        let mut t = dev.sriov.token.lock();
        let d = decide(SriovRole::Pf {
            token: t.uuid,
            vf_users: t.users,
        });
        if let Ok(TokenDecision::AllowAndSet(u)) = d {
            t.uuid = u;
        }
        d
    } else {
        decide(SriovRole::Other)
    };
    match decision {
        Ok(_) => Ok(true),
        Err(why) => {
            let msg = match why {
                TokenRefusal::PfNotOurs => {
                    "VF token incorrectly provided, PF not bound to vfio-pci"
                }
                TokenRefusal::Required => "VF token required to access device",
                TokenRefusal::Incorrect => "Incorrect VF token provided for device",
                TokenRefusal::NotPfOrVf => "VF token incorrectly provided, not a PF or VF",
            };
            crate::primitives::pci_function::dev_notice(&dev.pdev, format_args!("{msg}\n"));
            Err(Error::from_errno(-why.errno().0))
        }
    }
}

/// `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` (upstream `vfio_pci_core_feature_token`): sets the
/// PF's token; never reads it back.
pub(crate) fn feature_token(
    dev: &DeviceState,
    flags: u32,
    arg: usize,
    argsz: usize,
) -> Result<i32> {
    match lc::vf_token_feature(flags, argsz, dev.sriov.is_pf)
        .map_err(|e| Error::from_errno(-e.0))?
    {
        lc::FeatureOp::Probe => Ok(0),
        lc::FeatureOp::Do => {
            let mut uuid = [0u8; UUID_SIZE];
            kernel::uaccess::UserSlice::new(arg, UUID_SIZE)
                .reader()
                .read_slice(&mut uuid)?;
            dev.sriov.token.lock().uuid = uuid;
            Ok(0)
        }
    }
}

/// The `device_feature` op (upstream `vfio_pci_core_ioctl_feature`): the VF token only; the
/// low-power features are not implemented (`-ENOTTY`, like any unknown feature).
pub(crate) fn device_feature(
    dev: &DeviceState,
    flags: u32,
    arg: usize,
    argsz: usize,
) -> Result<i32> {
    match flags & lc::FEATURE_MASK {
        lc::FEATURE_PCI_VF_TOKEN => feature_token(dev, flags, arg, argsz),
        _ => Err(ENOTTY),
    }
}
