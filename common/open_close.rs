// SPDX-License-Identifier: GPL-2.0
//! What happens when user space opens and closes a device, following upstream
//! `vfio_pci_core_enable` / `vfio_pci_core_disable`, so the next user (or the host driver) gets
//! the device back as it was.
//!
//! Open: stop DMA, enable the function, try a function reset (and remember whether that works,
//! reported as `VFIO_DEVICE_FLAGS_RESET`), save config space, then the variant's `open` hook.
//! Close: the variant's `close` hook, stop DMA, put the saved config back, reset if possible
//! (with INTx and MSI off during the reset), restore, disable.
//!
//! The virtual config space is rebuilt at every open from the device as the reset left it.
//!
//! Interrupts (`features/interrupts.rs`): open probes how INTx can be masked; close turns off whatever
//! mode is active right after stopping DMA, and drops the ERR and REQ eventfds last.
//!
//! Power: open holds a runtime-PM reference (so the device is in D0 while open) and close drops
//! it, unless `disable_idle_d3`; without CONFIG_PM both are no-ops, as for upstream.
//!
//! dev_set: a device closed without a function reset is marked `needs_reset`; when the last
//! open device of its set closes, a slot or bus reset of the set is tried
//! (`crate::features::hot_reset::try_reset`).

use crate::abi::MAX_REGIONS;
use crate::features::config::HostConfig;
use crate::logic::pci_regs;
use crate::state::DeviceState;
use core::sync::atomic::Ordering;
use kernel::error::{
    code::{EAGAIN, EINVAL},
    Result,
};
use kernel::prelude::*;

/// `open_device`: called by the VFIO core on the first open, under `dev_set->lock`.
pub(crate) fn open(dev: &DeviceState) -> Result {
    let pdev = &dev.pdev;
    // Awake while open: runtime PM may have put the idle device in D3hot.
    if !dev.disable_idle_d3 {
        pdev.pm_get()?;
    }
    if let Err(e) = enable(dev) {
        if !dev.disable_idle_d3 {
            pdev.pm_put();
        }
        return Err(e);
    }
    finish(dev)
}

/// `vfio_pci_core_enable` up to the variant's hook; on failure nothing is left enabled.
fn enable(dev: &DeviceState) -> Result {
    let pdev = &dev.pdev;
    {
        // Gate first (the lock order); nothing is enabled yet, so nothing here flushes.
        let mut irqs = dev.irq_gate.lock();
        let mut guard = dev.inner.lock();
        let st = &mut *guard;
        // Our saved state must not include bus mastering.
        pdev.clear_master();
        pdev.enable()?;
        let variant_reset = dev.variant_ops().reset.is_some();
        // A variant's reset replaces the function reset; it runs once the device is open
        // (`finish`), without the state mutex its device context takes.
        let reset = if variant_reset {
            Err(kernel::error::code::ENOTTY)
        } else {
            dev.own_reset(|| pdev.try_reset_function())
        };
        match reset {
            // Someone holds the device lock: fail the open rather than hand out a dirty device.
            Err(e) if e == EAGAIN => {
                pdev.disable();
                return Err(e);
            }
            r => st.reset_works = r.is_ok(),
        }
        st.saved = pdev.save_state();
        st.enabled = true;
        crate::features::interrupts::open(dev, &mut irqs);
        let mut info = pdev.config_info();
        info.nointx = irqs.nointx;
        info.no_dma = dev.mediated;
        // A memory BAR is sized by its memory, whatever the function has there.
        for m in dev.memory_bars.iter().flatten() {
            let b = m.bar as usize;
            if let Some(pair) = info.bars.get_mut(b..b + 2) {
                pair[0] = crate::logic::config_space::Resource {
                    start: m.phys | 1,
                    len: m.size,
                    io: false,
                    prefetch: true,
                    mem64: true,
                };
                pair[1] = Default::default();
            }
        }
        let mut host = HostConfig::new(dev, &mut st.pm);
        let built = st.config.init(&mut host, &info).and_then(|()| {
            crate::features::config::overlays(dev.variant_ops())
                .try_for_each(|o| st.config.add_overlay(&mut host, &o))
        });
        if built.is_ok() {
            for m in dev.memory_bars.iter().flatten() {
                st.config.clear_bar_pair(m.bar as usize);
            }
            st.bars = crate::state::BarState::open(pdev);
            st.config.publish_fast_reads(&dev.cfg_fast);
            crate::features::bar::unblock_memory(dev, st);
        }
        if let Err(e) = built {
            drop(guard);
            drop(irqs);
            crate::primitives::pci_function::dev_notice(
                pdev,
                format_args!("cannot build the virtual config space ({})\n", -e.0),
            );
            undo(dev, false);
            return Err(Error::from_errno(-e.0));
        }
    }
    Ok(())
}

