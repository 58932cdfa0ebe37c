// SPDX-License-Identifier: GPL-2.0
//! Live migration through the VFIO uAPI only, with the sample `vfio-pci-mig-edu`
//! (samples/migration) bound to the two edu devices (`edu` is A, `edu-b` is B):
//! - `migration-absent-edu-b-<driver>`: bound to upstream `vfio-pci` and to
//!   `vfio-pci-generic`, the migration features are `ENOTTY` (the VFIO core, no `mig_ops`);
//! - `migration-features-edu`: `VFIO_DEVICE_FEATURE_MIGRATION` reports STOP_COPY | PRE_COPY,
//!   `_MIG_DATA_SIZE` one frame (16-byte header + 52 bytes), the state is RUNNING; the
//!   feature's argument rules are the VFIO core's (`EINVAL` for GET|SET, a short argsz, SET
//!   of the read-only features);
//! - `migration-round-trip-edu`: A programmed (liveness, factorial, status, DMA registers,
//!   interrupt status), A: RUNNING -> STOP -> STOP_COPY, data fd read to its end (0); B:
//!   RESUMING, stream written, STOP, RUNNING; B reads back what A held;
//! - `migration-pre-copy-edu`: PRE_COPY, `VFIO_MIG_GET_PRECOPY_INFO` (initial bytes go down
//!   as they are read, `ENOMSG` at the temporary end), A changed meanwhile, PRE_COPY ->
//!   STOP_COPY continues the same fd (no new one), permanent end (0), B gets A's last state;
//!   PRECOPY_INFO with a short argsz is `EINVAL`, another ioctl on the fd `ENOTTY`;
//! - `migration-invalid-arcs-edu`: every state the device does not offer, numbers past the
//!   last state, ERROR and STOP_COPY -> PRE_COPY are `EINVAL` (as `vfio_mig_get_next_state`
//!   answers) and leave the state as it was;
//! - `migration-stale-fds-edu`: a data fd used after its state was left is `ENODEV` (read,
//!   write) or `EINVAL` (PRECOPY_INFO outside PRE_COPY, as hisi_acc and mlx5);
//! - `migration-truncated-stream-edu`: RESUMING -> STOP with a stream cut short is `EINVAL`
//!   and B stays in RESUMING, unchanged; writing the rest then completes the migration;
//! - `migration-corrupted-stream-edu`: a flipped byte is `EINVAL`, B in RESUMING; after
//!   `VFIO_DEVICE_RESET` B is RUNNING and works;
//! - `migration-bad-state-edu`: a well-framed stream the sample refuses (unknown version)
//!   puts B in ERROR: no SET leaves it (`EINVAL`), `VFIO_DEVICE_RESET` does;
//! - `migration-oversized-write-edu`: more than the device's stream can hold is `ENOMEM`;
//! - `migration-close-mid-edu`: A closed with its STOP_COPY fd open, B closed with its
//!   RESUMING fd open: the fds then fail with `ENODEV`, are closed after the device, and a
//!   reopened device is RUNNING;
//! - `migration-threads-edu`: four threads change A's state at random while reading the fds
//!   they get; only `EINVAL` may be refused, and A ends usable after a reset.

use crate::{find_nodes, s, vfio, Suite};
use pcibind::Bdf;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

const DRIVER: &str = "vfio-pci-mig-edu";

const FEATURE_GET: u32 = 1 << 16;
const FEATURE_SET: u32 = 1 << 17;
const FEATURE_MIGRATION: u32 = 1;
const FEATURE_MIG_DEVICE_STATE: u32 = 2;
const FEATURE_MIG_DATA_SIZE: u32 = 9;
const MIGRATION_STOP_COPY: u64 = 1;
const MIGRATION_PRE_COPY: u64 = 4;

