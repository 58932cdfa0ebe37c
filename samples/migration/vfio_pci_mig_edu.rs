// SPDX-License-Identifier: GPL-2.0
//! A migratable VFIO PCI variant for QEMU's `edu` device (1234:11e8): the sample to copy when
//! your device needs live migration.
//!
//! A VMM migrates a device through the VFIO uAPI: on the source it goes RUNNING -> STOP ->
//! STOP_COPY and reads the device's state from a data fd; on the destination it goes
//! RESUMING, writes that state, then STOP -> RUNNING. The SDK and `vfio_pci_common` run all
//! of that (states, data fds, stream framing and checksum); a variant supplies four things,
//! all in the `Migration` impl below:
//!
//! 1. `stop`: make the device stop changing its own state (here: wait for the factorial and
//!    the DMA in flight to finish);
//! 2. `start`: undo `stop` (edu needs nothing);
//! 3. `save`: read the guest-visible state out of the device;
//! 4. `load`: check a saved state, then put it into the device.
//!
//! The edu device (QEMU `hw/misc/edu.c`), BAR 0, 32-bit registers below 0x80, 32 or 64-bit
//! from 0x80:
//!
//! | offset | register                    | how it is restored                               |
//! |--------|-----------------------------|--------------------------------------------------|
//! | 0x04   | liveness: reads ~written    | write the complement of the saved value          |
//! | 0x08   | factorial: write n, read n! | write the n whose n! (mod 2^32) is the saved one |
//! | 0x20   | status: 0x01 busy, 0x80 irq | write bit 0x80 (bit 0x01 is the device's)        |
//! | 0x24   | interrupt status (RO)       | acknowledge all (0x64), raise the saved (0x60)   |
//! | 0x80   | DMA source                  | written (ignored by edu while a DMA runs)        |
//! | 0x88   | DMA destination             | as 0x80                                          |
//! | 0x90   | DMA count                   | as 0x80                                          |
//! | 0x98   | DMA command: 1 run, 2 dir,  | not restored (see below); checked to be idle     |
//! |        | 4 irq                       |                                                  |
//!
//! The DMA command is the one register edu does not let us restore: it takes a write only
//! with "run" set, which starts a transfer (and edu aborts QEMU on an empty one). Idle, its
//! other bits only record the last transfer and do nothing until the next command, which
//! writes them all again; so the sample saves it (to check the device was idle) and leaves
//! it as the destination has it.
//!
//! No `unsafe` here: everything goes through the SDK (`dev.read32`, `dev.write64`, ...).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
#[path = "../../common/sdk/mod.rs"]
mod sdk;

use sdk::prelude::*;

/// The BAR with edu's registers.
const BAR: usize = 0;
const LIVENESS: u64 = 0x04;
const FACTORIAL: u64 = 0x08;
const STATUS: u64 = 0x20;
const IRQ_STATUS: u64 = 0x24;
const IRQ_RAISE: u64 = 0x60;
const IRQ_ACK: u64 = 0x64;
const DMA_SRC: u64 = 0x80;
const DMA_DST: u64 = 0x88;
const DMA_COUNT: u64 = 0x90;
const DMA_CMD: u64 = 0x98;

/// Status: a factorial is being computed (set by edu, read-only for us).
const STATUS_COMPUTING: u32 = 0x01;
/// Status: raise interrupt 0x01 when a factorial is done.
const STATUS_IRQ_FACT: u32 = 0x80;
/// DMA command: a transfer is running.
const DMA_RUN: u64 = 0x1;
/// DMA command bits besides "run": direction (0x2) and "raise interrupt 0x100 when done".
const DMA_CMD_BITS: u64 = 0x2 | 0x4;

/// Format of our saved state; bump it when the fields change (the other side may be older).
const STATE_VERSION: u32 = 1;
/// version, liveness, factorial, status, interrupt status (u32 each), then the four DMA
/// registers (u64 each).
const STATE_LEN: usize = 5 * 4 + 4 * 8;

/// How long `stop` waits for the device to finish its work (edu's DMA takes 100 ms).
const IDLE_TIMEOUT_MS: u32 = 2000;

/// One edu's registers as saved.
struct EduState {
    liveness: u32,
    factorial: u32,
    status: u32,
    irq_status: u32,
    dma_src: u64,
    dma_dst: u64,
    dma_count: u64,
    /// Saved to check it is idle, not restored (see the module documentation).
    dma_cmd: u64,
}

/// edu computes `n!` in 32 bits, so its factorial register can only ever hold one of these:
/// the result for n = 0..=33, or 0 (the value after reset, and n! for every n >= 34).
fn factorial_input(result: u32) -> Option<u32> {
    let mut fact: u32 = 1;
    for n in 0..=34u32 {
        if n > 0 {
            fact = fact.wrapping_mul(n);
        }
        if fact == result {
            return Some(n);
        }
    }
    None
}

