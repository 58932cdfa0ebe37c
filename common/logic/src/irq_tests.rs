// SPDX-License-Identifier: GPL-2.0
//! `GET_IRQ_INFO` and `SET_IRQS` argument rules as specifications: one upstream behaviour per
//! test, plus properties over arbitrary headers.

use super::errno::{EINVAL, ENOTTY};
use super::irq::*;
use proptest::prelude::*;

/// An e1000e-like PCIe function: INTx pin A, MSI with 1 vector, MSI-X with 5.
fn pcie_caps() -> IrqCaps {
    IrqCaps {
        intx_pin: 1,
        msi_flags: Some(0x0080),
        msix_flags: Some(0x0004),
        pcie: true,
        dyn_msix: false,
    }
}

/// edu: conventional PCI, INTx pin A, MSI with 1 vector, no MSI-X.
fn edu_caps() -> IrqCaps {
    IrqCaps {
        intx_pin: 1,
        msi_flags: Some(0x0080),
        msix_flags: None,
        pcie: false,
        dyn_msix: false,
    }
}

fn info(index: u32, argsz: u32, caps: &IrqCaps) -> Result<IrqInfo, super::errno::Errno> {
    IrqInfo::from_user(
        &IrqInfo {
            argsz,
            flags: 0xa5a5,
            index,
            count: 0xa5a5,
        }
        .to_bytes(),
    )
    .answer(caps)
}

fn hdr(flags: u32, index: u32, start: u32, count: u32, data_len: u32) -> IrqSet {
    IrqSet {
        argsz: IrqSet::MINSZ as u32 + data_len,
        flags,
        index,
        start,
        count,
    }
}

const TRIG: u32 = SET_ACTION_TRIGGER;
const NONE: u32 = SET_DATA_NONE;
const BOOL: u32 = SET_DATA_BOOL;
const EFD: u32 = SET_DATA_EVENTFD;

fn st(mode: Mode) -> IrqStatus {
    IrqStatus {
        mode,
        err_set: false,
        req_set: false,
        pcie: true,
    }
}