const ERROR: u32 = 0;
const STOP: u32 = 1;
const RUNNING: u32 = 2;
const STOP_COPY: u32 = 3;
const RESUMING: u32 = 4;
const RUNNING_P2P: u32 = 5;
const PRE_COPY: u32 = 6;
const PRE_COPY_P2P: u32 = 7;

/// `VFIO_MIG_GET_PRECOPY_INFO`: `_IO(';', 100 + 21)`.
const MIG_GET_PRECOPY_INFO: u64 = (0x3b << 8) | 121;

/// The sample's frame: 16-byte header, 52-byte payload.
const FRAME: usize = 16 + 52;

// edu's registers (BAR 0).
const LIVENESS: u64 = 0x04;
const FACTORIAL: u64 = 0x08;
const STATUS: u64 = 0x20;
const IRQ_STATUS: u64 = 0x24;
const IRQ_RAISE: u64 = 0x60;
const IRQ_ACK: u64 = 0x64;
const DMA_SRC: u64 = 0x80;
const DMA_DST: u64 = 0x88;
const DMA_COUNT: u64 = 0x90;

/// A dword of BAR0 through `pread` (also used by mdev_pci.rs).
pub(crate) fn bar_rd(f: &File, off: u64) -> Result<u32, String> {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, vfio::region_offset(0) as u64 + off)
        .map_err(|e| format!("BAR read {off:#x}: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

/// A dword write to BAR0 through `pwrite` (also used by mdev_pci.rs).
pub(crate) fn bar_wr(f: &File, off: u64, v: u32) -> Result<(), String> {
    f.write_all_at(&v.to_le_bytes(), vfio::region_offset(0) as u64 + off)
        .map_err(|e| format!("BAR write {off:#x}: {e}"))
}

/// `VFIO_DEVICE_FEATURE` with `flags` and `data` (written back): the errno on failure.
fn feature_io(f: &File, flags: u32, data: &mut [u8]) -> Result<(), i32> {
    let mut buf: Vec<u8> = Vec::new();
    buf.extend_from_slice(&((8 + data.len()) as u32).to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(data);
    // SAFETY: `buf` holds the header and `data.len()` bytes, as its argsz says.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            vfio::VFIO_DEVICE_FEATURE as _,
            buf.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    data.copy_from_slice(&buf[8..]);
    Ok(())
}

fn get_state(f: &File) -> Result<u32, String> {
    let mut d = [0u8; 8];
    feature_io(f, FEATURE_GET | FEATURE_MIG_DEVICE_STATE, &mut d)
        .map_err(|e| format!("GET MIG_DEVICE_STATE: errno {e}"))?;
    Ok(u32::from_ne_bytes([d[0], d[1], d[2], d[3]]))
}

/// SET MIG_DEVICE_STATE: the data fd if the arc returned one, or the errno.
fn set_state(f: &File, state: u32) -> Result<Option<File>, i32> {
    let mut d = [0u8; 8];
    d[..4].copy_from_slice(&state.to_ne_bytes());
    d[4..].copy_from_slice(&(-1i32).to_ne_bytes());
    feature_io(f, FEATURE_SET | FEATURE_MIG_DEVICE_STATE, &mut d)?;
    let fd = i32::from_ne_bytes([d[4], d[5], d[6], d[7]]);
    // SAFETY: a non-negative `data_fd` is a new fd the VFIO core installed for us.
    Ok((fd >= 0).then(|| unsafe { File::from_raw_fd(fd) }))
}

fn go(f: &File, state: u32) -> Result<Option<File>, String> {
    set_state(f, state).map_err(|e| format!("SET state {state}: errno {e}"))
}

fn expect_errno(what: &str, got: Result<impl Sized, i32>, want: i32) -> Result<(), String> {
    match got {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: errno {e}, expected {want}")),
        Ok(_) => Err(format!("{what} succeeded, expected errno {want}")),
    }
}

fn read_errno(fd: &mut File, n: usize) -> Result<usize, i32> {
    let mut b = vec![0u8; n];
    fd.read(&mut b).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// Reads a saving fd until `read` returns 0.
fn read_to_end(fd: &mut File) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 7];
    loop {
        match fd.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the data fd: {e}")),
        }
        if out.len() > 4096 {
            return Err("the data fd never ends".into());
        }
    }
}

fn precopy_info(fd: &File) -> Result<(u64, u64), i32> {
    precopy_info_argsz(fd, 24)
}

fn precopy_info_argsz(fd: &File, argsz: u32) -> Result<(u64, u64), i32> {
    let mut b = [0u64; 3];
    b[0] = argsz.into();
    // SAFETY: a 24-byte `vfio_precopy_info`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), MIG_GET_PRECOPY_INFO as _, b.as_mut_ptr()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok((b[1], b[2]))
}

/// CRC-32 (zlib's), to forge well-framed streams.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// edu's guest-visible registers.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Regs {
    liveness: u32,
    factorial: u32,
    status: u32,
    irq_status: u32,
    /// Source, destination, count.
    dma: [u32; 3],
}

