// SPDX-License-Identifier: GPL-2.0
//! Argument rules of the device lifecycle ioctls, as upstream 6.12 `vfio_pci_core.c` applies
//! them: `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`, `VFIO_DEVICE_PCI_HOT_RESET` (group-fd and
//! iommufd/cdev forms), `VFIO_DEVICE_FEATURE` (`vfio_check_feature` and the PCI VF token),
//! the device-name match with a `vf_token=` option, and the VF token decision.
//!
//! The kernel side reads exactly the bytes upstream reads, hands them here, and carries out
//! the decision; nothing here touches a device.

use super::errno::{Errno, EACCES, EINVAL, ENOSPC};

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`.
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u32 = super::uapi::vfio_ioctl(12);
/// `VFIO_DEVICE_PCI_HOT_RESET`.
pub const VFIO_DEVICE_PCI_HOT_RESET: u32 = super::uapi::vfio_ioctl(13);

/// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID`: the devices carry iommufd device IDs, not group IDs.
pub const HOT_RESET_FLAG_DEV_ID: u32 = 1 << 0;
/// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED`: every affected device is owned by the caller.
pub const HOT_RESET_FLAG_DEV_ID_OWNED: u32 = 1 << 1;
/// `VFIO_PCI_DEVID_OWNED`: owned, but not bound to the caller's iommufd.
pub const DEVID_OWNED: u32 = 0;
/// `VFIO_PCI_DEVID_NOT_OWNED`.
pub const DEVID_NOT_OWNED: u32 = u32::MAX;

/// `offsetofend(struct vfio_pci_hot_reset_info, count)` and of `vfio_pci_hot_reset`: argsz,
/// flags, count.
pub const HDR_MINSZ: usize = 12;
/// `sizeof(struct vfio_pci_dependent_device)`: id, segment, bus, devfn.
pub const DEPENDENT_SIZE: usize = 8;

use super::uapi::u32_at;

/// The header both hot-reset ioctls start with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotResetHdr {
    /// Size of the user's buffer.
    pub argsz: u32,
    /// `GET_..._INFO`: output; `PCI_HOT_RESET`: must be 0.
    pub flags: u32,
    /// Devices (output) or group fds (input).
    pub count: u32,
}

impl HotResetHdr {
    /// Decodes the `HDR_MINSZ` bytes read from user space.
    pub fn decode(b: &[u8; HDR_MINSZ]) -> Self {
        Self {
            argsz: u32_at(b, 0),
            flags: u32_at(b, 4),
            count: u32_at(b, 8),
        }
    }

    /// The header as user space sees it.
    pub fn to_bytes(&self) -> [u8; HDR_MINSZ] {
        let mut b = [0u8; HDR_MINSZ];
        b[0..4].copy_from_slice(&self.argsz.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.count.to_ne_bytes());
        b
    }
}

/// What `GET_PCI_HOT_RESET_INFO` does after counting the affected devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoPlan {
    /// The array does not fit: write back only the header, with `count` set and `flags` 0,
    /// and fail with `-ENOSPC`.
    TooSmall(HotResetHdr),
    /// Fill `count` entries after the header.
    Fill(u32),
}

/// `GET_PCI_HOT_RESET_INFO`, first step: the header's own rule (`-EINVAL` for a short
/// `argsz`, checked before the reset scope is probed, as upstream does).
pub fn info_check(hdr: &HotResetHdr) -> Result<(), Errno> {
    if (hdr.argsz as usize) < HDR_MINSZ {
        return Err(EINVAL);
    }
    Ok(())
}

/// `GET_PCI_HOT_RESET_INFO`, second step, once `count` devices are known to be affected.
pub fn info_plan(hdr: &HotResetHdr, count: u32) -> InfoPlan {
    // Upstream divides (argsz - sizeof(hdr)) by the entry size; argsz >= minsz was checked.
    let room = (hdr.argsz as usize).saturating_sub(HDR_MINSZ) / DEPENDENT_SIZE;
    if count as usize > room {
        InfoPlan::TooSmall(HotResetHdr {
            argsz: hdr.argsz,
            flags: 0,
            count,
        })
    } else {
        InfoPlan::Fill(count)
    }
}