fn fds(v: &[i32]) -> std::vec::Vec<u8> {
    v.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

#[test]
fn irq_info_counts_follow_the_capabilities() {
    let c = pcie_caps();
    assert_eq!(
        info(INTX, 16, &c).map(|i| (i.count, i.flags)),
        Ok((1, INFO_EVENTFD | INFO_MASKABLE | INFO_AUTOMASKED))
    );
    assert_eq!(
        info(MSI, 16, &c).map(|i| (i.count, i.flags)),
        Ok((1, INFO_EVENTFD | INFO_NORESIZE))
    );
    assert_eq!(
        info(MSIX, 16, &c).map(|i| (i.count, i.flags)),
        Ok((5, INFO_EVENTFD | INFO_NORESIZE))
    );
    assert_eq!(
        info(ERR, 16, &c).map(|i| (i.count, i.flags)),
        Ok((1, INFO_EVENTFD | INFO_NORESIZE))
    );
    assert_eq!(
        info(REQ, 16, &c).map(|i| (i.count, i.flags)),
        Ok((1, INFO_EVENTFD | INFO_NORESIZE))
    );
}

#[test]
fn irq_info_msi_count_is_two_to_the_mmc() {
    let c = IrqCaps {
        msi_flags: Some(0x0086),
        ..pcie_caps()
    };
    assert_eq!(info(MSI, 16, &c).map(|i| i.count), Ok(8));
}

#[test]
fn irq_info_msix_resizable_only_with_dynamic_allocation() {
    let c = IrqCaps {
        dyn_msix: true,
        msix_flags: Some(0x0040),
        ..pcie_caps()
    };
    assert_eq!(
        info(MSIX, 16, &c).map(|i| (i.count, i.flags)),
        Ok((65, INFO_EVENTFD))
    );
}

#[test]
fn irq_info_absent_capabilities_count_zero_but_answer() {
    let c = IrqCaps {
        intx_pin: 0,
        msi_flags: None,
        msix_flags: None,
        ..edu_caps()
    };
    assert_eq!(info(INTX, 16, &c).map(|i| i.count), Ok(0));
    assert_eq!(info(MSI, 16, &c).map(|i| i.count), Ok(0));
    assert_eq!(info(MSIX, 16, &c).map(|i| i.count), Ok(0));
}

#[test]
fn irq_info_err_only_for_pcie() {
    assert_eq!(info(ERR, 16, &edu_caps()), Err(EINVAL));
}

#[test]
fn irq_info_rejects_short_argsz_and_bad_index() {
    assert_eq!(info(INTX, 15, &pcie_caps()), Err(EINVAL));
    assert_eq!(info(NUM_IRQS, 16, &pcie_caps()), Err(EINVAL));
    assert_eq!(info(u32::MAX, 16, &pcie_caps()), Err(EINVAL));
    assert_eq!(info(INTX, 4096, &pcie_caps()).map(|i| i.argsz), Ok(4096));
}

#[test]
fn validate_follows_vfio_set_irqs_validate_and_prepare() {
    // Short argsz, bad index, unknown flags, range past the count, u32 overflow.
    assert_eq!(
        IrqSet {
            argsz: 19,
            ..hdr(TRIG | NONE, INTX, 0, 1, 0)
        }
        .validate(1),
        Err(EINVAL)
    );
    assert_eq!(hdr(TRIG | NONE, 5, 0, 0, 0).validate(1), Err(EINVAL));
    assert_eq!(
        hdr(TRIG | NONE | 0x40, INTX, 0, 1, 0).validate(1),
        Err(EINVAL)
    );
    assert_eq!(hdr(TRIG | NONE, MSIX, 4, 2, 0).validate(5), Err(EINVAL));
    assert_eq!(hdr(TRIG | NONE, MSIX, 5, 0, 0).validate(5), Err(EINVAL));
    assert_eq!(
        hdr(TRIG | NONE, MSIX, 1, u32::MAX - 1, 0).validate(5),
        Err(EINVAL)
    );
    // No vectors at all: even a disable is refused.
    assert_eq!(hdr(TRIG | NONE, INTX, 0, 0, 0).validate(0), Err(EINVAL));
    // Zero or two data types.
    assert_eq!(hdr(TRIG, INTX, 0, 1, 0).validate(1), Err(EINVAL));
    assert_eq!(
        hdr(TRIG | NONE | BOOL, INTX, 0, 1, 1).validate(1),
        Err(EINVAL)
    );
    // Data must fit argsz.
    assert_eq!(hdr(TRIG | EFD, MSIX, 0, 5, 19).validate(5), Err(EINVAL));
    assert_eq!(hdr(TRIG | EFD, MSIX, 0, 5, 20).validate(5), Ok(20));
    assert_eq!(hdr(TRIG | BOOL, MSIX, 1, 3, 64).validate(5), Ok(3));
    assert_eq!(hdr(TRIG | NONE, MSIX, 0, 0, 0).validate(5), Ok(0));
    // Two actions pass validation (the dispatch refuses them with ENOTTY).
    assert_eq!(
        hdr(TRIG | SET_ACTION_MASK | NONE, INTX, 0, 1, 0).validate(1),
        Ok(0)
    );
}

#[test]
fn unknown_action_combinations_are_enotty() {
    let h = hdr(TRIG | SET_ACTION_MASK | NONE, INTX, 0, 1, 0);
    assert_eq!(plan(&h, &[], &st(Mode::Intx)), Err(ENOTTY));
    assert_eq!(
        plan(&hdr(NONE, INTX, 0, 1, 0), &[], &st(Mode::Intx)),
        Err(ENOTTY)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | NONE, MSIX, 0, 1, 0),
            &[],
            &st(Mode::Msix)
        ),
        Err(ENOTTY)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_UNMASK | NONE, MSI, 0, 1, 0),
            &[],
            &st(Mode::Msi)
        ),
        Err(ENOTTY)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | NONE, REQ, 0, 1, 0),
            &[],
            &st(Mode::None)
        ),
        Err(ENOTTY)
    );
    let nopcie = IrqStatus {
        pcie: false,
        ..st(Mode::None)
    };
    assert_eq!(
        plan(&hdr(TRIG | NONE, ERR, 0, 1, 0), &[], &nopcie),
        Err(ENOTTY)
    );
}

