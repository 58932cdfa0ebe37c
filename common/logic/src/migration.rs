// SPDX-License-Identifier: GPL-2.0
//! Live migration: the arcs of the VFIO migration state machine a driver must implement, and
//! the framing of the migration data stream.
//!
//! The VFIO core (`vfio_mig_get_next_state`) splits any requested transition into single arcs
//! between states the device supports; [`step`] names what the driver does on each of them.
//! Anything else is a bug in the caller, answered with `None` (the kernel side then refuses
//! the transition with `-EINVAL`, as upstream variants do after a `WARN_ON`).
//!
//! The stream a device saves is one or more frames: a [`HEADER_LEN`]-byte header (magic,
//! version, payload length, CRC-32 of the payload) and the variant's payload. A save in
//! PRE_COPY writes one frame, the final save in STOP_COPY appends another; loading applies
//! the frames in order, so the last one wins. The whole stream is validated before anything
//! reaches the device: a truncated or corrupted stream changes nothing.

use super::errno::{Errno, EINVAL};

/// `VFIO_DEVICE_STATE_ERROR`.
pub const STATE_ERROR: u32 = 0;
/// `VFIO_DEVICE_STATE_STOP`.
pub const STATE_STOP: u32 = 1;
/// `VFIO_DEVICE_STATE_RUNNING`.
pub const STATE_RUNNING: u32 = 2;
/// `VFIO_DEVICE_STATE_STOP_COPY`.
pub const STATE_STOP_COPY: u32 = 3;
/// `VFIO_DEVICE_STATE_RESUMING`.
pub const STATE_RESUMING: u32 = 4;
/// `VFIO_DEVICE_STATE_RUNNING_P2P`.
pub const STATE_RUNNING_P2P: u32 = 5;
/// `VFIO_DEVICE_STATE_PRE_COPY`.
pub const STATE_PRE_COPY: u32 = 6;
/// `VFIO_DEVICE_STATE_PRE_COPY_P2P`.
pub const STATE_PRE_COPY_P2P: u32 = 7;

/// `VFIO_MIGRATION_STOP_COPY`: the mandatory part (STOP, RUNNING, STOP_COPY, RESUMING).
pub const MIGRATION_STOP_COPY: u64 = 1 << 0;
/// `VFIO_MIGRATION_P2P`: RUNNING_P2P (and PRE_COPY_P2P with PRE_COPY).
pub const MIGRATION_P2P: u64 = 1 << 1;
/// `VFIO_MIGRATION_PRE_COPY`: PRE_COPY (and PRE_COPY_P2P with P2P).
pub const MIGRATION_PRE_COPY: u64 = 1 << 2;

/// `VFIO_MIG_GET_PRECOPY_INFO`, the one ioctl of a saving data fd.
pub const VFIO_MIG_GET_PRECOPY_INFO: u32 = super::uapi::vfio_ioctl(21);
/// Bytes of `struct vfio_precopy_info` upstream copies in and out (argsz, flags,
/// initial_bytes, dirty_bytes).
pub const PRECOPY_INFO_MINSZ: usize = 24;