fn regs(f: &File) -> Result<Regs, String> {
    Ok(Regs {
        liveness: bar_rd(f, LIVENESS)?,
        factorial: bar_rd(f, FACTORIAL)?,
        status: bar_rd(f, STATUS)?,
        irq_status: bar_rd(f, IRQ_STATUS)?,
        dma: [
            bar_rd(f, DMA_SRC)?,
            bar_rd(f, DMA_DST)?,
            bar_rd(f, DMA_COUNT)?,
        ],
    })
}

fn wait(
    f: &File,
    what: &str,
    mut idle: impl FnMut(&File) -> Result<bool, String>,
) -> Result<(), String> {
    for _ in 0..300 {
        if idle(f)? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(format!("edu never finished {what}"))
}

/// Gives A a state unlike the one after reset: liveness, 10! with its interrupt enabled, DMA
/// addresses and count, interrupt status 0x104. No DMA runs (edu's DMA command cannot be
/// restored without starting one: the sample leaves it, see samples/migration).
fn program(f: &File, seed: u32) -> Result<Regs, String> {
    bar_wr(f, LIVENESS, 0x1234_5678 ^ seed)?;
    bar_wr(f, FACTORIAL, 10)?;
    wait(f, "the factorial", |f| Ok(bar_rd(f, STATUS)? & 1 == 0))?;
    bar_wr(f, STATUS, 0x80)?;
    bar_wr(f, DMA_SRC, 0x1000 + seed)?;
    bar_wr(f, DMA_DST, 0x2000 + seed)?;
    bar_wr(f, DMA_COUNT, 0x80)?;
    bar_wr(f, IRQ_ACK, u32::MAX)?;
    bar_wr(f, IRQ_RAISE, 0x104)?;
    let r = regs(f)?;
    let want = Regs {
        liveness: !(0x1234_5678 ^ seed),
        factorial: 3_628_800,
        status: 0x80,
        irq_status: 0x104,
        dma: [0x1000 + seed, 0x2000 + seed, 0x80],
    };
    if r != want {
        return Err(format!("A programmed reads {r:x?}, expected {want:x?}"));
    }
    Ok(r)
}

/// Leaves no interrupt pending and nothing raised by edu in the device.
fn quiet(f: &File) {
    let _ = bar_wr(f, STATUS, 0);
    let _ = bar_wr(f, IRQ_ACK, u32::MAX);
}

/// A: RUNNING -> STOP -> STOP_COPY, the stream read to its end, A back to RUNNING.
fn save(a: &File) -> Result<Vec<u8>, String> {
    if go(a, STOP)?.is_some() {
        return Err("RUNNING -> STOP returned a data fd".into());
    }
    let mut fd = go(a, STOP_COPY)?.ok_or("STOP -> STOP_COPY returned no data fd")?;
    let stream = read_to_end(&mut fd)?;
    go(a, RUNNING)?;
    Ok(stream)
}

/// B: RESUMING, `stream` written, then STOP and RUNNING.
fn restore(b: &File, stream: &[u8]) -> Result<(), String> {
    let mut fd = go(b, RESUMING)?.ok_or("RESUMING returned no data fd")?;
    fd.write_all(stream)
        .map_err(|e| format!("writing the stream: {e}"))?;
    go(b, STOP)?;
    go(b, RUNNING)?;
    Ok(())
}

/// What opening a device needs, apart from the suite's report.
struct Opener<'a> {
    sys: &'a pcibind::Sysfs,
    mode: crate::Mode,
    iommu_type: u32,
}