/// The errno `GET_PCI_HOT_RESET_INFO` ends with for a [`InfoPlan::TooSmall`].
pub const INFO_TOO_SMALL: Errno = ENOSPC;

/// One `struct vfio_pci_dependent_device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dependent {
    /// Group ID, or iommufd device ID / [`DEVID_OWNED`] / [`DEVID_NOT_OWNED`].
    pub id: u32,
    /// PCI segment (domain).
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
}

impl Dependent {
    /// The entry as user space sees it.
    pub fn to_bytes(&self) -> [u8; DEPENDENT_SIZE] {
        let mut b = [0u8; DEPENDENT_SIZE];
        b[0..4].copy_from_slice(&self.id.to_ne_bytes());
        b[4..6].copy_from_slice(&self.segment.to_ne_bytes());
        b[6] = self.bus;
        b[7] = self.devfn;
        b
    }
}

/// The form of a `PCI_HOT_RESET` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetForm {
    /// Group fds follow the header (`count` of them): every affected device must be in one of
    /// those groups.
    Groups(u32),
    /// Zero-length array on a cdev-opened device: every affected device must belong to the
    /// caller's iommufd.
    Iommufd,
}

/// `PCI_HOT_RESET`, first step: `-EINVAL` for a short `argsz` or any flag, and unless the
/// array form fits how the device was opened (group fds for a group-opened device, none for
/// a cdev-opened one).
pub fn reset_form(hdr: &HotResetHdr, cdev_opened: bool) -> Result<ResetForm, Errno> {
    if (hdr.argsz as usize) < HDR_MINSZ || hdr.flags != 0 {
        return Err(EINVAL);
    }
    if (hdr.count != 0) == cdev_opened {
        return Err(EINVAL);
    }
    Ok(if hdr.count == 0 {
        ResetForm::Iommufd
    } else {
        ResetForm::Groups(hdr.count)
    })
}

/// `PCI_HOT_RESET` with group fds, once the affected devices are counted: one group per device
/// at most, so a longer array is refused before anything is copied (`-EINVAL`). Note that,
/// like upstream, `argsz` is not compared with the array size: the copy itself faults.
pub fn groups_fit(array_count: u32, affected: u32) -> Result<(), Errno> {
    if array_count > affected {
        return Err(EINVAL);
    }
    Ok(())
}

/// Whether a bus or slot reset of a dev_set is due when one of its devices closes
/// (`vfio_pci_dev_set_needs_reset`): no other device of the set is open, and one of them is
/// dirty.
pub fn dev_set_needs_reset(open_count: u32, any_needs_reset: bool) -> bool {
    open_count <= 1 && any_needs_reset
}

// ---- VFIO_DEVICE_FEATURE ------------------------------------------------------------------

/// `VFIO_DEVICE_FEATURE_MASK`.
pub const FEATURE_MASK: u32 = 0xffff;
/// `VFIO_DEVICE_FEATURE_GET`.
pub const FEATURE_GET: u32 = 1 << 16;
/// `VFIO_DEVICE_FEATURE_SET`.
pub const FEATURE_SET: u32 = 1 << 17;
/// `VFIO_DEVICE_FEATURE_PROBE`.
pub const FEATURE_PROBE: u32 = 1 << 18;
/// `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`.
pub const FEATURE_PCI_VF_TOKEN: u32 = 0;

/// What a feature request asks for after [`check_feature`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureOp {
    /// `PROBE`: answer 0, do nothing.
    Probe,
    /// Carry out the get or set.
    Do,
}