#[test]
fn intx_mask_and_unmask_need_active_intx_and_one_vector() {
    for action in [SET_ACTION_MASK, SET_ACTION_UNMASK] {
        assert_eq!(
            plan(&hdr(action | NONE, INTX, 0, 1, 0), &[], &st(Mode::None)),
            Err(EINVAL)
        );
        assert_eq!(
            plan(&hdr(action | NONE, INTX, 0, 1, 0), &[], &st(Mode::Msi)),
            Err(EINVAL)
        );
        assert_eq!(
            plan(&hdr(action | NONE, INTX, 0, 0, 0), &[], &st(Mode::Intx)),
            Err(EINVAL)
        );
    }
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | NONE, INTX, 0, 1, 0),
            &[],
            &st(Mode::Intx)
        ),
        Ok(Command::IntxMask)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | BOOL, INTX, 0, 1, 1),
            &[0],
            &st(Mode::Intx)
        ),
        Ok(Command::Noop)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | BOOL, INTX, 0, 1, 1),
            &[7],
            &st(Mode::Intx)
        ),
        Ok(Command::IntxMask)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_MASK | EFD, INTX, 0, 1, 4),
            &fds(&[3]),
            &st(Mode::Intx)
        ),
        Err(ENOTTY)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_UNMASK | NONE, INTX, 0, 1, 0),
            &[],
            &st(Mode::Intx)
        ),
        Ok(Command::IntxUnmask)
    );
    assert_eq!(
        plan(
            &hdr(SET_ACTION_UNMASK | BOOL, INTX, 0, 1, 1),
            &[1],
            &st(Mode::Intx)
        ),
        Ok(Command::IntxUnmask)
    );
}

#[test]
fn intx_unmask_by_eventfd_and_its_removal() {
    let h = hdr(SET_ACTION_UNMASK | EFD, INTX, 0, 1, 4);
    assert_eq!(
        plan(&h, &fds(&[9]), &st(Mode::Intx)),
        Ok(Command::IntxUnmaskFd(9))
    );
    assert_eq!(
        plan(&h, &fds(&[-1]), &st(Mode::Intx)),
        Ok(Command::IntxUnmaskFdOff)
    );
    assert_eq!(
        plan(&h, &fds(&[-7]), &st(Mode::Intx)),
        Ok(Command::IntxUnmaskFdOff)
    );
}

#[test]
fn intx_trigger_enables_replaces_disables_and_loops_back() {
    let e = hdr(TRIG | EFD, INTX, 0, 1, 4);
    assert_eq!(
        plan(&e, &fds(&[5]), &st(Mode::None)),
        Ok(Command::IntxEnable(Some(5)))
    );
    assert_eq!(
        plan(&e, &fds(&[-1]), &st(Mode::None)),
        Ok(Command::IntxEnable(None))
    );
    assert_eq!(
        plan(&e, &fds(&[6]), &st(Mode::Intx)),
        Ok(Command::IntxSetTrigger(Some(6)))
    );
    assert_eq!(
        plan(&e, &fds(&[-1]), &st(Mode::Intx)),
        Ok(Command::IntxSetTrigger(None))
    );
    assert_eq!(plan(&e, &fds(&[5]), &st(Mode::Msix)), Err(EINVAL));
    assert_eq!(
        plan(&hdr(TRIG | NONE, INTX, 0, 0, 0), &[], &st(Mode::Intx)),
        Ok(Command::IntxDisable)
    );
    // count 0 while INTx is off is not a disable.
    assert_eq!(
        plan(&hdr(TRIG | NONE, INTX, 0, 0, 0), &[], &st(Mode::None)),
        Err(EINVAL)
    );
    assert_eq!(
        plan(&hdr(TRIG | NONE, INTX, 0, 1, 0), &[], &st(Mode::Intx)),
        Ok(Command::IntxSignal)
    );
    assert_eq!(
        plan(&hdr(TRIG | NONE, INTX, 0, 1, 0), &[], &st(Mode::None)),
        Err(EINVAL)
    );
    assert_eq!(
        plan(&hdr(TRIG | BOOL, INTX, 0, 1, 1), &[0], &st(Mode::Intx)),
        Ok(Command::Noop)
    );
    assert_eq!(
        plan(&hdr(TRIG | BOOL, INTX, 0, 0, 0), &[], &st(Mode::Intx)),
        Err(EINVAL)
    );
}

