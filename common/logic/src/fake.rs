// SPDX-License-Identifier: GPL-2.0
//! Test support, never compiled into the kernel: a fake PCI function ([`FakeDevice`]), a
//! generator of realistic config images driven by arbitrary bytes ([`Scenario::generate`]), and
//! the property harness ([`run`]) shared by the property tests, the deterministic fuzz test and
//! the `cargo fuzz` target.
//!
//! The generator lays out a type 0 header with BARs of every kind and chains of known, unknown
//! and hidden standard and extended capabilities, and records the ground truth independently of
//! the emulator: which capability owns each byte and which device bits user space may change
//! through it. The harness then checks, after every access, that no host-owned bit changed on
//! the device, that the virtual chains are acyclic, in bounds and exactly the visible
//! capabilities, and that in-range reads never fail. Assertion failures are the findings.

use super::config_fast::{FastChunk, FastReads, LOCKED};
use super::config_space::{ConfigDevice, ConfigSpace, DeviceInfo, Resource, MAP_INVALID};
use super::errno::{Errno, EFAULT, EINVAL, EIO};
use super::pci_regs::{self as r, cap_id, ext_cap_id as e};
use super::perm::{self, WriteKind};

const SPACE: usize = 4096;

/// Bytes that drive the generator; reads past the end give zeros, so every input is valid.
pub struct Entropy<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Entropy<'a> {
    /// Entropy from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }
    /// Whether input remains.
    pub fn more(&self) -> bool {
        self.at < self.data.len()
    }
    /// The next byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    /// The next little-endian word.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// The next little-endian dword.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        self.u32() % n.max(1)
    }
    /// True with probability `num`/256.
    pub fn chance(&mut self, num: u8) -> bool {
        self.u8() < num
    }
}

/// A fake PCI function: config space is plain memory (every bit writable, so the harness sees
/// every bit the emulator tries to change), plus records of the side effects.
pub struct FakeDevice {
    /// The device's registers.
    pub hw: [u8; SPACE],
    /// Bits the emulator may change on the device (ground truth from the generator).
    pub allowed: [u8; SPACE],
    /// Offset of the MSI message control, whose value has extra rules.
    pub msi_flags: Option<u16>,
    /// `irq_type == MSI`.
    pub msi_active: bool,
    /// `msi_qmax`.
    pub msi_qmax: u8,
    /// Make some device reads and writes fail (error paths), pseudo-randomly.
    pub fail_seed: u32,
    /// Host-owned bits changed: (offset, old byte, new byte) of the first violation.
    pub violation: Option<(u16, u8, u8)>,
    /// Memory lock depth (must be 0 between accesses, never 2).
    pub lock_depth: i32,
    /// Function resets requested.
    pub resets: u32,
    /// Last power state requested.
    pub power_state: Option<u8>,
    /// INTx masked by the emulator.
    pub intx_masked: bool,
    /// Last MRRS requested.
    pub readrq: Option<u32>,
    /// VPD contents.
    pub vpd: [u8; 64],
    /// Device accesses made (reads and writes).
    pub accesses: u32,
}

impl FakeDevice {
    /// A device with registers `hw` and every bit host-owned.
    pub fn new(hw: &[u8; SPACE]) -> Self {
        Self {
            hw: *hw,
            allowed: [0; SPACE],
            msi_flags: None,
            msi_active: false,
            msi_qmax: 0,
            fail_seed: 0,
            violation: None,
            lock_depth: 0,
            resets: 0,
            power_state: None,
            intx_masked: false,
            readrq: None,
            vpd: [0; 64],
            accesses: 0,
        }
    }

    fn fails(&mut self) -> bool {
        if self.fail_seed == 0 {
            return false;
        }
        // xorshift: about one access in sixteen fails.
        let mut x = self.fail_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.fail_seed = x;
        x % 16 == 0
    }

    fn get(&self, off: u16, size: u8) -> u32 {
        let mut v = 0;
        for i in 0..size as usize {
            v |= (self.hw.get(off as usize + i).copied().unwrap_or(0xff) as u32) << (8 * i);
        }
        v
    }

    fn check(off: u16, size: u8) -> Result<(), Errno> {
        if !matches!(size, 1 | 2 | 4) || off as usize + size as usize > SPACE {
            return Err(EIO);
        }
        if off % size as u16 != 0 {
            return Err(EINVAL);
        }
        Ok(())
    }
}

impl ConfigDevice for FakeDevice {
    fn read(&mut self, off: u16, size: u8) -> Result<u32, Errno> {
        self.accesses += 1;
        Self::check(off, size)?;
        if self.fails() {
            return Err(EIO);
        }
        Ok(self.get(off, size))
    }

    fn write(&mut self, off: u16, size: u8, val: u32) -> Result<(), Errno> {
        self.accesses += 1;
        Self::check(off, size)?;
        if self.fails() {
            return Err(EIO);
        }
        if Some(off) == self.msi_flags && size == 2 {
            let flags = val as u16;
            if flags & r::MSI_FLAGS_ENABLE != 0 && !self.msi_active {
                self.violation.get_or_insert((off, 0xee, flags as u8));
            }
            if (flags & r::MSI_FLAGS_QSIZE) >> 4 > self.msi_qmax as u16 {
                self.violation.get_or_insert((off, 0xef, flags as u8));
            }
        }
        for i in 0..size as usize {
            let p = off as usize + i;
            let new = (val >> (8 * i)) as u8;
            if let (Some(old), Some(ok)) = (self.hw.get(p).copied(), self.allowed.get(p).copied()) {
                if (old ^ new) & !ok != 0 {
                    self.violation.get_or_insert((p as u16, old, new));
                }
            }
            if let Some(b) = self.hw.get_mut(p) {
                *b = new;
            }
        }
        Ok(())
    }