impl Opener<'_> {
    /// Opens `bdf` through its group, with memory decode on (edu's BAR is used right away).
    fn open(&self, bdf: &Bdf) -> Result<vfio::Device, String> {
        let nodes = find_nodes(self.sys, self.mode, bdf)?;
        let d = vfio::open_via_group(&nodes.group, &bdf.to_string(), self.iommu_type)?;
        crate::irq::command_set(&d.file, 0x2)?;
        Ok(d)
    }

    /// Back to RUNNING the ways the uAPI offers: `VFIO_DEVICE_RESET` if the device has a
    /// function reset (edu has none: `EINVAL`), else closing and reopening it.
    fn recover(&self, dev: &mut Dev<'_>) -> Result<(), String> {
        match vfio::reset(dev.f()?) {
            0 => crate::irq::command_set(dev.f()?, 0x2)?,
            e if e == libc::EINVAL => {
                dev.d = None;
                dev.d = Some(self.open(dev.bdf)?);
            }
            e => return Err(format!("VFIO_DEVICE_RESET: errno {e}")),
        }
        let f = dev.f()?;
        if get_state(f)? != RUNNING {
            return Err(format!("{} not RUNNING after a reset or reopen", dev.bdf));
        }
        bar_wr(f, LIVENESS, 0x55)?;
        if bar_rd(f, LIVENESS)? != !0x55 {
            return Err(format!("{} does not work after a reset or reopen", dev.bdf));
        }
        Ok(())
    }
}

/// An open device of the checks (none while it is being reopened).
struct Dev<'a> {
    bdf: &'a Bdf,
    d: Option<vfio::Device>,
}

impl Dev<'_> {
    fn f(&self) -> Result<&File, String> {
        self.d
            .as_ref()
            .map(|d| &d.file)
            .ok_or_else(|| format!("{} could not be reopened", self.bdf))
    }
}

impl Suite {
    fn label(&self, label: &str) -> Option<Bdf> {
        self.args
            .devices
            .iter()
            .find(|(_, l)| l == label)
            .map(|(b, _)| b.clone())
    }