/// The variant's part of open, then `vfio_pci_core_finish_enable`; on failure the device is
/// closed again (including the runtime-PM reference `open` took).
fn finish(dev: &DeviceState) -> Result {
    // Like the function reset it replaces at open, its failure does not fail the open.
    let _ = variant_reset(dev);
    if let Some(hook) = dev.variant_ops().open_device {
        dev.inner.lock().opening = true;
        // SAFETY: the variant data is live until the device is unregistered, and no op runs
        // after that; the handle is this device's.
        let ret = unsafe { hook(dev.variant_data(), dev.handle()) };
        dev.inner.lock().opening = false;
        if ret != 0 {
            undo(dev, false);
            put_pm(dev);
            return Err(Error::from_errno(ret));
        }
    }
    if let Some(hook) = dev.variant_ops().regions {
        let mut guard = dev.inner.lock();
        let st = &mut *guard;
        // SAFETY: variant data as above; `regions` has room for `MAX_REGIONS` entries.
        let n = unsafe {
            hook(
                dev.variant_data(),
                st.regions.as_mut_ptr(),
                MAX_REGIONS as u32,
            )
        };
        if n < 0 || n as usize > MAX_REGIONS || dev.variant_ops().region_rw.is_none() {
            drop(guard);
            close_common(dev);
            return Err(if n < 0 { Error::from_errno(n) } else { EINVAL });
        }
        st.n_regions = n as usize;
    }
    crate::features::sriov::vf_opened(dev);
    crate::features::migration::reset(dev);
    Ok(())
}

fn put_pm(dev: &DeviceState) {
    if !dev.disable_idle_d3 {
        dev.pdev.pm_put();
    }
}

/// `close_device`: called by the VFIO core on the last close, under `dev_set->lock`.
pub(crate) fn close(dev: &DeviceState) {
    crate::features::sriov::vf_closed(dev);
    close_common(dev);
}

/// The variant's reset, where upstream does a function reset (open, close); `None` if the
/// variant has none.
fn variant_reset(dev: &DeviceState) -> Option<Result> {
    let hook = dev.variant_ops().reset?;
    // SAFETY: the variant data is live until the device is unregistered; the handle is this
    // device's.
    Some(kernel::error::to_result(unsafe {
        hook(dev.variant_data(), dev.handle())
    }))
}

/// Close without the VF token bookkeeping (also the failure path of `finish`, before the VF
/// counted as a user).
fn close_common(dev: &DeviceState) {
    // Any data fd left open fails from now on; the next open starts in RUNNING.
    crate::features::migration::reset(dev);
    if let Some(hook) = dev.variant_ops().close_device {
        // SAFETY: as in `open`.
        unsafe { hook(dev.variant_data(), dev.handle()) };
    }
    // Before `undo` disables the device: the variant's reset may use its BARs.
    let reset_by_variant = variant_reset(dev).is_some_and(|r| r.is_ok());
    undo(dev, reset_by_variant);
    crate::features::interrupts::release_triggers(&mut dev.irq_gate.lock());
    put_pm(dev);
}

/// Puts the device back the way `open` found it. `reset_by_variant`: the variant's reset
/// hook just reset it, which counts as the function reset.
fn undo(dev: &DeviceState, reset_by_variant: bool) {
    let pdev = &dev.pdev;
    // Before the state mutex: disabling an ioeventfd waits for its write, which takes it.
    dev.ioeventfds.lock().clear();
    let mut irqs = dev.irq_gate.lock();
    {
        let mut guard = dev.inner.lock();
        let st = &mut *guard;
        dev.cfg_fast.clear();
        // The kernel's mappings of memory BARs go with the user, as upstream unmaps them.
        st.memory_maps = [const { None }; 6];
        if !st.enabled {
            return;
        }
        // The ioeventfds are gone, but nothing may write through the gate to what we undo.
        crate::features::bar::block_memory(dev);
        // Regions, BAR mappings and claims go first, as in upstream vfio_pci_core_disable.
        st.n_regions = 0;
        dev.bar_io.clear();
        st.bars = crate::state::BarState::default();
        // Back to D0 first: a function reset through PM fails in other states, and a device
        // without NoSoftRst would lose the state we restore.
        if pdev.current_state() != 0 {
            let _ =
                crate::features::power::set_power_state(pdev, &mut st.pm, 0, dev.sriov.active());
        }
        pdev.clear_master();
    }
    // No interrupt may fire into user space after close, nor stay requested. With the gate
    // and without the state mutex: INTx teardown flushes the virqfd workqueue.
    crate::features::interrupts::disable(dev, &mut irqs);
    drop(irqs);
    let mut guard = dev.inner.lock();
    let st = &mut *guard;
    // Put the config space saved at open into the save area (with nothing stored, the save
    // area still holds what open saved). If that fails, resetting with the current state is
    // better than nothing, but saving and restoring the current state without a reset is
    // busy work.
    let loaded = match st.saved.take() {
        Some(saved) => pdev.load_saved_state(saved).is_ok(),
        None => true,
    };
    let restore = if loaded {
        true
    } else {
        crate::primitives::pci_function::dev_notice(
            pdev,
            format_args!("couldn't reload the saved state\n"),
        );
        if st.reset_works {
            pdev.save_current_state();
        }
        st.reset_works
    };
    // Dirty until a function reset below says otherwise: then the dev_set's slot or bus
    // reset is due once the whole set is idle.
    dev.needs_reset.store(!reset_by_variant, Ordering::Relaxed);
    if restore {
        // INTx and MSI off during the reset, as pci_reset_function() does.
        let _ = pdev.write_config_word(pci_regs::COMMAND.into(), pci_regs::COMMAND_INTX_DISABLE);
        if st.reset_works && dev.own_reset(|| pdev.reset_if_unlocked()) {
            dev.needs_reset.store(false, Ordering::Relaxed);
        }
        pdev.restore_state();
    }
    pdev.disable();
    st.enabled = false;
    st.reset_works = false;
    drop(guard);
    crate::features::hot_reset::try_reset(dev);
}