    fn lock_memory(&mut self, _zap: bool) {
        self.lock_depth += 1;
    }
    fn unlock_memory(&mut self) {
        self.lock_depth -= 1;
    }
    fn reset_function(&mut self) {
        self.resets += 1;
    }
    fn set_power_state(&mut self, state: u8) {
        self.power_state = Some(state);
    }
    fn intx_mask(&mut self) {
        assert!(!self.intx_masked, "INTx masked twice");
        self.intx_masked = true;
    }
    fn intx_unmask(&mut self) {
        assert!(self.intx_masked, "INTx unmasked twice");
        self.intx_masked = false;
    }
    fn msi_active(&self) -> bool {
        self.msi_active
    }
    fn msi_qmax(&self) -> u8 {
        self.msi_qmax
    }
    fn pcie_mps(&mut self) -> u32 {
        256
    }
    fn pcie_set_readrq(&mut self, bytes: u32) {
        self.readrq = Some(bytes);
    }
    fn vpd_read(&mut self, addr: u16) -> Result<[u8; 4], Errno> {
        if self.fails() {
            return Err(EIO);
        }
        let a = (addr as usize) % 60;
        let mut d = [0; 4];
        d.copy_from_slice(&self.vpd[a..a + 4]);
        Ok(d)
    }
    fn vpd_write(&mut self, addr: u16, data: [u8; 4]) -> Result<usize, Errno> {
        if self.fails() {
            return Err(EIO);
        }
        let a = (addr as usize) % 60;
        self.vpd[a..a + 4].copy_from_slice(&data);
        Ok(4)
    }
}

/// A capability the generator placed and expects user space to see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Visible {
    /// Offset.
    pub pos: u16,
    /// ID as user space reads it (0 for the placeholder of a hidden first extended one).
    pub id: u16,
}

/// A generated device with its ground truth.
pub struct Scenario {
    /// Device registers.
    pub hw: [u8; SPACE],
    /// Host facts.
    pub info: DeviceInfo,
    /// Expected owner map.
    pub owner: [u8; SPACE],
    /// Device bits user space may change.
    pub allowed: [u8; SPACE],
    /// MSI message control offset.
    pub msi_flags: Option<u16>,
    /// Visible standard capabilities, in chain order.
    pub std_chain: [Visible; 48],
    /// How many.
    pub std_len: usize,
    /// Visible extended capabilities, in chain order.
    pub ext_chain: [Visible; 64],
    /// How many.
    pub ext_len: usize,
}

struct Placed {
    pos: u16,
    len: u16,
    id: u16,
    hidden: bool,
}