    pub(crate) fn migration_checks(&mut self) {
        let (Some(a), Some(b)) = (self.label("edu"), self.label("edu-b")) else {
            self.r.check("migration-devices", || {
                Err("needs --device ...=edu and --device ...=edu-b".into())
            });
            return;
        };
        if !self.sys.driver_loaded(DRIVER) {
            self.r.check("migration-driver", || {
                Err(format!("{DRIVER} is not registered"))
            });
            return;
        }
        let o = Opener {
            sys: &self.sys,
            mode: self.args.mode,
            iommu_type: self.iommu_type(),
        };
        // Without migration, the VFIO core answers the migration features itself: upstream
        // vfio-pci and our generic driver alike.
        for d in ["vfio-pci", "vfio-pci-generic"] {
            if !o.sys.driver_loaded(d) {
                continue;
            }
            let got = (|| -> Result<(), String> {
                let _ = o.sys.unbind(&b);
                o.sys.bind(&b, d).map_err(s)?;
                let dev = o.open(&b)?;
                let mut m = [0u8; 8];
                expect_errno(
                    "GET MIGRATION",
                    feature_io(&dev.file, FEATURE_GET | FEATURE_MIGRATION, &mut m),
                    libc::ENOTTY,
                )?;
                expect_errno(
                    "GET MIG_DEVICE_STATE",
                    feature_io(&dev.file, FEATURE_GET | FEATURE_MIG_DEVICE_STATE, &mut m),
                    libc::ENOTTY,
                )?;
                expect_errno(
                    "GET MIG_DATA_SIZE",
                    feature_io(&dev.file, FEATURE_GET | FEATURE_MIG_DATA_SIZE, &mut m),
                    libc::ENOTTY,
                )
            })();
            let _ = o.sys.unbind(&b);
            self.r.check(&format!("migration-absent-edu-b-{d}"), || got);
        }
        let opened = (|| -> Result<_, String> {
            for d in [&a, &b] {
                let _ = o.sys.unbind(d);
                o.sys.bind(d, DRIVER).map_err(s)?;
            }
            Ok((o.open(&a)?, o.open(&b)?))
        })();
        let mut devs = None;
        self.r.check("migration-bind-edu", || {
            devs = Some(opened?);
            Ok(())
        });
        if let Some((da, db)) = devs {
            let da = Dev {
                bdf: &a,
                d: Some(da),
            };
            let db = Dev {
                bdf: &b,
                d: Some(db),
            };
            migration_on(&mut self.r, &o, da, db);
        }
        for d in [&a, &b] {
            let _ = o.sys.unbind(d);
        }
    }
}