/// What the driver does on one arc of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// RUNNING -> RUNNING_P2P, PRE_COPY -> PRE_COPY_P2P: stop initiating peer-to-peer DMA.
    Quiesce,
    /// RUNNING_P2P -> RUNNING, PRE_COPY_P2P -> PRE_COPY: the reverse of `Quiesce`.
    Unquiesce,
    /// RUNNING -> STOP without P2P: `Quiesce` and `Stop` in one arc.
    QuiesceAndStop,
    /// STOP -> RUNNING without P2P: `Start` and `Unquiesce` in one arc.
    StartAndUnquiesce,
    /// RUNNING_P2P -> STOP: stop the device (no more changes to its state).
    Stop,
    /// STOP -> RUNNING_P2P: the reverse of `Stop`.
    Start,
    /// RUNNING(_P2P) -> PRE_COPY(_P2P): a saving data fd, with a first frame saved while
    /// running.
    BeginPreCopy,
    /// PRE_COPY(_P2P) -> RUNNING(_P2P): the pre-copy data fd is over.
    EndPreCopy,
    /// PRE_COPY -> STOP_COPY (without P2P): stop, then append the final frame to the pre-copy
    /// data fd.
    StopAndFinishPreCopy,
    /// PRE_COPY_P2P -> STOP_COPY: append the final frame to the pre-copy data fd.
    FinishPreCopy,
    /// STOP -> STOP_COPY: a saving data fd with the whole state.
    BeginStopCopy,
    /// STOP_COPY -> STOP: the saving data fd is over.
    EndStopCopy,
    /// STOP -> RESUMING: a resuming data fd.
    BeginResuming,
    /// RESUMING -> STOP: load what was written (the fd is over if that worked).
    Load,
}

/// The step of the arc `from` -> `to` for a device with migration `flags`, or `None` for an
/// arc the VFIO core never asks for.
pub fn step(flags: u64, from: u32, to: u32) -> Option<Step> {
    let p2p = flags & MIGRATION_P2P != 0;
    let pre_copy = flags & MIGRATION_PRE_COPY != 0;
    Some(match (from, to) {
        (STATE_RUNNING, STATE_RUNNING_P2P) if p2p => Step::Quiesce,
        (STATE_PRE_COPY, STATE_PRE_COPY_P2P) if p2p && pre_copy => Step::Quiesce,
        (STATE_RUNNING_P2P, STATE_RUNNING) if p2p => Step::Unquiesce,
        (STATE_PRE_COPY_P2P, STATE_PRE_COPY) if p2p && pre_copy => Step::Unquiesce,
        (STATE_RUNNING, STATE_STOP) if !p2p => Step::QuiesceAndStop,
        (STATE_STOP, STATE_RUNNING) if !p2p => Step::StartAndUnquiesce,
        (STATE_RUNNING_P2P, STATE_STOP) if p2p => Step::Stop,
        (STATE_STOP, STATE_RUNNING_P2P) if p2p => Step::Start,
        (STATE_RUNNING, STATE_PRE_COPY) if pre_copy => Step::BeginPreCopy,
        (STATE_RUNNING_P2P, STATE_PRE_COPY_P2P) if p2p && pre_copy => Step::BeginPreCopy,
        (STATE_PRE_COPY, STATE_RUNNING) if pre_copy => Step::EndPreCopy,
        (STATE_PRE_COPY_P2P, STATE_RUNNING_P2P) if p2p && pre_copy => Step::EndPreCopy,
        (STATE_PRE_COPY, STATE_STOP_COPY) if pre_copy && !p2p => Step::StopAndFinishPreCopy,
        (STATE_PRE_COPY_P2P, STATE_STOP_COPY) if p2p && pre_copy => Step::FinishPreCopy,
        (STATE_STOP, STATE_STOP_COPY) => Step::BeginStopCopy,
        (STATE_STOP_COPY, STATE_STOP) => Step::EndStopCopy,
        (STATE_STOP, STATE_RESUMING) => Step::BeginResuming,
        (STATE_RESUMING, STATE_STOP) => Step::Load,
        _ => return None,
    })
}

/// The flags a variant may offer: STOP_COPY always, P2P and PRE_COPY as it chooses.
pub const fn flags(p2p: bool, pre_copy: bool) -> u64 {
    MIGRATION_STOP_COPY
        | if p2p { MIGRATION_P2P } else { 0 }
        | if pre_copy { MIGRATION_PRE_COPY } else { 0 }
}

// ---- the stream -------------------------------------------------------------------------------