impl Scenario {
    fn put(&mut self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            if let Some(x) = self.hw.get_mut(off + i) {
                *x = *b;
            }
        }
    }
    fn put16(&mut self, off: usize, v: u16) {
        self.put(off, &v.to_le_bytes());
    }
    fn put32(&mut self, off: usize, v: u32) {
        self.put(off, &v.to_le_bytes());
    }

    /// Builds a device from `e`.
    pub fn generate(e: &mut Entropy<'_>) -> Self {
        let mut s = Scenario {
            hw: [0; SPACE],
            info: DeviceInfo::default(),
            owner: [MAP_INVALID; SPACE],
            allowed: [0xff; SPACE],
            msi_flags: None,
            std_chain: [Visible::default(); 48],
            std_len: 0,
            ext_chain: [Visible::default(); 64],
            ext_len: 0,
        };
        // Background register contents from a seed, so the input's bytes go to structure.
        let mut x = (e.u32() as u64) << 32 | e.u32() as u64 | 1;
        for b in s.hw.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let pcie_capable = e.chance(200);
        s.info.cfg_size = if pcie_capable && e.chance(230) {
            4096
        } else {
            256
        };
        s.info.is_virtfn = e.chance(30);
        s.info.vendor = e.u16();
        s.info.device = e.u16();
        s.info.no_command_memory = e.chance(30);
        s.info.nointx = e.chance(30);
        s.info.hide_intx_pin = e.chance(30);

        // Header: type 0, BARs of every kind.
        s.hw[0x0e] = 0;
        let mut i = 0;
        while i < 6 {
            let at = 0x10 + 4 * i;
            let kind = e.below(4);
            let start_zero = e.chance(20);
            match kind {
                1 => {
                    let size = 4u64 << e.below(7);
                    let addr = (e.u32() as u64 & !(size - 1)) & 0xffff;
                    s.put32(at, addr as u32 | 1);
                    s.info.bars[i] = Resource {
                        start: if start_zero { 0 } else { addr | 0x1000 },
                        len: size,
                        io: true,
                        ..Default::default()
                    };
                }
                2 => {
                    let size = 16u64 << e.below(20);
                    let pf = e.chance(128);
                    let addr = e.u32() as u64 & !(size - 1);
                    s.put32(at, addr as u32 | if pf { 8 } else { 0 });
                    s.info.bars[i] = Resource {
                        start: if start_zero { 0 } else { addr | 0x1000_0000 },
                        len: size,
                        prefetch: pf,
                        ..Default::default()
                    };
                }
                3 if i < 5 => {
                    let size = 16u64 << e.below(40);
                    let pf = e.chance(128);
                    let addr = ((e.u32() as u64) << 32 | e.u32() as u64) & !(size - 1);
                    s.put32(at, addr as u32 | 4 | if pf { 8 } else { 0 });
                    s.put32(at + 4, (addr >> 32) as u32);
                    s.info.bars[i] = Resource {
                        start: if start_zero { 0 } else { addr | (1 << 40) },
                        len: size,
                        prefetch: pf,
                        mem64: true,
                        ..Default::default()
                    };
                    i += 1;
                }
                _ => s.put32(at, 0),
            }
            i += 1;
        }
        match e.below(3) {
            0 => s.info.rom = Resource::default(),
            1 => {
                let size = 2048u64 << e.below(8);
                s.info.rom = Resource {
                    start: 0xfe00_0000,
                    len: size,
                    ..Default::default()
                };
            }
            _ => s.info.rom_shadow = true,
        }
        s.hw[0x3d] = e.below(5) as u8;

        // Standard capabilities.
        let mut placed: [Option<Placed>; 24] = Default::default();
        let mut n = 0;
        let mut cur = 0x40u16;
        let mut have_msi = false;
        let mut have_exp = false;
        let mut extended_probe = false;
        let ncaps = e.below(10);
        let mut prev_visible: Option<(u16, u16)> = None; // (end, id)
        for _ in 0..ncaps {
            let kind = e.below(15);
            let id = match kind {
                0 | 14 => cap_id::PM,
                1 => cap_id::VPD,
                2 if !have_msi => cap_id::MSI,
                3 => cap_id::PCIX,
                4 if !have_exp => cap_id::EXP,
                5 => cap_id::AF,
                6 => cap_id::MSIX,
                7 | 13 => cap_id::VNDR,
                8 => cap_id::AGP,
                9 => cap_id::HT,
                10 => cap_id::SATA,
                11 => {
                    const HIDDEN: [u8; 10] = [0, 4, 6, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x14];
                    HIDDEN[e.below(10) as usize]
                }
                12 => 0x15 + e.below(0xeb) as u8,
                _ => cap_id::PM,
            };
            let hidden = matches!(kind, 11..=13);
            let mut pos = ((cur + 3) & !3) + 4 * e.below(3) as u16;
            // Two abutting capabilities of one ID merge in upstream's map; keep them apart.
            if let Some((end, pid)) = prev_visible {
                if !hidden && pid == id as u16 && end == pos {
                    pos += 4;
                }
            }
            if pos > 0xf0 || n >= placed.len() {
                break;
            }
            let at = pos as usize;
            let mut probe = false;
            let mut pcie_flags = None;
            let len: u16 = match id {
                _ if hidden && id == cap_id::VNDR => {
                    s.hw[at + 2] = 0;
                    4
                }
                _ if hidden => 4 + 4 * e.below(4) as u16,
                cap_id::PM | cap_id::VPD => 8,
                cap_id::MSI => {
                    let mut flags = e.u16() & 0x007e;
                    let f64 = e.chance(128);
                    let mask = e.chance(128);
                    if f64 {
                        flags |= r::MSI_FLAGS_64BIT;
                    }
                    if mask {
                        flags |= r::MSI_FLAGS_MASKBIT;
                    }
                    s.put16(at + 2, flags);
                    10 + if f64 { 4 } else { 0 } + if mask { 10 } else { 0 }
                }
                cap_id::PCIX => {
                    let cmd = (e.u16() & !0x3000) | ((e.below(4) as u16) << 12);
                    s.put16(at + 2, cmd);
                    if r::x_cmd_version(cmd) != 0 {
                        probe = true;
                        24
                    } else {
                        8
                    }
                }
                cap_id::EXP => {
                    probe = true;
                    let ver = 1 + e.below(2) as u16;
                    let ty = [0u16, 1, 9, 9, 0][e.below(5) as usize];
                    let flags = ver | (ty << 4) | (e.u16() & 0xff00);
                    s.put16(at + 2, flags);
                    pcie_flags = Some(flags);
                    match (ver == 1, ty == 9) {
                        (true, true) => 0xc,
                        (true, false) => 20,
                        (false, true) => 0x2c,
                        (false, false) => 0x34,
                    }
                }
                cap_id::AF => 6,
                cap_id::MSIX | cap_id::AGP => 12,
                cap_id::VNDR => {
                    let len = 3 + e.below(38) as u16;
                    s.hw[at + 2] = len as u8;
                    len
                }
                cap_id::HT => {
                    let b = e.u8();
                    s.hw[at + 3] = b;
                    if b & 0xe0 != 0 {
                        24
                    } else {
                        28
                    }
                }
                _ => {
                    let b = e.u8();
                    s.hw[at + 4] = b;
                    if b & 0xf == 0xf {
                        16
                    } else {
                        8
                    }
                }
            };
            if at + len as usize > 256 {
                break;
            }
            extended_probe |= probe;
            have_msi |= id == cap_id::MSI && !hidden;
            if let Some(f) = pcie_flags {
                have_exp = true;
                s.info.pcie_flags = f;
            }
            s.hw[at] = id;
            placed[n] = Some(Placed {
                pos,
                len,
                id: id as u16,
                hidden,
            });
            n += 1;
            cur = pos + len;
            if !hidden {
                prev_visible = Some((pos + len, id as u16));
            }
        }
        let _ = cur;
        let cap_list = n > 0 && e.chance(240);
        let mut status = e.u16();
        if cap_list {
            status |= r::STATUS_CAP_LIST;
        } else {
            status &= !r::STATUS_CAP_LIST;
        }
        s.put16(6, status);
        // Link the chain.
        let first = placed.first().and_then(|p| p.as_ref()).map_or(0, |p| p.pos);
        s.hw[0x34] = first as u8;
        for k in 0..n {
            let next = placed
                .get(k + 1)
                .and_then(|p| p.as_ref())
                .map_or(0, |p| p.pos);
            if let Some(p) = placed[k].as_ref() {
                s.hw[p.pos as usize + 1] = next as u8;
            }
        }
        if !cap_list {
            extended_probe = false;
            have_msi = false;
        }
        let _ = have_msi;

        // Ground truth for standard space.
        for b in s.owner.iter_mut().take(64) {
            *b = 0;
        }
        let mut msi_layout = 0;
        if cap_list {
            for p in placed.iter().take(n).flatten() {
                if p.hidden {
                    continue;
                }
                for o in p.pos..p.pos + p.len {
                    s.owner[o as usize] = p.id as u8;
                }
                if p.id == cap_id::MSI as u16 {
                    let flags =
                        u16::from_le_bytes([s.hw[p.pos as usize + 2], s.hw[p.pos as usize + 3]]);
                    msi_layout = perm::msi_layout(flags);
                    s.msi_flags = Some(p.pos + 2);
                }
                s.std_chain[s.std_len] = Visible {
                    pos: p.pos,
                    id: p.id,
                };
                s.std_len += 1;
            }
        }

        // Extended capabilities.
        let extended = extended_probe && s.info.cfg_size == 4096;
        let mut eplaced: [Option<Placed>; 32] = Default::default();
        let mut en = 0;
        if s.info.cfg_size == 4096 {
            let mut cur = 256u16;
            let necaps = e.below(12);
            let mut prev_visible: Option<(u16, u16)> = None;
            for k in 0..necaps {
                let mut pos = if k == 0 {
                    256
                } else {
                    ((cur + 3) & !3) + 4 * e.below(4) as u16
                };
                let kind = e.below(21);
                let (id, len, hidden): (u16, u16, bool) = match kind {
                    0 => (e::ERR, 44, false),
                    1..=3 => ([e::VC, e::VC9, e::MFVC][kind as usize - 1], 0, false),
                    4 => (e::DSN, 12, false),
                    5 => (e::PWR, 16, false),
                    6 => (e::VNDR, 8 + e.below(57) as u16, false),
                    7 => (e::ACS, 0, false),
                    8 => (e::ARI, 8, false),
                    9 => (e::ATS, 8, false),
                    10 => (e::SRIOV, 64, false),
                    11 => (e::MCAST, 40, false),
                    12 => (e::PRI, 16, false),
                    13 => (e::REBAR, 4 + 8 * e.below(8) as u16, false),
                    14 => (e::DPA, 0, false),
                    15 => (e::TPH, 0, false),
                    16 => (e::LTR, 8, false),
                    17 => (e::DVSEC, 12 + e.below(53) as u16, false),
                    18 => {
                        const HIDDEN: [u16; 12] = [
                            5, 6, 7, 0x0a, 0x0c, 0x11, 0x14, 0x19, 0x1b, 0x1d, 0x1e, 0x2e,
                        ];
                        (
                            HIDDEN[e.below(12) as usize],
                            8 + 4 * e.below(4) as u16,
                            true,
                        )
                    }
                    19 => (
                        (0x2f + e.below(0xfd - 0x2f) as u16) | (e.below(2) as u16 * 0x100),
                        8,
                        true,
                    ),
                    _ => (e::DSN, 12, false),
                };
                if let Some((end, pid)) = prev_visible {
                    if !hidden && pid == id && end == pos {
                        pos += 4;
                    }
                }
                let (len, fields) = Self::ext_fields(e, id, len);
                if pos as usize + len.max(12) as usize > 4096 || en >= eplaced.len() {
                    break;
                }
                s.put(pos as usize + 4, &fields);
                eplaced[en] = Some(Placed {
                    pos,
                    len,
                    id,
                    hidden,
                });
                en += 1;
                // The length registers (up to +12) belong to this capability even when its
                // length is shorter.
                cur = pos + len.max(12);
                if !hidden {
                    prev_visible = Some((pos + len, id));
                }
            }
            for k in 0..en {
                let next = eplaced
                    .get(k + 1)
                    .and_then(|p| p.as_ref())
                    .map_or(0, |p| p.pos);
                if let Some(p) = eplaced[k].as_ref() {
                    let ver = (e.u8() & 0xf) as u32;
                    let hdr = p.id as u32 | ver << 16 | (next as u32) << 20;
                    s.put32(p.pos as usize, hdr);
                }
            }
            if en == 0 {
                s.put32(256, 0);
            }
        }
        let dword256 = u32::from_le_bytes([s.hw[256], s.hw[257], s.hw[258], s.hw[259]]);
        if extended && dword256 != 0 {
            let mut first = true;
            for p in eplaced.iter().take(en).flatten() {
                if p.hidden && !first {
                    continue;
                }
                let len = if p.hidden { 4 } else { p.len };
                for o in p.pos..p.pos + len {
                    s.owner[o as usize] = p.id as u8;
                }
                if !p.hidden {
                    s.ext_chain[s.ext_len] = Visible {
                        pos: p.pos,
                        id: p.id,
                    };
                    s.ext_len += 1;
                } else {
                    s.ext_chain[s.ext_len] = Visible { pos: p.pos, id: 0 };
                    s.ext_len += 1;
                }
                first = false;
            }
            // A chain of only hidden capabilities reads as empty.
            if s.ext_chain.iter().take(s.ext_len).all(|v| v.id == 0) {
                s.ext_len = 0;
            }
        }

        // Which device bits user space may change through each owner.
        for pos in 0..s.info.cfg_size as usize {
            let o = s.owner[pos];
            s.allowed[pos] = if o == MAP_INVALID {
                0xff
            } else {
                let (p, start) = if pos >= 256 {
                    let start = (256..=pos)
                        .rev()
                        .take_while(|&q| s.owner[q] == o)
                        .last()
                        .unwrap_or(pos);
                    let p = if o as u16 > e::MAX {
                        &perm::DIRECT_RO
                    } else {
                        perm::ecap_perms(o)
                    };
                    (p, start)
                } else if o == 0 {
                    (&perm::BASIC, 0)
                } else {
                    let start = (64..=pos)
                        .rev()
                        .take_while(|&q| s.owner[q] == o)
                        .last()
                        .unwrap_or(pos);
                    (perm::cap_perms(o, msi_layout), start)
                };
                match p.write_fn {
                    None | Some(WriteKind::Virt) => 0,
                    Some(WriteKind::Raw) => 0xff,
                    Some(_) => {
                        let off = pos - start;
                        (p.write_bits(off, 1) & !p.virt_bits(off, 1)) as u8
                    }
                }
            };
        }
        if let Some(f) = s.msi_flags {
            s.allowed[f as usize] = 0xff;
        }
        if s.info.nointx {
            s.allowed[5] |= (r::COMMAND_INTX_DISABLE >> 8) as u8;
        }
        s
    }

    /// Length-determining registers (at +4) for an extended capability, and its length.
    fn ext_fields(e: &mut Entropy<'_>, id: u16, len: u16) -> (u16, [u8; 8]) {
        let mut f = [0u8; 8];
        for b in f.iter_mut() {
            *b = e.u8();
        }
        let len = match id {
            e::VC | e::VC9 | e::MFVC => {
                let evcc = e.below(8);
                let ph = [0u32, 2, 4, 8][e.below(4) as usize];
                let cap1 = (u32::from_le_bytes([f[0], f[1], f[2], f[3]]) & !7) | evcc;
                let cap2 = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) & !0xe | ph;
                f[..4].copy_from_slice(&cap1.to_le_bytes());
                f[4..].copy_from_slice(&cap2.to_le_bytes());
                let mut l = 16 + (1 + evcc as u16) * 12;
                let phases = match ph {
                    8 => 128,
                    4 => 64,
                    2 => 32,
                    _ => 0,
                };
                if phases != 0 {
                    l = l.div_ceil(16) * 16 + phases * 4 / 8;
                }
                l
            }
            e::VNDR | e::DVSEC => {
                let d =
                    (u32::from_le_bytes([f[0], f[1], f[2], f[3]]) & 0xfffff) | (len as u32) << 20;
                f[..4].copy_from_slice(&d.to_le_bytes());
                len
            }
            e::ACS => {
                let ec = e.chance(128);
                f[0] = if ec {
                    f[0] | r::ACS_EC
                } else {
                    f[0] & !r::ACS_EC
                };
                if ec {
                    let bits = if f[1] != 0 {
                        (f[1] as u16).div_ceil(32) * 32
                    } else {
                        256
                    };
                    8 + bits / 8
                } else {
                    8
                }
            }
            e::REBAR => {
                let nbar = (len - 4) / 8;
                f[4] = (f[4] & !0xe0) | (nbar as u8) << 5;
                len
            }
            e::DPA => {
                let sub = f[0] & 0x1f;
                16 + sub as u16 + 1
            }
            e::TPH => {
                let mut d = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                d &= !0x07ff_0000;
                d |= (e.below(64)) << 16;
                f[..4].copy_from_slice(&d.to_le_bytes());
                if d & 0x600 == 0x200 {
                    12 + ((d >> 16) & 0x7ff) as u16 * 2 + 2
                } else {
                    12
                }
            }
            _ => len,
        };
        (len, f)
    }
}