fn migration_on(r: &mut crate::Report, o: &Opener<'_>, mut da: Dev<'_>, mut db: Dev<'_>) {
    r.check("migration-features-edu", || features(da.f()?));
    r.check("migration-round-trip-edu", || {
        let want = program(da.f()?, 0)?;
        let stream = save(da.f()?)?;
        if stream.len() != FRAME {
            return Err(format!(
                "stream of {} bytes, expected {FRAME}",
                stream.len()
            ));
        }
        restore(db.f()?, &stream)?;
        let got = regs(db.f()?)?;
        if got != want {
            return Err(format!("B reads {got:x?}, A held {want:x?}"));
        }
        if get_state(da.f()?)? != RUNNING || get_state(db.f()?)? != RUNNING {
            return Err("A or B not RUNNING afterwards".into());
        }
        Ok(())
    });
    r.check("migration-pre-copy-edu", || pre_copy(da.f()?, db.f()?));
    r.check("migration-invalid-arcs-edu", || invalid_arcs(da.f()?));
    r.check("migration-stale-fds-edu", || stale_fds(da.f()?, db.f()?));
    r.check("migration-truncated-stream-edu", || {
        let want = program(da.f()?, 3)?;
        let stream = save(da.f()?)?;
        let mut fd = go(db.f()?, RESUMING)?.ok_or("RESUMING returned no data fd")?;
        let cut = stream.len() - 5;
        fd.write_all(&stream[..cut]).map_err(s)?;
        expect_errno(
            "RESUMING -> STOP, truncated",
            set_state(db.f()?, STOP),
            libc::EINVAL,
        )?;
        if get_state(db.f()?)? != RESUMING {
            return Err("B left RESUMING after a refused stream".into());
        }
        fd.write_all(&stream[cut..]).map_err(s)?;
        go(db.f()?, RUNNING)?;
        let got = regs(db.f()?)?;
        if got != want {
            return Err(format!("B reads {got:x?} after the rest, A held {want:x?}"));
        }
        Ok(())
    });
    r.check("migration-corrupted-stream-edu", || {
        let stream = save(da.f()?)?;
        for at in [0, 5, 9, 13, 16, FRAME - 1] {
            let mut bad = stream.clone();
            bad[at] ^= 0x40;
            let mut fd = go(db.f()?, RESUMING)?.ok_or("no data fd")?;
            fd.write_all(&bad).map_err(s)?;
            expect_errno(
                &format!("RESUMING -> STOP, byte {at} flipped"),
                set_state(db.f()?, STOP),
                libc::EINVAL,
            )?;
            if get_state(db.f()?)? != RESUMING {
                return Err("B left RESUMING after a refused stream".into());
            }
            drop(fd);
            o.recover(&mut db)?;
        }
        Ok(())
    });
    r.check("migration-bad-state-edu", || {
        let mut payload = vec![0u8; 52];
        payload[0] = 2; // a version this sample does not know
        let mut stream = Vec::new();
        stream.extend_from_slice(b"VFMG");
        stream.extend_from_slice(&1u16.to_le_bytes());
        stream.extend_from_slice(&[0, 0]);
        stream.extend_from_slice(&52u32.to_le_bytes());
        stream.extend_from_slice(&crc32(&payload).to_le_bytes());
        stream.extend_from_slice(&payload);
        let mut fd = go(db.f()?, RESUMING)?.ok_or("no data fd")?;
        fd.write_all(&stream).map_err(s)?;
        expect_errno(
            "RESUMING -> STOP, version 2",
            set_state(db.f()?, STOP),
            libc::EINVAL,
        )?;
        if get_state(db.f()?)? != ERROR {
            return Err("B not in ERROR after its variant refused the state".into());
        }
        for st in [RUNNING, STOP, RESUMING] {
            expect_errno(
                &format!("ERROR -> {st}"),
                set_state(db.f()?, st),
                libc::EINVAL,
            )?;
        }
        drop(fd);
        o.recover(&mut db)
    });
    r.check("migration-oversized-write-edu", || {
        let mut fd = go(db.f()?, RESUMING)?.ok_or("no data fd")?;
        let w = fd
            .write(&[0u8; 2 * FRAME + 1])
            .map_err(|e| e.raw_os_error().unwrap_or(0));
        expect_errno("writing past the stream's limit", w, libc::ENOMEM)?;
        expect_errno(
            "RESUMING -> STOP, empty",
            set_state(db.f()?, STOP),
            libc::EINVAL,
        )?;
        drop(fd);
        o.recover(&mut db)
    });
    r.check("migration-threads-edu", || {
        threads(da.f()?)?;
        o.recover(&mut da)
    });
    for d in [&da, &db] {
        if let Ok(f) = d.f() {
            quiet(f);
        }
    }
    // Closing mid-migration: the devices go, their data fds stay open a while.
    let mut fds = None;
    r.check("migration-close-mid-edu", || {
        go(da.f()?, STOP)?;
        let mut save_fd = go(da.f()?, STOP_COPY)?.ok_or("no saving fd")?;
        let mut first = [0u8; 3];
        save_fd.read_exact(&mut first).map_err(s)?;
        let resume_fd = go(db.f()?, RESUMING)?.ok_or("no resuming fd")?;
        fds = Some((save_fd, resume_fd));
        Ok(())
    });
    let (a_bdf, b_bdf) = (da.bdf, db.bdf);
    drop(da);
    drop(db);
    if let Some((mut save_fd, mut resume_fd)) = fds {
        r.check("migration-close-mid-fds-edu", || {
            expect_errno(
                "read after close",
                read_errno(&mut save_fd, 8),
                libc::ENODEV,
            )?;
            let w = resume_fd
                .write(&[0u8; 4])
                .map_err(|e| e.raw_os_error().unwrap_or(0));
            expect_errno("write after close", w, libc::ENODEV)?;
            for bdf in [a_bdf, b_bdf] {
                let d = o.open(bdf)?;
                if get_state(&d.file)? != RUNNING {
                    return Err(format!("{bdf} reopened in another state than RUNNING"));
                }
                quiet(&d.file);
            }
            Ok(())
        });
    }
}