#[test]
fn msi_trigger_rules() {
    let d = fds(&[3, -1]);
    let e = hdr(TRIG | EFD, MSIX, 1, 2, 8);
    assert_eq!(
        plan(&e, &d, &st(Mode::None)),
        Ok(Command::MsiSetBlock {
            msix: true,
            enable: true,
            start: 1,
            count: 2,
            fds: &d
        })
    );
    assert_eq!(
        plan(&e, &d, &st(Mode::Msix)),
        Ok(Command::MsiSetBlock {
            msix: true,
            enable: false,
            start: 1,
            count: 2,
            fds: &d
        })
    );
    // Another mode is active: no switch without disabling it first.
    assert_eq!(plan(&e, &d, &st(Mode::Msi)), Err(EINVAL));
    assert_eq!(plan(&e, &d, &st(Mode::Intx)), Err(EINVAL));
    assert_eq!(
        plan(&hdr(TRIG | NONE, MSI, 0, 0, 0), &[], &st(Mode::Msi)),
        Ok(Command::MsiDisable { msix: false })
    );
    assert_eq!(
        plan(&hdr(TRIG | NONE, MSI, 0, 0, 0), &[], &st(Mode::None)),
        Err(EINVAL)
    );
    assert_eq!(
        plan(&hdr(TRIG | NONE, MSI, 0, 0, 0), &[], &st(Mode::Msix)),
        Err(EINVAL)
    );
    assert_eq!(
        plan(&hdr(TRIG | NONE, MSIX, 0, 3, 0), &[], &st(Mode::Msix)),
        Ok(Command::MsiSignal {
            start: 0,
            count: 3,
            bools: None
        })
    );
    assert_eq!(
        plan(&hdr(TRIG | BOOL, MSIX, 2, 2, 2), &[1, 0], &st(Mode::Msix)),
        Ok(Command::MsiSignal {
            start: 2,
            count: 2,
            bools: Some(&[1, 0][..])
        })
    );
    assert_eq!(
        plan(&hdr(TRIG | BOOL, MSIX, 2, 2, 2), &[1, 0], &st(Mode::None)),
        Err(EINVAL)
    );
}

#[test]
fn err_and_req_single_eventfd_rules() {
    let set = IrqStatus {
        err_set: true,
        req_set: true,
        ..st(Mode::None)
    };
    let unset = st(Mode::None);
    for (idx, which) in [(ERR, Single::Err), (REQ, Single::Req)] {
        assert_eq!(
            plan(&hdr(TRIG | NONE, idx, 0, 1, 0), &[], &unset),
            Err(EINVAL)
        );
        assert_eq!(
            plan(&hdr(TRIG | NONE, idx, 0, 1, 0), &[], &set),
            Ok(Command::Single(which, SingleOp::Signal))
        );
        assert_eq!(
            plan(&hdr(TRIG | NONE, idx, 0, 0, 0), &[], &set),
            Ok(Command::Single(which, SingleOp::Clear))
        );
        assert_eq!(
            plan(&hdr(TRIG | BOOL, idx, 0, 0, 0), &[], &set),
            Err(EINVAL)
        );
        assert_eq!(
            plan(&hdr(TRIG | BOOL, idx, 0, 1, 1), &[1], &unset),
            Ok(Command::Single(which, SingleOp::Signal))
        );
        assert_eq!(
            plan(&hdr(TRIG | BOOL, idx, 0, 1, 1), &[0], &set),
            Ok(Command::Noop)
        );
        assert_eq!(plan(&hdr(TRIG | EFD, idx, 0, 0, 0), &[], &set), Err(EINVAL));
        assert_eq!(
            plan(&hdr(TRIG | EFD, idx, 0, 1, 4), &fds(&[4]), &unset),
            Ok(Command::Single(which, SingleOp::Set(4)))
        );
        assert_eq!(
            plan(&hdr(TRIG | EFD, idx, 0, 1, 4), &fds(&[-1]), &unset),
            Ok(Command::Single(which, SingleOp::Clear))
        );
        assert_eq!(
            plan(&hdr(TRIG | EFD, idx, 0, 1, 4), &fds(&[-2]), &set),
            Err(EINVAL)
        );
    }
}