/// Reads `n` bytes at `pos` through the emulator.
fn vread(cs: &mut ConfigSpace, dev: &mut FakeDevice, pos: u16, n: usize) -> u32 {
    let mut buf = [0u8; 4];
    let got = cs.rw(dev, pos as u64, &mut buf[..n], false);
    assert_eq!(got, Ok(n), "in-range read of {n} at {pos:#x} failed");
    u32::from_le_bytes(buf)
}

/// A user read the way the kernel does it: each chunk from `fast` when it can answer it
/// without the lock, else from the emulator.
pub fn read_with_fast(
    cs: &mut ConfigSpace,
    fast: &FastReads,
    dev: &mut FakeDevice,
    pos: u64,
    buf: &mut [u8],
) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        let at = pos.checked_add(done as u64).ok_or(EFAULT)?;
        let left = buf.len() - done;
        let (n, v) = match fast.read_chunk(at, left, |p, size| dev.read(p, size))? {
            FastChunk::Done(n, v) => (n, v),
            FastChunk::Locked => {
                let got = cs.read(dev, at, left);
                cs.sync_fast_reads(fast);
                got?
            }
        };
        let dst = buf.get_mut(done..done + n).ok_or(EFAULT)?;
        dst.copy_from_slice(&v.to_le_bytes()[..n]);
        done += n;
    }
    Ok(done)
}