/// `vfio_check_feature`: the rules of a driver's `device_feature` op.
pub fn check_feature(
    flags: u32,
    argsz: usize,
    supported: u32,
    minsz: usize,
) -> Result<FeatureOp, Errno> {
    if flags & (FEATURE_GET | FEATURE_SET) & !supported != 0 {
        return Err(EINVAL);
    }
    if flags & FEATURE_PROBE != 0 {
        return Ok(FeatureOp::Probe);
    }
    if flags & (FEATURE_GET | FEATURE_SET) == 0 || argsz < minsz {
        return Err(EINVAL);
    }
    Ok(FeatureOp::Do)
}

/// The VF token feature (`vfio_pci_core_feature_token`): only on a PF we drive (`-ENOTTY`
/// otherwise, as for any feature we do not know), SET only (a GET would leak the previous
/// user's token), 16 bytes of UUID.
pub fn vf_token_feature(flags: u32, argsz: usize, is_pf: bool) -> Result<FeatureOp, Errno> {
    if !is_pf {
        return Err(super::errno::ENOTTY);
    }
    check_feature(flags, argsz, FEATURE_SET, UUID_SIZE)
}

// ---- Device name match and VF token ------------------------------------------------------

/// Bytes of a binary UUID.
pub const UUID_SIZE: usize = 16;
/// `UUID_STRING_LEN`: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub const UUID_STRING_LEN: usize = 36;
const VF_TOKEN_ARG: &[u8] = b"vf_token=";

/// `uuid_parse`: 36 characters, hyphens at 8, 13, 18 and 23, hex digits elsewhere; the bytes
/// in the order written (`uuid_t`).
pub fn parse_uuid(s: &[u8]) -> Result<[u8; UUID_SIZE], Errno> {
    if s.len() < UUID_STRING_LEN {
        return Err(EINVAL);
    }
    for at in [8, 13, 18, 23] {
        if s[at] != b'-' {
            return Err(EINVAL);
        }
    }
    const STARTS: [usize; UUID_SIZE] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; UUID_SIZE];
    for (o, &at) in out.iter_mut().zip(STARTS.iter()) {
        let (Some(hi), Some(lo)) = (hex(s[at]), hex(s[at + 1])) else {
            return Err(EINVAL);
        };
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

/// The answer of the `match` op to a device name user space asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    /// Not this device (the VFIO core goes on looking).
    No,
    /// This device, with or without a VF token.
    Yes(Option<[u8; UUID_SIZE]>),
}

/// `vfio_pci_core_match`'s parsing: `buf` must start with the device's `name`; anything after
/// it must be a space, then spaces and at most one `vf_token=<uuid>`. Unknown or repeated
/// options, or a malformed UUID, are `-EINVAL`.
pub fn match_name(name: &[u8], buf: &[u8]) -> Result<NameMatch, Errno> {
    if !buf.starts_with(name) {
        return Ok(NameMatch::No);
    }
    let mut rest = &buf[name.len()..];
    if rest.is_empty() {
        return Ok(NameMatch::Yes(None));
    }
    if rest[0] != b' ' {
        return Ok(NameMatch::No);
    }
    let mut token = None;
    while let Some(&c) = rest.first() {
        if c == b' ' {
            rest = &rest[1..];
            continue;
        }
        if token.is_none() && rest.starts_with(VF_TOKEN_ARG) {
            rest = &rest[VF_TOKEN_ARG.len()..];
            token = Some(parse_uuid(rest)?);
            rest = &rest[UUID_STRING_LEN..];
        } else {
            return Err(EINVAL);
        }
    }
    Ok(NameMatch::Yes(token))
}

/// Where a device stands in SR-IOV, for the VF token check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SriovRole {
    /// A VF; `pf_token` is its PF's current token if that PF is ours and enabled SR-IOV.
    Vf {
        /// The PF's token, if the PF is ours with SR-IOV enabled by us.
        pf_token: Option<[u8; UUID_SIZE]>,
    },
    /// A PF we drive, with its token and how many of its VFs are open.
    Pf {
        /// The current token.
        token: [u8; UUID_SIZE],
        /// Open VFs.
        vf_users: u32,
    },
    /// Neither.
    Other,
}