#[test]
fn msi_qmax_is_log2_rounded_up() {
    let want = [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (8, 3),
        (9, 4),
        (32, 5),
    ];
    for (n, q) in want {
        assert_eq!(msi_qmax(n), q, "nvec {n}");
    }
}

#[test]
fn nointx_quirk_matches_upstream_list() {
    assert!(nointx_quirk(0x8086, 0x1572));
    assert!(nointx_quirk(0x8086, 0x1563));
    assert!(nointx_quirk(0x8086, 0x37d1));
    assert!(!nointx_quirk(0x8086, 0x10d3));
    assert!(!nointx_quirk(0x1234, 0x1572));
}

fn any_mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::None),
        Just(Mode::Intx),
        Just(Mode::Msi),
        Just(Mode::Msix)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever user space sends: a validated request names vectors inside the index, its data
    /// fits in `argsz`, and the plan stays inside the data it was given.
    #[test]
    fn accepted_requests_stay_in_range(
        argsz in 0u32..200, flags in prop_oneof![0u32..64, any::<u32>()], index in 0u32..7,
        start in prop_oneof![0u32..70, any::<u32>()], count in prop_oneof![0u32..70, any::<u32>()],
        caps_sel in 0u8..3, mode in any_mode(), err_set: bool, req_set: bool, fill: u8,
    ) {
        let caps = match caps_sel { 0 => edu_caps(), 1 => pcie_caps(), _ => IrqCaps { dyn_msix: true, msix_flags: Some(64), ..pcie_caps() } };
        let h = IrqSet { argsz, flags, index, start, count };
        let max = caps.count(index);
        if let Ok(size) = h.validate(max) {
            prop_assert!(index < NUM_IRQS);
            prop_assert!(u64::from(start) + u64::from(count) <= u64::from(max));
            prop_assert!(size + IrqSet::MINSZ <= argsz as usize);
            let data = std::vec![fill; size];
            let s = IrqStatus { mode, err_set, req_set, pcie: caps.pcie };
            match plan(&h, &data, &s) {
                Ok(Command::MsiSetBlock { start: s0, count: c, fds, .. }) => {
                    prop_assert_eq!(fds.len(), c as usize * 4);
                    prop_assert!(s0 + c <= max);
                }
                Ok(Command::MsiSignal { start: s0, count: c, bools }) => {
                    prop_assert!(s0 + c <= max);
                    prop_assert!(bools.is_none_or(|b| b.len() == c as usize));
                }
                Ok(Command::IntxEnable(_)) => prop_assert_eq!(mode, Mode::None),
                Ok(Command::IntxMask | Command::IntxUnmask | Command::IntxDisable | Command::IntxSignal) => {
                    prop_assert_eq!(mode, Mode::Intx)
                }
                Ok(_) => {}
                Err(e) => prop_assert!(e == EINVAL || e == ENOTTY),
            }
        } else {
            prop_assert!(h.validate(max) == Err(EINVAL));
        }
    }
}