/// What the lock-free write path would leave in the device for the first chunk of a write of
/// `n` bytes `buf` at `pos`: (position, size, the chunk's new device bytes), or `None` when the
/// table sends that chunk to the emulator. Computed on a copy of the device, through
/// [`FastReads::write_chunk`] itself.
fn fast_write_model(
    fast: &FastReads,
    dev: &FakeDevice,
    pos: u64,
    n: usize,
    buf: &[u8],
) -> Option<(u16, usize, u32)> {
    let mut hw = dev.hw;
    let val = buf
        .iter()
        .take(4)
        .enumerate()
        .fold(0u32, |v, (i, b)| v | (*b as u32) << (8 * i));
    let read = |p: u16, size: u8| {
        let mut v = 0u32;
        for i in 0..size as usize {
            v |= (hw[p as usize + i] as u32) << (8 * i);
        }
        Ok(v)
    };
    let mut written = None;
    let r = fast.write_chunk(pos, n, val, read, |p, size, v| {
        written = Some((p, size as usize, v));
        Ok(())
    });
    match (r, written) {
        (Ok(FastChunk::Done(..)), Some((p, size, v))) => {
            for i in 0..size {
                hw[p as usize + i] = (v >> (8 * i)) as u8;
            }
            Some((p, size, v))
        }
        _ => None,
    }
}