/// Waits until no factorial and no DMA is in flight.
fn wait_idle(dev: &Device) -> Result {
    sdk::poll_until(IDLE_TIMEOUT_MS, || {
        let computing = dev.read32(BAR, STATUS)? & STATUS_COMPUTING != 0;
        let dma_running = dev.read64(BAR, DMA_CMD)? & DMA_RUN != 0;
        Ok(!computing && !dma_running)
    })
}

/// Per-device state: none, edu keeps everything in its registers.
struct MigEdu;

#[vtable]
impl Variant for MigEdu {
    type IdInfo = ();

    fn probe(_dev: &PciFunction, _id: &'static ()) -> impl PinInit<Self, Error> {
        MigEdu
    }
}

#[vtable]
impl Migration for MigEdu {
    const MAX_STATE: usize = STATE_LEN;
    // Offered to show it: the first save runs while the device runs, the second once it is
    // stopped; the destination loads both, the second one last.
    const PRE_COPY: bool = true;

    fn stop(self: Pin<&Self>, dev: &Device) -> Result {
        // edu changes its own state only while computing or copying: wait for both to end.
        // (User space can still write its registers: not changing them while STOP is the
        // VMM's part of the contract.)
        wait_idle(dev)
    }

    fn start(self: Pin<&Self>, _dev: &Device) -> Result {
        Ok(())
    }

    fn save(self: Pin<&Self>, dev: &Device, out: &mut StateWriter<'_>) -> Result {
        out.put_u32(STATE_VERSION)?;
        out.put_u32(dev.read32(BAR, LIVENESS)?)?;
        out.put_u32(dev.read32(BAR, FACTORIAL)?)?;
        out.put_u32(dev.read32(BAR, STATUS)?)?;
        out.put_u32(dev.read32(BAR, IRQ_STATUS)?)?;
        out.put_u64(dev.read64(BAR, DMA_SRC)?)?;
        out.put_u64(dev.read64(BAR, DMA_DST)?)?;
        out.put_u64(dev.read64(BAR, DMA_COUNT)?)?;
        out.put_u64(dev.read64(BAR, DMA_CMD)?)
    }

    fn load(self: Pin<&Self>, dev: &Device, state: &mut StateReader<'_>) -> Result {
        // Step 1: read and check everything before touching the device, so a state this
        // build cannot restore changes nothing.
        if state.u32()? != STATE_VERSION {
            return Err(EINVAL);
        }
        let s = EduState {
            liveness: state.u32()?,
            factorial: state.u32()?,
            status: state.u32()?,
            irq_status: state.u32()?,
            dma_src: state.u64()?,
            dma_dst: state.u64()?,
            dma_count: state.u64()?,
            dma_cmd: state.u64()?,
        };
        state.finish()?;
        let n = factorial_input(s.factorial).ok_or(EINVAL)?;
        // A stopped edu is idle: a state saved mid-computation or mid-DMA is not one of ours.
        if s.status & !STATUS_IRQ_FACT != 0 || s.dma_cmd & !DMA_CMD_BITS != 0 {
            return Err(EINVAL);
        }

        // Step 2: restore, in an order that raises no interrupt of its own.
        wait_idle(dev)?;
        dev.write32(BAR, LIVENESS, !s.liveness)?;
        // Factorial interrupts off while we recompute the saved result.
        dev.write32(BAR, STATUS, 0)?;
        dev.write32(BAR, FACTORIAL, n)?;
        wait_idle(dev)?;
        if dev.read32(BAR, FACTORIAL)? != s.factorial {
            return Err(EIO);
        }
        dev.write64(BAR, DMA_SRC, s.dma_src)?;
        dev.write64(BAR, DMA_DST, s.dma_dst)?;
        dev.write64(BAR, DMA_COUNT, s.dma_count)?;
        // Interrupt status last (the factorial above may have raised one): clear all, then
        // raise exactly the saved bits, so the destination's interrupt is pending again.
        dev.write32(BAR, IRQ_ACK, u32::MAX)?;
        if s.irq_status != 0 {
            dev.write32(BAR, IRQ_RAISE, s.irq_status)?;
        }
        dev.write32(BAR, STATUS, s.status & STATUS_IRQ_FACT)
    }
}

sdk::module_vfio_pci_variant! {
    type: MigEdu,
    name: "vfio_pci_mig_edu",
    driver: "vfio-pci-mig-edu",
    author: "vfio-pci-rs developers",
    description: "Live-migratable VFIO PCI variant for QEMU's edu device (SDK sample)",
    license: "GPL",
    ids: [(PciId::vendor_device(0x1234, 0x11e8), ())],
    migration: true,
}