/// What the VF token check decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenDecision {
    /// Open it.
    Allow,
    /// Open it, and the PF's token becomes this one (a PF with no VF in use).
    AllowAndSet([u8; UUID_SIZE]),
}

/// Why a token was refused, for the kernel log line upstream prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// `-EINVAL`: "VF token incorrectly provided, PF not bound to vfio-pci".
    PfNotOurs,
    /// `-EACCES`: "VF token required to access device".
    Required,
    /// `-EACCES`: "Incorrect VF token provided for device".
    Incorrect,
    /// `-EINVAL`: "VF token incorrectly provided, not a PF or VF".
    NotPfOrVf,
}

impl TokenRefusal {
    /// The errno user space gets.
    pub fn errno(self) -> Errno {
        match self {
            Self::PfNotOurs | Self::NotPfOrVf => EINVAL,
            Self::Required | Self::Incorrect => EACCES,
        }
    }
}

/// `vfio_pci_validate_vf_token`: the trust between a PF and its VFs is opted into with a
/// shared UUID.
pub fn validate_vf_token(
    role: SriovRole,
    given: Option<[u8; UUID_SIZE]>,
) -> Result<TokenDecision, TokenRefusal> {
    match (role, given) {
        (SriovRole::Vf { pf_token: None }, None) => Ok(TokenDecision::Allow),
        (SriovRole::Vf { pf_token: None }, Some(_)) => Err(TokenRefusal::PfNotOurs),
        (SriovRole::Vf { pf_token: Some(_) }, None) => Err(TokenRefusal::Required),
        (SriovRole::Vf { pf_token: Some(t) }, Some(g)) if t == g => Ok(TokenDecision::Allow),
        (SriovRole::Vf { pf_token: Some(_) }, Some(_)) => Err(TokenRefusal::Incorrect),
        (SriovRole::Pf { vf_users: 0, .. }, None) => Ok(TokenDecision::Allow),
        (SriovRole::Pf { vf_users: 0, .. }, Some(g)) => Ok(TokenDecision::AllowAndSet(g)),
        (SriovRole::Pf { .. }, None) => Err(TokenRefusal::Required),
        (SriovRole::Pf { token, .. }, Some(g)) if token == g => Ok(TokenDecision::Allow),
        (SriovRole::Pf { .. }, Some(_)) => Err(TokenRefusal::Incorrect),
        (SriovRole::Other, None) => Ok(TokenDecision::Allow),
        (SriovRole::Other, Some(_)) => Err(TokenRefusal::NotPfOrVf),
    }
}

/// `sriov_configure` with `nr` VFs asked for: `Enable` only from a PF without SR-IOV set up by
/// us (`-EINVAL` for a second enable without a disable in between), else tear down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SriovStep {
    /// Register the PF as an SR-IOV PF of ours, wake it to D0, enable `nr` VFs.
    Enable(i32),
    /// Disable VFs (if any) and forget the PF.
    Disable,
}

/// See [`SriovStep`].
pub fn sriov_step(nr: i32, already_active: bool) -> Result<SriovStep, Errno> {
    if nr == 0 {
        return Ok(SriovStep::Disable);
    }
    if already_active {
        return Err(EINVAL);
    }
    Ok(SriovStep::Enable(nr))
}