/// The virtual-write bits of byte `b` in `fast` (0 where the byte's dword is not a
/// virtual-write dword).
fn virt_write_bits(fast: &FastReads, b: usize) -> u8 {
    if fast.is_virt_write(b / 4) {
        (fast.write_mask(b / 4).unwrap_or(0) >> (8 * (b % 4))) as u8
    } else {
        0
    }
}

/// What user writes left in the virtual-write bits of each byte: `(mask, value)`. The table
/// must hold exactly these (the emulator changes no such bit of its own).
struct VirtShadow([(u8, u8); 4096]);

impl VirtShadow {
    fn note(&mut self, fast: &FastReads, pos: usize, bytes: &[u8]) {
        for (i, &v) in bytes.iter().enumerate() {
            let m = virt_write_bits(fast, pos + i);
            if let Some(slot) = self.0.get_mut(pos + i) {
                if m != 0 {
                    *slot = (m, v & m);
                }
            }
        }
    }

    fn check(&self, fast: &FastReads) {
        for (b, &(m, v)) in self.0.iter().enumerate() {
            if m != 0 && (b as u32) < fast.limit() {
                let entry = fast.entry(b / 4).unwrap_or(LOCKED);
                let got = (entry >> (8 * (b % 4))) as u8 & m;
                assert_eq!(got, v, "lock-free virtual write to {b:#x} lost");
            }
        }
    }
}

/// Every published lock-free entry still matches the emulator's state (after the last
/// `sync_fast_reads`, with the lock-free virtual writes given to the image): none went stale.
pub fn check_fast(cs: &mut ConfigSpace, fast: &FastReads) {
    cs.absorb_fast_writes(fast);
    // The table looks up one byte's permissions per dword: one owner must mean one table
    // instance (same table, same capability start) for all four bytes.
    for base in (0..cs.cfg_size() as usize).step_by(4) {
        let owners = &cs.map[base..base + 4];
        if owners.iter().any(|&m| m != owners[0]) {
            continue;
        }
        let (perm, start) = cs.perm_at(base as u16);
        if matches!(perm.read, perm::ReadKind::Raw | perm::ReadKind::Virt) {
            continue;
        }
        for i in 1..4u16 {
            let (p, s) = cs.perm_at(base as u16 + i);
            assert!(
                core::ptr::eq(p, perm) && s == start,
                "dword {base:#x}: byte {i} has another table instance"
            );
        }
    }
    for i in 0..fast.limit() as usize / 4 {
        let (device, virt) = (cs.fast_write_mask(i), cs.fast_virt_write_mask(i));
        assert_eq!(
            fast.write_mask(i),
            Some(if device != 0 { device } else { virt }),
            "write mask of dword {:#x} went stale",
            i * 4
        );
        assert_eq!(
            fast.is_virt_write(i),
            device == 0 && virt != 0,
            "virtual-write flag of dword {:#x} went stale",
            i * 4
        );
        let e = fast.entry(i).unwrap_or(LOCKED);
        if e != LOCKED {
            assert_eq!(
                e,
                cs.fast_entry(i),
                "lock-free entry of dword {:#x} went stale",
                i * 4
            );
        }
    }
}

/// Walks both virtual chains through user reads and checks them against the ground truth.
pub fn check_chains(cs: &mut ConfigSpace, dev: &mut FakeDevice, s: &Scenario) {
    let status = vread(cs, dev, r::STATUS, 2) as u16;
    let mut seen = [false; 256];
    let mut k = 0;
    if status & r::STATUS_CAP_LIST != 0 {
        let mut p = vread(cs, dev, r::CAPABILITY_LIST, 1) as u16;
        while p != 0 {
            assert!(
                (64..256).contains(&p),
                "std chain leaves capability space: {p:#x}"
            );
            assert!(!seen[p as usize], "std chain is cyclic at {p:#x}");
            seen[p as usize] = true;
            let id = vread(cs, dev, p, 1) as u16;
            assert!(
                k < s.std_len,
                "std chain has an extra capability {id:#x}@{p:#x}"
            );
            let want = s.std_chain[k];
            // A vendor capability is written raw, its ID byte included, and a one-byte read
            // of an ID comes from the device (upstream): only its position is fixed.
            let id = if want.id == cap_id::VNDR as u16 {
                want.id
            } else {
                id
            };
            assert_eq!(Visible { pos: p, id }, want, "std chain entry {k}");
            k += 1;
            p = vread(cs, dev, p + 1, 1) as u16;
        }
    }
    assert_eq!(k, s.std_len, "std chain too short");

    if s.info.cfg_size < 4096 {
        return;
    }
    let mut seen = [false; 1024];
    let mut k = 0;
    let mut p = 256u16;
    if s.ext_len > 0 {
        loop {
            assert!(
                (256..4096).contains(&p) && p % 4 == 0,
                "ext chain out of bounds: {p:#x}"
            );
            assert!(!seen[p as usize / 4], "ext chain is cyclic at {p:#x}");
            seen[p as usize / 4] = true;
            let hdr = vread(cs, dev, p, 4);
            assert!(
                k < s.ext_len,
                "ext chain has an extra capability {hdr:#x}@{p:#x}"
            );
            assert_eq!(
                Visible {
                    pos: p,
                    id: r::ext_cap_id(hdr)
                },
                s.ext_chain[k],
                "ext chain entry {k}"
            );
            if s.ext_chain[k].id == 0 {
                assert_eq!(hdr & 0xf_ffff, 0, "placeholder shows its ID or version");
            }
            k += 1;
            p = r::ext_cap_next(hdr);
            if p == 0 {
                break;
            }
        }
        assert_eq!(k, s.ext_len, "ext chain too short");
    }
}