/// First bytes of every frame: "VFMG" little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"VFMG");
/// Version of the framing (not of the variant's payload, which the variant versions itself).
pub const VERSION: u16 = 1;
/// Bytes of a frame header: magic (4), version (2), reserved (2), payload length (4), CRC-32
/// of the payload (4), all little-endian.
pub const HEADER_LEN: usize = 16;

/// The header of a frame around `payload`.
pub fn frame_header(payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[12..16].copy_from_slice(&crc32(payload).to_le_bytes());
    h
}

/// Why a stream was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// Nothing was written.
    Empty,
    /// The stream ends inside a header or a payload.
    Truncated,
    /// A header with the wrong magic, version or reserved bits.
    BadHeader,
    /// A payload longer than the variant's maximum.
    TooLong,
    /// A payload whose CRC-32 does not match its header.
    BadChecksum,
}

impl StreamError {
    /// What user space gets: `-EINVAL`, as upstream variants answer a stream they cannot load.
    pub fn errno(self) -> Errno {
        EINVAL
    }

    /// For the kernel log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Truncated => "truncated",
            Self::BadHeader => "not a migration stream of this version",
            Self::TooLong => "a frame is longer than the device's state",
            Self::BadChecksum => "checksum mismatch",
        }
    }
}

/// Checks every frame of `stream` (payloads at most `max_payload` bytes); returns how many
/// there are.
pub fn validate(stream: &[u8], max_payload: usize) -> Result<usize, StreamError> {
    if stream.is_empty() {
        return Err(StreamError::Empty);
    }
    let mut rest = stream;
    let mut n = 0;
    while !rest.is_empty() {
        let (payload, tail) = split_frame(rest, max_payload)?;
        if crc32(payload) != read_u32(rest, 12) {
            return Err(StreamError::BadChecksum);
        }
        rest = tail;
        n += 1;
    }
    Ok(n)
}