/// `vfio_pci_set_power_state`'s first rule: a PF whose SR-IOV is active stays in D0 (its VFs
/// would go down with it). `sriov_active` is the flag `sriov_configure` sets, under the memory
/// lock, *before* enabling the VFs, as upstream's `sriov_active`; the number of VFs the PCI core
/// reports is no substitute, since it stays 0 until `pci_enable_sriov` has returned, a window
/// in which a D3 write would otherwise put the PF to sleep under its new VFs.
pub fn power_change_allowed(sriov_active: bool, state: i32) -> Result<(), Errno> {
    if sriov_active && state > 0 {
        return Err(super::errno::EBUSY);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::errno::ENOTTY;
    use super::*;

    /// Regression: D3 was allowed while SR-IOV was being enabled (no VFs counted yet).
    #[test]
    fn a_pf_enabling_sriov_refuses_low_power_before_any_vf_exists() {
        assert_eq!(
            power_change_allowed(true, 3),
            Err(super::super::errno::EBUSY)
        );
        assert_eq!(
            power_change_allowed(true, 1),
            Err(super::super::errno::EBUSY)
        );
        assert_eq!(power_change_allowed(true, 0), Ok(()));
        assert_eq!(power_change_allowed(false, 3), Ok(()));
    }

    const NAME: &[u8] = b"0000:03:00.0";
    const U: &[u8] = b"bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3";
    const UB: [u8; 16] = [
        0xbd, 0x8d, 0x9d, 0x2b, 0x5a, 0x5f, 0x4f, 0x5a, 0xa2, 0x11, 0xf5, 0x91, 0x51, 0x4b, 0xa1,
        0xf3,
    ];

    fn cat(a: &[u8], b: &[u8]) -> std::vec::Vec<u8> {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 0x3b70);
        assert_eq!(VFIO_DEVICE_PCI_HOT_RESET, 0x3b71);
    }

    #[test]
    fn info_refuses_argsz_below_the_header() {
        for argsz in 0..12 {
            assert_eq!(
                info_check(&HotResetHdr {
                    argsz,
                    flags: 7,
                    count: 9
                }),
                Err(EINVAL)
            );
        }
        assert_eq!(
            info_check(&HotResetHdr {
                argsz: 12,
                flags: 0,
                count: 0
            }),
            Ok(())
        );
    }

    #[test]
    fn info_without_room_reports_the_count_and_clears_flags() {
        let h = HotResetHdr {
            argsz: 12,
            flags: 0xa5,
            count: 0,
        };
        assert_eq!(
            info_plan(&h, 1),
            InfoPlan::TooSmall(HotResetHdr {
                argsz: 12,
                flags: 0,
                count: 1
            })
        );
        let h = HotResetHdr {
            argsz: 12 + 8 * 2 - 1,
            flags: 0,
            count: 0,
        };
        assert_eq!(
            info_plan(&h, 2),
            InfoPlan::TooSmall(HotResetHdr {
                argsz: h.argsz,
                flags: 0,
                count: 2
            })
        );
        let h = HotResetHdr {
            argsz: 12 + 8 * 2,
            flags: 0,
            count: 0,
        };
        assert_eq!(info_plan(&h, 2), InfoPlan::Fill(2));
        assert_eq!(
            info_plan(
                &HotResetHdr {
                    argsz: u32::MAX,
                    flags: 0,
                    count: 0
                },
                3
            ),
            InfoPlan::Fill(3)
        );
    }

    #[test]
    fn dependent_layout_is_id_segment_bus_devfn() {
        let d = Dependent {
            id: 0x0102_0304,
            segment: 0x0506,
            bus: 7,
            devfn: 8,
        };
        let mut want = [0u8; 8];
        want[..4].copy_from_slice(&0x0102_0304u32.to_ne_bytes());
        want[4..6].copy_from_slice(&0x0506u16.to_ne_bytes());
        want[6] = 7;
        want[7] = 8;
        assert_eq!(d.to_bytes(), want);
    }

    #[test]
    fn hot_reset_refuses_short_argsz_and_any_flag() {
        for cdev in [false, true] {
            assert_eq!(
                reset_form(
                    &HotResetHdr {
                        argsz: 11,
                        flags: 0,
                        count: 1
                    },
                    cdev
                ),
                Err(EINVAL)
            );
            assert_eq!(
                reset_form(
                    &HotResetHdr {
                        argsz: 16,
                        flags: 1,
                        count: 1
                    },
                    cdev
                ),
                Err(EINVAL)
            );
            assert_eq!(
                reset_form(
                    &HotResetHdr {
                        argsz: 16,
                        flags: 1 << 31,
                        count: 0
                    },
                    cdev
                ),
                Err(EINVAL)
            );
        }
    }

    #[test]
    fn group_fds_only_for_group_opened_and_empty_array_only_for_cdev() {
        let h = |count| HotResetHdr {
            argsz: 16,
            flags: 0,
            count,
        };
        assert_eq!(reset_form(&h(0), false), Err(EINVAL));
        assert_eq!(reset_form(&h(1), true), Err(EINVAL));
        assert_eq!(reset_form(&h(2), false), Ok(ResetForm::Groups(2)));
        assert_eq!(reset_form(&h(0), true), Ok(ResetForm::Iommufd));
    }

    #[test]
    fn more_group_fds_than_affected_devices_is_refused() {
        assert_eq!(groups_fit(3, 2), Err(EINVAL));
        assert_eq!(groups_fit(2, 2), Ok(()));
        assert_eq!(groups_fit(1, 2), Ok(()));
        assert_eq!(groups_fit(u32::MAX, 1), Err(EINVAL));
    }

    #[test]
    fn bus_reset_at_close_only_when_alone_and_dirty() {
        assert!(dev_set_needs_reset(1, true));
        assert!(dev_set_needs_reset(0, true));
        assert!(!dev_set_needs_reset(2, true));
        assert!(!dev_set_needs_reset(1, false));
    }

    #[test]
    fn check_feature_follows_vfio_check_feature() {
        assert_eq!(check_feature(FEATURE_GET, 16, FEATURE_SET, 16), Err(EINVAL));
        assert_eq!(
            check_feature(FEATURE_SET | FEATURE_PROBE, 0, FEATURE_SET, 16),
            Ok(FeatureOp::Probe)
        );
        assert_eq!(
            check_feature(FEATURE_PROBE, 0, FEATURE_SET, 16),
            Ok(FeatureOp::Probe)
        );
        assert_eq!(check_feature(0, 16, FEATURE_SET, 16), Err(EINVAL));
        assert_eq!(check_feature(FEATURE_SET, 15, FEATURE_SET, 16), Err(EINVAL));
        assert_eq!(
            check_feature(FEATURE_SET, 16, FEATURE_SET, 16),
            Ok(FeatureOp::Do)
        );
    }

    #[test]
    fn vf_token_feature_is_for_pfs_and_set_only() {
        assert_eq!(vf_token_feature(FEATURE_SET, 16, false), Err(ENOTTY));
        assert_eq!(vf_token_feature(FEATURE_GET, 16, true), Err(EINVAL));
        assert_eq!(vf_token_feature(FEATURE_SET, 16, true), Ok(FeatureOp::Do));
        assert_eq!(
            vf_token_feature(FEATURE_SET | FEATURE_PROBE, 0, true),
            Ok(FeatureOp::Probe)
        );
    }

    #[test]
    fn uuid_parses_like_uuid_parse() {
        assert_eq!(parse_uuid(U), Ok(UB));
        assert_eq!(parse_uuid(b"BD8D9D2B-5A5F-4F5A-A211-F591514BA1F3"), Ok(UB));
        assert_eq!(parse_uuid(&U[..35]), Err(EINVAL));
        assert_eq!(
            parse_uuid(b"bd8d9d2b_5a5f-4f5a-a211-f591514ba1f3"),
            Err(EINVAL)
        );
        assert_eq!(
            parse_uuid(b"bd8d9d2g-5a5f-4f5a-a211-f591514ba1f3"),
            Err(EINVAL)
        );
    }

    #[test]
    fn match_needs_the_name_then_nothing_or_a_space() {
        assert_eq!(match_name(NAME, NAME), Ok(NameMatch::Yes(None)));
        assert_eq!(match_name(NAME, b"0000:03:00.1"), Ok(NameMatch::No));
        assert_eq!(match_name(NAME, b"0000:03:00.0x"), Ok(NameMatch::No));
        assert_eq!(
            match_name(NAME, b"0000:03:00.0   "),
            Ok(NameMatch::Yes(None))
        );
        assert_eq!(match_name(NAME, b"0000:03"), Ok(NameMatch::No));
    }

    #[test]
    fn match_takes_one_vf_token_and_refuses_anything_else() {
        let with = cat(b"0000:03:00.0 vf_token=", U);
        assert_eq!(match_name(NAME, &with), Ok(NameMatch::Yes(Some(UB))));
        assert_eq!(
            match_name(NAME, &cat(&with, b"  ")),
            Ok(NameMatch::Yes(Some(UB)))
        );
        assert_eq!(match_name(NAME, &cat(&with, b" x")), Err(EINVAL));
        let twice = cat(&cat(&with, b" vf_token="), U);
        assert_eq!(match_name(NAME, &twice), Err(EINVAL));
        assert_eq!(
            match_name(NAME, b"0000:03:00.0 vf_token=short"),
            Err(EINVAL)
        );
        assert_eq!(match_name(NAME, b"0000:03:00.0 foo=bar"), Err(EINVAL));
        // A token glued to trailing text: the UUID is parsed, then the rest is an option.
        assert_eq!(match_name(NAME, &cat(&with, b"x")), Err(EINVAL));
    }

    #[test]
    fn vf_token_rules() {
        let other = [0u8; 16];
        // A VF whose PF is not ours: no token, or -EINVAL.
        assert_eq!(
            validate_vf_token(SriovRole::Vf { pf_token: None }, None),
            Ok(TokenDecision::Allow)
        );
        assert_eq!(
            validate_vf_token(SriovRole::Vf { pf_token: None }, Some(UB))
                .map_err(TokenRefusal::errno),
            Err(EINVAL)
        );
        // A VF of ours: the PF's token, exactly.
        let vf = SriovRole::Vf { pf_token: Some(UB) };
        assert_eq!(
            validate_vf_token(vf, None).map_err(TokenRefusal::errno),
            Err(EACCES)
        );
        assert_eq!(
            validate_vf_token(vf, Some(other)),
            Err(TokenRefusal::Incorrect)
        );
        assert_eq!(validate_vf_token(vf, Some(UB)), Ok(TokenDecision::Allow));
        // A PF without VF users: a token sets it; with users it must match.
        let idle = SriovRole::Pf {
            token: UB,
            vf_users: 0,
        };
        assert_eq!(validate_vf_token(idle, None), Ok(TokenDecision::Allow));
        assert_eq!(
            validate_vf_token(idle, Some(other)),
            Ok(TokenDecision::AllowAndSet(other))
        );
        let busy = SriovRole::Pf {
            token: UB,
            vf_users: 2,
        };
        assert_eq!(validate_vf_token(busy, None), Err(TokenRefusal::Required));
        assert_eq!(
            validate_vf_token(busy, Some(other)),
            Err(TokenRefusal::Incorrect)
        );
        assert_eq!(validate_vf_token(busy, Some(UB)), Ok(TokenDecision::Allow));
        // Anything else: a token is a mistake.
        assert_eq!(
            validate_vf_token(SriovRole::Other, None),
            Ok(TokenDecision::Allow)
        );
        assert_eq!(
            validate_vf_token(SriovRole::Other, Some(UB)).map_err(TokenRefusal::errno),
            Err(EINVAL)
        );
    }

    #[test]
    fn sriov_enable_once_until_disabled() {
        assert_eq!(sriov_step(4, false), Ok(SriovStep::Enable(4)));
        assert_eq!(sriov_step(4, true), Err(EINVAL));
        assert_eq!(sriov_step(0, true), Ok(SriovStep::Disable));
        assert_eq!(sriov_step(0, false), Ok(SriovStep::Disable));
    }
}