/// `init` of a space used before (another device's init and user writes, a device of random
/// bytes: chains anywhere, capabilities up to the end) leaves the whole image and owner map,
/// past `cfg_size` too, exactly as `init` of a fresh space does. Panics on a difference.
pub fn reinit_matches_fresh(data: &[u8]) {
    let mut e = Entropy::new(data);
    let first = Scenario::generate(&mut e);
    let second = Scenario::generate(&mut e);
    let mut random = [0u8; SPACE];
    for b in random.iter_mut() {
        *b = e.u8();
    }
    let size = first.info.cfg_size;
    let mut cs = ConfigSpace::zeroed();
    let mut dev = FakeDevice::new(&first.hw);
    let _ = cs.init(&mut dev, &first.info);
    let mut random_info = first.info;
    random_info.is_virtfn = e.chance(64);
    let mut second_info = second.info;
    second_info.cfg_size = size;
    for (hw, info) in [
        (&second.hw, second_info),
        (&random, random_info),
        (&first.hw, first.info),
    ] {
        for _ in 0..16 {
            let pos = e.below(size as u32) as u64;
            let mut buf = [e.u8(), e.u8(), e.u8(), e.u8()];
            let n = 1 + e.below(4) as usize;
            let _ = cs.rw(&mut dev, pos, &mut buf[..n], true);
        }
        let mut fresh = ConfigSpace::zeroed();
        // Kept across opens (upstream's bit), not part of what `init` rebuilds.
        fresh.extended_caps = cs.extended_caps;
        dev = FakeDevice::new(hw);
        let got = cs.init(&mut dev, &info);
        let want = fresh.init(&mut FakeDevice::new(hw), &info);
        assert_eq!(got, want);
        assert!(cs.vconfig == fresh.vconfig, "image differs after re-init");
        assert!(cs.map == fresh.map, "owner map differs after re-init");
    }
}