/// The payloads of a stream [`validate`] accepted, in order.
pub fn payloads(stream: &[u8], max_payload: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = stream;
    core::iter::from_fn(move || {
        let (payload, tail) = split_frame(rest, max_payload).ok()?;
        rest = tail;
        Some(payload)
    })
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// The first frame's payload and what follows it.
fn split_frame(stream: &[u8], max_payload: usize) -> Result<(&[u8], &[u8]), StreamError> {
    let header = stream.get(..HEADER_LEN).ok_or(StreamError::Truncated)?;
    let version = u16::from_le_bytes([header[4], header[5]]);
    if read_u32(header, 0) != MAGIC || version != VERSION || header[6] != 0 || header[7] != 0 {
        return Err(StreamError::BadHeader);
    }
    let len = read_u32(header, 8) as usize;
    if len > max_payload {
        return Err(StreamError::TooLong);
    }
    let body = &stream[HEADER_LEN..];
    if body.len() < len {
        return Err(StreamError::Truncated);
    }
    Ok(body.split_at(len))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), bit by bit: streams are a few hundred
/// bytes, a table would cost more than it saves.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Upstream `vfio_mig_get_next_state` (drivers/vfio/vfio_main.c, 6.12), transcribed for
    /// the test below only: the kernel side calls the VFIO core's own.
    fn next_state(flags: u64, cur: u32, new: u32) -> Option<u32> {
        const S: u32 = STATE_STOP;
        const R: u32 = STATE_RUNNING;
        const SC: u32 = STATE_STOP_COPY;
        const RS: u32 = STATE_RESUMING;
        const RP: u32 = STATE_RUNNING_P2P;
        const PC: u32 = STATE_PRE_COPY;
        const PP: u32 = STATE_PRE_COPY_P2P;
        const E: u32 = STATE_ERROR;
        // Rows: from; columns: to, indexed by state number (ERROR, STOP, RUNNING, STOP_COPY,
        // RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P).
        const TABLE: [[u32; 8]; 8] = [
            [E, E, E, E, E, E, E, E],
            [E, S, RP, SC, RS, RP, RP, RP],
            [E, RP, R, RP, RP, RP, PC, RP],
            [E, S, S, SC, S, S, E, E],
            [E, S, S, S, RS, S, S, S],
            [E, S, R, S, S, RP, R, PP],
            [E, R, R, PP, R, R, PC, PP],
            [E, RP, RP, SC, RP, RP, PC, PP],
        ];
        let needs = |s: u32| -> u64 {
            match s {
                STATE_PRE_COPY => MIGRATION_STOP_COPY | MIGRATION_PRE_COPY,
                STATE_PRE_COPY_P2P => MIGRATION_STOP_COPY | MIGRATION_P2P | MIGRATION_PRE_COPY,
                STATE_RUNNING_P2P => MIGRATION_STOP_COPY | MIGRATION_P2P,
                STATE_ERROR => !0,
                _ => MIGRATION_STOP_COPY,
            }
        };
        if needs(cur) & flags != needs(cur) || new > 7 || needs(new) & flags != needs(new) {
            return None;
        }
        let mut next = TABLE[cur as usize][new as usize];
        while next != E && needs(next) & flags != needs(next) {
            next = TABLE[next as usize][new as usize];
        }
        (next != E).then_some(next)
    }

    const ALL_FLAGS: [u64; 4] = [
        flags(false, false),
        flags(true, false),
        flags(false, true),
        flags(true, true),
    ];

    #[test]
    fn every_arc_the_vfio_core_asks_for_has_a_step() {
        for f in ALL_FLAGS {
            for cur in 1..8 {
                for new in 1..8 {
                    let mut at = cur;
                    let mut hops = 0;
                    while at != new {
                        let Some(next) = next_state(f, at, new) else {
                            break;
                        };
                        assert!(step(f, at, next).is_some(), "flags {f} arc {at}->{next}");
                        at = next;
                        hops += 1;
                        assert!(hops < 8);
                    }
                }
            }
        }
    }

    #[test]
    fn no_step_for_states_the_device_does_not_offer() {
        let f = flags(false, false);
        assert_eq!(step(f, STATE_RUNNING, STATE_RUNNING_P2P), None);
        assert_eq!(step(f, STATE_RUNNING, STATE_PRE_COPY), None);
        assert_eq!(step(f, STATE_RUNNING, STATE_STOP_COPY), None);
        assert_eq!(step(flags(true, false), STATE_RUNNING, STATE_STOP), None);
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = frame_header(payload).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn frames_round_trip_in_order() {
        let mut s = frame(b"first");
        s.extend(frame(b"second!"));
        assert_eq!(validate(&s, 64), Ok(2));
        let got: Vec<&[u8]> = payloads(&s, 64).collect();
        assert_eq!(got, [&b"first"[..], &b"second!"[..]]);
    }

    #[test]
    fn empty_payload_is_a_frame() {
        assert_eq!(validate(&frame(b""), 8), Ok(1));
    }

    #[test]
    fn empty_stream_is_refused() {
        assert_eq!(validate(&[], 64), Err(StreamError::Empty));
    }

    #[test]
    fn every_truncation_is_refused() {
        let s = frame(b"0123456789");
        for cut in 1..s.len() {
            assert_eq!(
                validate(&s[..cut], 64),
                Err(StreamError::Truncated),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let s = frame(b"0123456789");
        for byte in 0..s.len() {
            for bit in 0..8 {
                let mut c = s.clone();
                c[byte] ^= 1 << bit;
                assert!(validate(&c, 64).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn payload_longer_than_the_maximum_is_refused() {
        assert_eq!(validate(&frame(&[0; 9]), 8), Err(StreamError::TooLong));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut s = frame(b"abc");
        s.push(0);
        assert_eq!(validate(&s, 64), Err(StreamError::Truncated));
    }

    #[test]
    fn precopy_ioctl_number_matches_the_uapi_header() {
        assert_eq!(VFIO_MIG_GET_PRECOPY_INFO, 0x3b79);
    }
}