fn features(f: &File) -> Result<(), String> {
    let mut m = [0u8; 8];
    feature_io(f, FEATURE_GET | FEATURE_MIGRATION, &mut m)
        .map_err(|e| format!("GET MIGRATION: errno {e}"))?;
    let flags = u64::from_ne_bytes(m);
    if flags != MIGRATION_STOP_COPY | MIGRATION_PRE_COPY {
        return Err(format!(
            "migration flags {flags:#x}, expected STOP_COPY | PRE_COPY"
        ));
    }
    let mut z = [0u8; 8];
    feature_io(f, FEATURE_GET | FEATURE_MIG_DATA_SIZE, &mut z)
        .map_err(|e| format!("GET MIG_DATA_SIZE: errno {e}"))?;
    if u64::from_ne_bytes(z) != FRAME as u64 {
        return Err(format!(
            "stop_copy_length {}, expected {FRAME}",
            u64::from_ne_bytes(z)
        ));
    }
    if get_state(f)? != RUNNING {
        return Err("not RUNNING after open".into());
    }
    let mut d = [0u8; 8];
    expect_errno(
        "GET|SET MIG_DEVICE_STATE",
        feature_io(
            f,
            FEATURE_GET | FEATURE_SET | FEATURE_MIG_DEVICE_STATE,
            &mut d,
        ),
        libc::EINVAL,
    )?;
    expect_errno(
        "SET MIGRATION",
        feature_io(f, FEATURE_SET | FEATURE_MIGRATION, &mut m),
        libc::EINVAL,
    )?;
    expect_errno(
        "GET MIG_DEVICE_STATE with argsz 12",
        feature_io(f, FEATURE_GET | FEATURE_MIG_DEVICE_STATE, &mut [0u8; 4]),
        libc::EINVAL,
    )?;
    Ok(())
}

fn pre_copy(a: &File, b: &File) -> Result<(), String> {
    program(a, 7)?;
    let mut fd = go(a, PRE_COPY)?.ok_or("RUNNING -> PRE_COPY returned no data fd")?;
    if precopy_info(&fd) != Ok((FRAME as u64, 0)) {
        return Err(format!(
            "PRECOPY_INFO {:?}, expected ({FRAME}, 0)",
            precopy_info(&fd)
        ));
    }
    let mut stream = vec![0u8; 10];
    fd.read_exact(&mut stream).map_err(s)?;
    if precopy_info(&fd) != Ok((FRAME as u64 - 10, 0)) {
        return Err(format!(
            "PRECOPY_INFO {:?} after 10 bytes",
            precopy_info(&fd)
        ));
    }
    let mut rest = vec![0u8; FRAME - 10];
    fd.read_exact(&mut rest).map_err(s)?;
    stream.extend_from_slice(&rest);
    expect_errno(
        "read at the pre-copy end",
        read_errno(&mut fd, 8),
        libc::ENOMSG,
    )?;
    expect_errno(
        "PRECOPY_INFO with argsz 23",
        precopy_info_argsz(&fd, 23),
        libc::EINVAL,
    )?;
    // SAFETY: an ioctl the data fd does not have, with no argument.
    let other = unsafe { libc::ioctl(fd.as_raw_fd(), (0x3b << 8) | 122, 0) };
    if other >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOTTY) {
        return Err("another ioctl on the data fd is not ENOTTY".into());
    }
    // The device runs in PRE_COPY: what changes now travels in the final frame.
    bar_wr(a, LIVENESS, 0xabcd)?;
    let want = regs(a)?;
    if go(a, STOP_COPY)?.is_some() {
        return Err("PRE_COPY -> STOP_COPY returned a new data fd".into());
    }
    expect_errno("PRECOPY_INFO in STOP_COPY", precopy_info(&fd), libc::EINVAL)?;
    stream.extend(read_to_end(&mut fd)?);
    if stream.len() != 2 * FRAME {
        return Err(format!(
            "pre-copy stream of {} bytes, expected {}",
            stream.len(),
            2 * FRAME
        ));
    }
    go(a, RUNNING)?;
    restore(b, &stream)?;
    let got = regs(b)?;
    if got != want {
        return Err(format!("B reads {got:x?}, A held {want:x?}"));
    }
    Ok(())
}