/// The property harness: build a device from `data`, initialise the emulator, run the access
/// sequence the rest of `data` describes, and check every invariant. Panics on a finding.
pub fn run(data: &[u8]) {
    let mut e = Entropy::new(data);
    let inject = e.chance(20);
    let s = Scenario::generate(&mut e);
    let mut dev = FakeDevice::new(&s.hw);
    dev.allowed = s.allowed;
    dev.msi_flags = s.msi_flags;
    let mut cs = ConfigSpace::zeroed();
    if inject {
        // Error paths: any failure is fine, a panic is not.
        dev.fail_seed = 0x9e37_79b9 ^ e.u32() | 1;
        let _ = cs.init(&mut dev, &s.info);
        let fast = FastReads::new();
        cs.publish_fast_reads(&fast);
        for _ in 0..64 {
            let pos = e.below(s.info.cfg_size as u32 + 16) as u64;
            let mut buf = [0u8; 8];
            let n = 1 + e.below(8) as usize;
            for b in buf.iter_mut() {
                *b = e.u8();
            }
            if e.chance(64) {
                let _ = read_with_fast(&mut cs, &fast, &mut dev, pos, &mut buf[..n]);
            } else {
                let _ = cs.rw(&mut dev, pos, &mut buf[..n], e.chance(128));
            }
            cs.sync_fast_reads(&fast);
        }
        return;
    }

    assert_eq!(cs.init(&mut dev, &s.info), Ok(()));
    assert_eq!(cs.cfg_size(), s.info.cfg_size);
    for (pos, (&got, &want)) in cs.owner_map().iter().zip(s.owner.iter()).enumerate() {
        assert_eq!(got, want, "owner of {pos:#x}");
    }
    check_chains(&mut cs, &mut dev, &s);
    let fast = FastReads::new();
    cs.publish_fast_reads(&fast);
    let mut shadow = VirtShadow([(0, 0); 4096]);

    let mut ops = 0;
    while e.more() && ops < 256 {
        ops += 1;
        let kind = e.below(16);
        let pos = if e.chance(24) {
            // INTERRUPT_LINE's dword, the standard header's virtual-write one.
            r::INTERRUPT_LINE as u32 + e.below(4)
        } else if e.chance(160) {
            e.below(256)
        } else {
            e.below(s.info.cfg_size as u32)
        } as u64;
        let n = 1 + e.below(8) as usize;
        let mut buf = [0u8; 8];
        for b in buf.iter_mut() {
            *b = e.u8();
        }
        let fits = pos + n as u64 <= s.info.cfg_size as u64;
        match kind {
            0 => {
                dev.msi_active = e.chance(128);
                dev.msi_qmax = e.below(6) as u8;
            }
            1..=3 => {
                let before = dev.accesses;
                // The emulator reads the image: give it the lock-free virtual writes, as the
                // kernel does before an SDK access.
                cs.absorb_fast_writes(&fast);
                let got = cs.rw(&mut dev, pos, &mut buf[..n], false);
                if fits {
                    assert_eq!(got, Ok(n), "read of {n} at {pos:#x}");
                } else {
                    assert_eq!(got, Err(EFAULT));
                    assert_eq!(dev.accesses, before, "a refused read touched the device");
                }
                // The lock-free path gives the same bytes and errors, and touches the device
                // no more than the emulator.
                let before = dev.accesses;
                let mut again = [0u8; 8];
                let got_fast = read_with_fast(&mut cs, &fast, &mut dev, pos, &mut again[..n]);
                assert_eq!(got_fast, got, "lock-free read of {n} at {pos:#x}");
                if got.is_ok() {
                    assert_eq!(again[..n], buf[..n], "lock-free read of {n} at {pos:#x}");
                }
                if !fits {
                    assert_eq!(dev.accesses, before, "a refused read touched the device");
                }
            }
            4 => {
                // Oversized or out-of-range requests fail before any access.
                let far = s.info.cfg_size as u64 - e.below(4) as u64;
                let before = dev.accesses;
                assert_eq!(
                    cs.rw(&mut dev, far, &mut buf[..n.max(5)], e.chance(128)),
                    Err(EFAULT)
                );
                assert_eq!(dev.accesses, before);
            }
            5..=7 if fits && virt_write_bits(&fast, pos as usize) != 0 => {
                // A write of a virtual-write dword without the emulator: the table's entry
                // stores it, and the emulator's image must end up the same as its own write
                // of those bytes would leave it, with no device access nor side effect.
                // (A single chunk; else the rest goes to the emulator after the fast chunk.)
                cs.absorb_fast_writes(&fast);
                let before = cs.vconfig;
                let val = buf
                    .iter()
                    .take(4)
                    .enumerate()
                    .fold(0u32, |v, (i, b)| v | (*b as u32) << (8 * i));
                let no_device = |_: u16, _: u8| -> Result<u32, Errno> {
                    panic!("device read on a virtual write")
                };
                let got = fast.write_chunk(pos, n, val, no_device, |_, _, _| {
                    panic!("device write on a virtual write")
                });
                let Ok(FastChunk::Done(size, _)) = got else {
                    panic!("virtual write at {pos:#x} refused: {got:?}");
                };
                shadow.note(&fast, pos as usize, &buf[..size]);
                if size == n && e.chance(128) {
                    cs.absorb_fast_writes(&fast);
                    let fast_image = cs.vconfig;
                    cs.vconfig = before;
                    let side = (dev.resets, dev.power_state, dev.intx_masked, dev.readrq);
                    let accesses = dev.accesses;
                    assert_eq!(cs.rw(&mut dev, pos, &mut buf[..n], true), Ok(n));
                    assert_eq!(dev.accesses, accesses, "virtual write reached the device");
                    assert_eq!(
                        side,
                        (dev.resets, dev.power_state, dev.intx_masked, dev.readrq),
                        "a virtual write had a side effect"
                    );
                    let diff = fast_image
                        .iter()
                        .zip(cs.vconfig.iter())
                        .position(|(a, b)| a != b);
                    assert_eq!(
                        diff, None,
                        "virtual write of {n} at {pos:#x}: images differ"
                    );
                } else if size < n {
                    // The rest of the request through the emulator.
                    let at = pos + size as u64;
                    assert_eq!(cs.rw(&mut dev, at, &mut buf[size..n], true), Ok(n - size));
                    shadow.note(&fast, at as usize, &buf[size..n]);
                }
            }
            _ => {
                // Where the table lets the first chunk bypass the emulator, the emulator must
                // do exactly the device read-modify-write the lock-free path does, and nothing
                // else: check it on the emulator's own write of that chunk.
                // (Only writes of one chunk: later chunks have effects of their own.)
                let model = if fits {
                    fast_write_model(&fast, &dev, pos, n, &buf).filter(|m| m.1 == n)
                } else {
                    None
                };
                let image = model.map(|_| cs.vconfig);
                let side = (dev.resets, dev.power_state, dev.intx_masked, dev.readrq);
                let got = cs.rw(&mut dev, pos, &mut buf[..n], true);
                if fits {
                    assert_eq!(got, Ok(n), "write of {n} at {pos:#x}");
                    shadow.note(&fast, pos as usize, &buf[..n]);
                } else {
                    assert_eq!(got, Err(EFAULT));
                }
                if let (Some((at, size, want)), Some(image)) = (model, image) {
                    let have = &dev.hw[at as usize..at as usize + size];
                    assert_eq!(have, &want.to_le_bytes()[..size], "fast write at {at:#x}");
                    let diff = image
                        .iter()
                        .zip(cs.vconfig.iter())
                        .position(|(a, b)| a != b);
                    assert_eq!(
                        diff, None,
                        "a fast-writable chunk at {at:#x} (write of {n} at {pos:#x}) changed the image"
                    );
                    assert_eq!(
                        side,
                        (dev.resets, dev.power_state, dev.intx_masked, dev.readrq),
                        "a fast-writable chunk had a side effect"
                    );
                }
            }
        }
        // As the kernel does under the mutex after every emulated access.
        cs.sync_fast_reads(&fast);
        assert_eq!(
            dev.violation, None,
            "host-owned bits changed (offset, old, new)"
        );
        assert_eq!(dev.lock_depth, 0, "memory lock unbalanced");
        assert_eq!(dev.intx_masked, cs.virq_disabled);
        shadow.check(&fast);
        if ops % 16 == 0 {
            check_chains(&mut cs, &mut dev, &s);
            check_fast(&mut cs, &fast);
        }
    }
    check_chains(&mut cs, &mut dev, &s);
    check_fast(&mut cs, &fast);
    shadow.check(&fast);
}