fn invalid_arcs(a: &File) -> Result<(), String> {
    for st in [RUNNING_P2P, PRE_COPY_P2P, ERROR, 8, 0xffff_ffff] {
        expect_errno(&format!("RUNNING -> {st}"), set_state(a, st), libc::EINVAL)?;
        if get_state(a)? != RUNNING {
            return Err(format!("a refused SET {st} changed the state"));
        }
    }
    go(a, STOP)?;
    let _fd = go(a, STOP_COPY)?;
    for st in [PRE_COPY, PRE_COPY_P2P, RUNNING_P2P] {
        expect_errno(
            &format!("STOP_COPY -> {st}"),
            set_state(a, st),
            libc::EINVAL,
        )?;
        if get_state(a)? != STOP_COPY {
            return Err(format!("a refused SET {st} left STOP_COPY"));
        }
    }
    go(a, RUNNING)?;
    Ok(())
}

fn stale_fds(a: &File, b: &File) -> Result<(), String> {
    go(a, STOP)?;
    let mut fd = go(a, STOP_COPY)?.ok_or("no saving fd")?;
    let mut part = [0u8; 4];
    fd.read_exact(&mut part).map_err(s)?;
    go(a, STOP)?;
    expect_errno(
        "read after STOP_COPY was left",
        read_errno(&mut fd, 8),
        libc::ENODEV,
    )?;
    go(a, RUNNING)?;

    let mut pre = go(a, PRE_COPY)?.ok_or("no pre-copy fd")?;
    go(a, RUNNING)?;
    expect_errno(
        "PRECOPY_INFO after PRE_COPY was left",
        precopy_info(&pre),
        libc::EINVAL,
    )?;
    expect_errno(
        "read after PRE_COPY was left",
        read_errno(&mut pre, 8),
        libc::ENODEV,
    )?;

    let stream = save(a)?;
    let mut fd = go(b, RESUMING)?.ok_or("no resuming fd")?;
    fd.write_all(&stream).map_err(s)?;
    go(b, STOP)?;
    let w = fd
        .write(&[0u8; 4])
        .map_err(|e| e.raw_os_error().unwrap_or(0));
    expect_errno("write after RESUMING was left", w, libc::ENODEV)?;
    go(b, RUNNING)?;
    Ok(())
}

/// Four threads set random states on one device and read the fds they get: the migration
/// lock must keep every answer one the state machine allows.
fn threads(a: &File) -> Result<(), String> {
    let dev = Arc::new(a.try_clone().map_err(s)?);
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let dev = Arc::clone(&dev);
            std::thread::spawn(move || -> Result<usize, String> {
                let mut x = 0x9e37_79b9u32.wrapping_mul(t + 1);
                let mut fds = 0;
                for _ in 0..150 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let st = [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY][(x % 5) as usize];
                    match set_state(&dev, st) {
                        Ok(Some(mut fd)) => {
                            fds += 1;
                            match read_errno(&mut fd, 32) {
                                Ok(_) => {}
                                Err(e)
                                    if [libc::ENODEV, libc::ENOMSG, libc::EBADF].contains(&e) => {}
                                Err(e) => return Err(format!("read of a data fd: errno {e}")),
                            }
                        }
                        Ok(None) => {}
                        // An empty stream (RESUMING -> STOP) or an arc from where another
                        // thread left the device.
                        Err(e) if e == libc::EINVAL => {}
                        Err(e) => return Err(format!("SET {st}: errno {e}")),
                    }
                    get_state(&dev)?;
                }
                Ok(fds)
            })
        })
        .collect();
    let mut fds = 0;
    for h in handles {
        fds += h.join().map_err(|_| "a thread panicked".to_string())??;
    }
    if fds == 0 {
        return Err("no thread ever got a data fd".into());
    }
    Ok(())
}
