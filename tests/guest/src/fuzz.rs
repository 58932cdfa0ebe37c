// SPDX-License-Identifier: GPL-2.0
//! The concurrent in-guest fuzzer: `fuzz-<device>-<driver>` and `fuzz-ioctls-<driver>`.
//!
//! # What it does
//!
//! Each driver in turn (upstream `vfio-pci` first, the control, then ours), for edu (INTx and
//! MSI), nvme (MSI-X, FLR) and the pair (`pair-a` and `pair-b`, two pci-testdevs that form
//! one bus dev_set), binds the device (the pair: both functions), opens it through its group
//! and runs, until a shared stop (see [`plan`]):
//!
//! - [`WORKERS`] threads on that one device fd, each drawing operations from the table [`OPS`]
//!   (one generator function per entry, picked by weight): every device ioctl (`GET_INFO`,
//!   `GET_REGION_INFO`, `GET_IRQ_INFO`, `SET_IRQS`, `RESET`, `IOEVENTFD`,
//!   `GET_PCI_HOT_RESET_INFO`, `PCI_HOT_RESET`, `DEVICE_FEATURE`) with random `argsz`, flags,
//!   index, start, count, offsets and payloads, sane values mixed with boundary and hostile
//!   ones ([`Rng::argsz`], [`Rng::index`], [`Rng::range`]); config and BAR `pread`/`pwrite` at
//!   random offsets and sizes; `COMMAND` writes that toggle memory and I/O decode; `mmap`,
//!   touch and `munmap` of BARs; eventfds created, signalled and closed in a shared pool
//!   ([`Pool`]) while `SET_IRQS`, `IOEVENTFD` and the low-power feature register them;
//! - one more thread that opens a second fd of the same device through the same group
//!   (`VFIO_GROUP_GET_DEVICE_FD`; for the pair, pair-b's too), runs a few random operations
//!   on it and closes it, over and over.
//!
//! Each session runs in a child process forked from the (then single-threaded) suite
//! ([`fork_session`]), with its counters in shared memory ([`Shared`]): a hung thread can hold
//! process-wide locks (one stuck in `mmap` holds the address space's), which would stop the
//! whole suite if the threads ran in its process.
//!
//! Every ioctl argument lives in a per-thread [`Arena`]: 64 KiB followed by a `PROT_NONE`
//! guard page, so whatever `argsz` or `count` claims, the kernel can only read or write the
//! arena or fault (`EFAULT`) on the guard.
//!
//! A session stops at [`FUZZ_SECONDS`], or earlier once it issued [`SESSION_IOCTLS`] ioctls
//! and ran [`MIN_SECONDS`] (the test kernel is about ten times faster than the debug kernel).
//! The check `fuzz-<device>-<driver>` passes when every thread finished within [`GRACE`] of
//! the stop (one that did not is reported as hung with the operation it was in; the device is
//! left bound, since an unbind would wait for the fd the thread holds, and no further session
//! runs: a deadlock can block what both drivers share), no thread panicked, the device afterwards
//! still answers `GET_INFO` and a config read of dword 0 (equal to sysfs's vendor/device), and
//! after every fd is closed no `vfio-` interrupt is left in `/proc/interrupts`. Kernel reports
//! (KASAN, lockdep, WARN) are caught by the host and `dmesg-clean`. `fuzz-ioctls-<driver>`
//! checks that the driver's sessions issued at least [`MIN_IOCTLS`] ioctls together. Each
//! check prints `INFO fuzz <device> <driver>: seed=... ioctls=N (rate/s; per thread ...)` and
//! `INFO fuzz-ops ...` (per operation: calls, accepted, mean wall time), and each driver
//! `INFO fuzz total <driver>: ioctls=N in Ts (rate/s)`.
//!
//! After the unbind, config dwords past the standard header that differ from a dump taken
//! before the bind are written back through sysfs ([`restore_device_config`]); edu's pending
//! interrupts are acked before the close.
//!
//! # Seeds
//!
//! The seed is `--seed N` or, without it, taken from the clock; it is printed first
//! (`INFO fuzz seed=...`) and with every check. Each thread's PRNG stream (splitmix64) is
//! derived from the seed, the device label and the thread number only, so both drivers get
//! the same operation sequences per thread, and `--seed` replays them (the interleaving of the
//! threads is up to the scheduler). Two environment variables (e.g. on the guest kernel
//! command line, which the kernel hands to init: `VFIO_RS_GUEST_APPEND="VFIO_FUZZ_SECONDS=60
//! vfiotest.extra=--suite,robust,--seed,0x1234"`) help a replay: `VFIO_FUZZ_SECONDS=N` runs
//! every session exactly N seconds, `VFIO_FUZZ_DEVICES=edu,nvme` fuzzes only those devices.
//!
//! # Safety of the guest: the device never does DMA
//!
//! Without an IOMMU (noiommu mode) a device's DMA reaches arbitrary guest RAM, and QEMU's edu
//! aborts QEMU on a DMA outside its range, so the fuzzer never lets a device master the bus:
//!
//! - Bus Master (`COMMAND` bit 2) is masked off in every config write that covers byte 4
//!   ([`no_bus_master`]); the kernel clears it at open and restores a state saved with it
//!   clear after resets. Under QEMU a device without Bus Master can neither DMA nor send an
//!   MSI (both go through its bus-master address space), so edu's DMA engine and nvme's queues
//!   cannot run whatever else a config write does. Other config writes are random (BARs, ROM
//!   and MSI are virtualized; PMCSR may send a device to D3hot, as upstream allows). A write
//!   that would start an FLR (`DEVCTL` bit 15) is only let through by the same rate gate as
//!   the resets.
//! - BAR writes (`pwrite`, through a mapping, or by a valid `IOEVENTFD` when its eventfd is
//!   signalled) go only to a per-device allow-list ([`safe_write`]): edu 0x04 (liveness),
//!   0x08 (factorial, of at most 12), 0x60 (raise interrupt), 0x64 (ack), and the 8-byte forms
//!   at 0x04 and 0x60 whose upper halves land on 0x08 and 0x64; pci-testdev (and the pair) any
//!   size in the first 0x100 bytes of BAR0 (its test header: a write only selects a test or
//!   bumps a counter; pci-testdev has no DMA at all); nvme and every other device: reads only.
//!   Every other BAR write is one the kernel must refuse as a whole: at or beyond the end of
//!   a BAR (a write that straddles the end is *truncated*, not refused, by upstream's
//!   `vfio_pci_bar_rw`, so it is never generated), to the ROM, the VGA region, an absent BAR,
//!   or an index past `num_regions`.
//! - `IOEVENTFD` registrations with a real eventfd: only the allow-listed (offset, size, data);
//!   with mutated flags or `argsz` only at allow-listed offsets with allow-listed data too. The
//!   invalid cases are fuzzed freely where the kernel refuses them by range (beyond a BAR, ROM,
//!   config, VGA, absent BARs, huge offsets). Removals (`fd == -1`) never write and go anywhere.
//! - `DEVICE_FEATURE` `BUS_MASTER` (10, CDX only on 6.12) is always sent with `op = CLEAR`, so
//!   a driver that wrongly implemented it for PCI could not turn bus mastering on.
//!
//! # SIGBUS in a multi-threaded process
//!
//! Touching a BAR mapping while memory decode is off, while the device is in D3hot, or while
//! a low-power feature is engaged raises SIGBUS under both drivers. [`vfio::in_child`] forks,
//! which in a process with several threads leaves the child with locks held by threads that
//! do not exist there (and costs a fork per touch under TCG). Instead a SIGBUS handler
//! ([`on_sigbus`]) looks the faulting address up in the table of mappings the workers are
//! touching right now (one slot per thread, set before the first touch and cleared after
//! `munmap`), maps an anonymous page over the faulting page with `MAP_FIXED` (`mmap` is a plain
//! system call, safe in a handler) and returns, so the access is retried and reads zeros;
//! the later `munmap` of the whole range removes both. A SIGBUS at any other address restores
//! the default action, so the retried access kills the process as it would have without the
//! handler. The previous action is restored after the fuzzer.
//!
//! # Exclusions
//!
//! Input classes upstream `vfio-pci` itself reports on are left out, so that a report means
//! our driver:
//!
//! - `IOEVENTFD` offsets with bit 63 set. 6.12's `vfio_pci_ioeventfd` takes the offset as a
//!   signed `loff_t`, so `VFIO_PCI_OFFSET_TO_INDEX` yields a negative BAR that passes its
//!   `bar > VFIO_PCI_BAR5_REGION_INDEX` test, and `pci_resource_len(pdev, bar)` reads before
//!   `pdev->resource`: an oops in upstream's control session (seed 1, test kernel, `BUG: unable
//!   to handle page fault ... RIP: vfio_pci_ioeventfd+0x5c [vfio_pci_core]`). Huge offsets are
//!   still fuzzed, with region indexes from 9 to 2^23. (Ours decodes the offset as `u64`:
//!   `common/logic/src/region.rs`.)

use crate::irq::{
    proc_vfio, BOOL as IRQ_BOOL, EFD as IRQ_EVENTFD, MASK as IRQ_MASK, NONE as IRQ_NONE,
    TRIG as IRQ_TRIGGER, UNMASK as IRQ_UNMASK, VFIO_DEVICE_GET_IRQ_INFO as GET_IRQ_INFO,
    VFIO_DEVICE_SET_IRQS as SET_IRQS,
};
use crate::{find_nodes, vfio, Suite};
use pcibind::Bdf;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds of fuzzing per device and driver at most (`VFIO_FUZZ_SECONDS` overrides it). A
/// session normally ends at its ioctl quota; the time cap only matters on a slow or loaded
/// machine, where it lets the sessions still reach [`MIN_IOCTLS`] together.
const FUZZ_SECONDS: u64 = 60;
/// A session stops early once it issued this many ioctls and ran [`MIN_SECONDS`] (three
/// sessions per driver: 135,000 ioctls, above [`MIN_IOCTLS`]).
const SESSION_IOCTLS: u64 = 45_000;
const MIN_SECONDS: u64 = 4;
const SECONDS_ENV: &str = "VFIO_FUZZ_SECONDS";
/// `VFIO_FUZZ_DEVICES=edu,nvme` fuzzes only those labels (`pair-a` is the pair).
const DEVICES_ENV: &str = "VFIO_FUZZ_DEVICES";
/// Threads on the one device fd (plus the thread that reopens the device).
const WORKERS: usize = 4;
/// How long after the stop a thread may take to finish before it counts as hung (an FLR
/// or a bus reset in flight, queued behind the device's locks, takes a second or two).
const GRACE: Duration = Duration::from_secs(25);
/// The devices fuzzed (the pair is fuzzed through pair-a, with pair-b bound beside it).
const DEVICES: [&str; 3] = ["edu", "nvme", "pair-a"];
/// The ioctls every driver's sessions must issue together (scaled down for a shorter fixed
/// `VFIO_FUZZ_SECONDS`).
const MIN_IOCTLS: u64 = 100_000;
/// Resets, hot resets and FLRs by config write: at most one at a time, and this long apart
/// (each holds the device's memory lock for 100 ms or, a bus reset, over a second).
const EXPENSIVE_GAP: Duration = Duration::from_millis(500);
/// Eventfd slots shared by the threads of a session.
const POOL: usize = 8;
/// Bytes of ioctl argument space before the guard page.
const ARENA: usize = 64 << 10;
const PAGE: usize = 4096;
/// The most pages one `mmap` maps.
const MMAP_PAGES: u64 = 4;
/// The largest `pread`/`pwrite`.
const RW_MAX: usize = 16 << 10;

/// `_IO(';', 100 + nr)`.
const fn vfio_io(nr: u64) -> u64 {
    ((b';' as u64) << 8) | (100 + nr)
}
const GET_INFO: u64 = vfio_io(7);
const GET_REGION_INFO: u64 = vfio_io(8);
const RESET: u64 = vfio_io(11);
const HOT_RESET_INFO: u64 = vfio_io(12);
const HOT_RESET: u64 = vfio_io(13);
const IOEVENTFD: u64 = vfio_io(16);
const FEATURE: u64 = vfio_io(17);

/// `DEVICE_FEATURE` operations and the features of 6.12.
const FEAT_GET: u32 = 1 << 16;
const FEAT_SET: u32 = 1 << 17;
const FEAT_PROBE: u32 = 1 << 18;
const FEAT_LOW_POWER_WAKEUP: u32 = 4;
const FEAT_BUS_MASTER: u32 = 10;
const REGION_FLAG_MMAP: u32 = vfio::REGION_FLAG_MMAP;
const NUM_BARS: u32 = 6;
const CONFIG_INDEX: u32 = vfio::CONFIG_INDEX;

// ---------------------------------------------------------------------------------------------
// Random numbers

/// splitmix64: one stream per thread, derived from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn u32(&mut self) -> u32 {
        self.next() as u32
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }

    /// An `argsz`: mostly `exact`, else the minimum, just below it, 0, huge or random.
    fn argsz(&mut self, exact: u32, minsz: u32) -> u32 {
        match self.below(12) {
            0..=6 => exact,
            7 => minsz,
            8 => minsz.saturating_sub(1 + self.below(minsz as u64) as u32),
            9 => self.pick(&[0, 1, u32::MAX, 0x8000_0000, ARENA as u32, ARENA as u32 + 1]),
            10 => exact.wrapping_add(1 + self.below(64) as u32),
            _ => self.u32(),
        }
    }

    /// An index of something that has `n` entries: mostly valid, else just past, huge or random.
    fn index(&mut self, n: u32) -> u32 {
        match self.below(10) {
            0..=6 => self.below(n as u64) as u32,
            7 => n,
            8 => self.pick(&[u32::MAX, 0x7fff_ffff, 0x8000_0000, 255, 0x10000]),
            _ => self.u32(),
        }
    }

    /// `(start, count)` over `n` entries: mostly inside (count 0 included), else hostile.
    fn range(&mut self, n: u32) -> (u32, u32) {
        match self.below(10) {
            0..=6 => {
                let start = self.below(n as u64 + 1) as u32;
                (start, self.below((n - start) as u64 + 1) as u32)
            }
            7 => (n, 1),
            8 => (
                self.below(n as u64 + 1) as u32,
                self.pick(&[u32::MAX, 0x8000_0000, n + 1, 0x4000_0000]),
            ),
            _ => (self.u32(), self.u32() >> self.below(32)),
        }
    }
}

/// FNV-1a of a label: the device's part of a thread's stream.
fn label_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------------
// What may be written

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Edu,
    TestDev,
    ReadOnly,
}

fn kind(label: &str) -> Kind {
    match label {
        "edu" => Kind::Edu,
        "pci-testdev" | "pair-a" | "pair-b" => Kind::TestDev,
        _ => Kind::ReadOnly,
    }
}

/// A BAR write that cannot make the device do DMA or anything lasting: (BAR, offset, size,
/// data). `None` for devices whose BARs are only read. With `few`, offsets and data come from
/// small sets, so that an `IOEVENTFD` removal (which must match offset, size and data) often
/// finds a registration.
fn safe_write(k: Kind, rng: &mut Rng, few: bool) -> Option<(u32, u64, usize, u64)> {
    match k {
        Kind::Edu => {
            // The factorial runs in a QEMU thread: keep it short.
            let fact = if few {
                rng.pick(&[0, 1, 12])
            } else {
                rng.below(13)
            };
            let any = if few {
                rng.pick(&[0, 1, 0xffff_ffff])
            } else {
                rng.next() & 0xffff_ffff
            };
            Some(match rng.below(6) {
                0 => (0, 0x04, 4, any),
                1 => (0, 0x08, 4, fact),
                2 => (0, 0x60, 4, any),
                3 => (0, 0x64, 4, any),
                4 => (0, 0x04, 8, (fact << 32) | any),
                _ => (0, 0x60, 8, any << 32 | any),
            })
        }
        Kind::TestDev => {
            let size = rng.pick(&[1usize, 2, 4, 8]);
            if few {
                Some((
                    0,
                    rng.pick(&[0, 8, 0x10, 0x40]),
                    size,
                    rng.pick(&[0, 1, u64::MAX]),
                ))
            } else {
                let off = rng.below((0x100 - size + 1) as u64);
                Some((0, off, size, rng.next()))
            }
        }
        Kind::ReadOnly => None,
    }
}

/// Clears Bus Master in the bytes of a config write at `off` (never let the device DMA).
fn no_bus_master(off: u64, data: &mut [u8]) {
    if off <= 4 && 4 < off + data.len() as u64 {
        data[(4 - off) as usize] &= !0x04;
    }
}

// ---------------------------------------------------------------------------------------------
// SIGBUS

const SLOTS: usize = WORKERS + 1;
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
/// The mapping each thread is touching now: `[start, end)`, or 0..0.
static MAP_START: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
static MAP_END: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
/// SIGBUS faults handled (in the session's child process).
static SIGBUS_HITS: AtomicU64 = AtomicU64::new(0);

/// Replaces the faulting page of a registered mapping with an anonymous one (see the module
/// documentation); any other SIGBUS gets the default action back.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; SIGBUS fills si_addr.
    let addr = unsafe { (*info).si_addr() } as usize;
    for k in 0..SLOTS {
        if MAP_START[k].load(Relaxed) <= addr && addr < MAP_END[k].load(Relaxed) {
            let page = addr & !(PAGE - 1);
            // SAFETY: the page lies in a device mapping that the faulting thread registered and
            // unmaps itself; replacing it with anonymous memory aliases nothing Rust knows of.
            // mmap is a plain system call, safe in a signal handler.
            let p = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                SIGBUS_HITS.fetch_add(1, Relaxed);
                return;
            }
        }
    }
    // SAFETY: signal() is async-signal-safe; the retried access then ends the process.
    unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
}

/// Installs [`on_sigbus`]; returns the action it replaced.
fn install_sigbus() -> libc::sigaction {
    // SAFETY: zeroed sigaction structs are valid; we pass live pointers to sigaction(2).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        let mut old: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, &mut old);
        old
    }
}

fn restore_sigbus(old: &libc::sigaction) {
    // SAFETY: puts back the action `install_sigbus` saved.
    unsafe { libc::sigaction(libc::SIGBUS, old, std::ptr::null_mut()) };
}

// ---------------------------------------------------------------------------------------------
// Per-thread argument memory

/// [`ARENA`] bytes of read-write memory followed by a `PROT_NONE` guard page.
struct Arena(*mut u8);

impl Arena {
    fn new() -> Result<Self, String> {
        // SAFETY: a new private anonymous mapping; checked for failure below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap arena: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the last page of the mapping just made becomes the guard.
        unsafe { libc::mprotect(p.cast::<u8>().add(ARENA).cast(), PAGE, libc::PROT_NONE) };
        Ok(Arena(p.cast()))
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ARENA read-write bytes owned by this arena; `&mut self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.0, ARENA) }
    }

    /// Fills the first `len` bytes with `b` (fields the kernel should write stand out).
    fn fill(&mut self, len: usize, b: u8) {
        self.bytes()[..len].fill(b);
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes()[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put64(&mut self, off: usize, v: u64) {
        self.bytes()[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }

    fn random(&mut self, off: usize, len: usize, rng: &mut Rng) {
        for b in &mut self.bytes()[off..off + len] {
            *b = rng.next() as u8;
        }
    }

    fn ioctl(&mut self, fd: RawFd, req: u64) -> Result<i32, i32> {
        // SAFETY: the argument is the arena; whatever argsz says, the kernel can only touch its
        // ARENA bytes or fault (EFAULT) on the guard page behind them.
        let r = unsafe { libc::ioctl(fd, req as _, self.0) };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
        } else {
            Ok(r)
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.0.cast(), ARENA + PAGE) };
    }
}

// ---------------------------------------------------------------------------------------------
// Eventfds shared by the threads

/// Eventfd slots: created, signalled and closed by any thread while others register them.
/// A thread that signals holds its own reference, so a number is never written to after it
/// was closed (it may by then name another file); registrations take the bare number, so the
/// kernel sees fds closed under it, and [`Pool::any_fd`] also hands out stale numbers.
struct Pool {
    slots: Mutex<Vec<Option<Arc<OwnedFd>>>>,
    stale: AtomicI32,
}

impl Pool {
    fn new() -> Self {
        Pool {
            slots: Mutex::new(vec![None; POOL]),
            stale: AtomicI32::new(9999),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<OwnedFd>>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self, rng: &mut Rng) -> bool {
        // SAFETY: plain system call; a non-negative result is a new fd nobody else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return false;
        }
        // SAFETY: as above.
        let new = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let old = self.lock()[rng.below(POOL as u64) as usize].replace(new);
        if let Some(o) = old {
            self.stale.store(o.as_raw_fd(), Relaxed);
        }
        true
    }

    fn close(&self, rng: &mut Rng) -> bool {
        let old = self.lock()[rng.below(POOL as u64) as usize].take();
        if let Some(o) = &old {
            self.stale.store(o.as_raw_fd(), Relaxed);
        }
        old.is_some()
    }

    fn live(&self, rng: &mut Rng) -> Option<Arc<OwnedFd>> {
        self.lock()[rng.below(POOL as u64) as usize].clone()
    }

    /// An fd number for an argument: a live eventfd (not held), a stale number, the device,
    /// a non-eventfd, or an invalid number.
    fn any_fd(&self, rng: &mut Rng, dev: RawFd, junk: RawFd) -> i32 {
        match rng.below(10) {
            0..=5 => self.live(rng).map_or(-1, |e| e.as_raw_fd()),
            6 => self.stale.load(Relaxed),
            7 => rng.pick(&[dev, junk]),
            8 => -1,
            _ => rng.pick(&[-2, 9999, i32::MAX, i32::MIN]),
        }
    }
}

/// Adds 1 to an eventfd (non-blocking: a full counter is `EAGAIN`).
fn signal(ev: &OwnedFd) -> bool {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64 to an fd this thread holds open.
    unsafe { libc::write(ev.as_raw_fd(), (&one as *const u64).cast(), 8) == 8 }
}

// ---------------------------------------------------------------------------------------------
// The device under fuzz

#[derive(Clone, Copy, Default)]
struct Region {
    size: u64,
    flags: u32,
}

/// What every thread of a session shares.
struct Target {
    kind: Kind,
    dev: File,
    /// The group(s) the device fds come from; their fds are the hot-reset proof.
    groups: Vec<vfio::Group>,
    /// What the reopening thread opens: (index into `groups`, device name).
    reopen: Vec<(usize, String)>,
    num_regions: u32,
    /// Regions 0..=8 as `GET_REGION_INFO` gave them (size 0 if absent).
    regions: Vec<Region>,
    irqs: [u32; 5],
    cfg_size: u64,
    /// The config byte holding `DEVCTL`'s initiate-FLR bit (bit 7), on PCIe devices.
    flr_byte: Option<u64>,
    junk: File,
    pool: Pool,
    /// Set when the threads are to stop.
    stop: AtomicBool,
    /// When the next expensive operation may start; held while one runs.
    gate: Mutex<Instant>,
}

impl Target {
    fn new(
        kind: Kind,
        dev: File,
        groups: Vec<vfio::Group>,
        reopen: Vec<(usize, String)>,
    ) -> Result<Self, String> {
        let info = vfio::device_info(&dev, 24).map_err(|e| format!("GET_INFO: {e}"))?;
        let regions = (0..=8)
            .map(|i| {
                vfio::region_info(&dev, i)
                    .map(|r| Region {
                        size: r.size,
                        flags: r.flags,
                    })
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>();
        let mut irqs = [0u32; 5];
        for (i, c) in irqs.iter_mut().enumerate() {
            let mut b: [u32; 4] = [16, 0, i as u32, 0];
            // SAFETY: a 16-byte vfio_irq_info the kernel writes at most 16 bytes of.
            if unsafe { libc::ioctl(dev.as_raw_fd(), GET_IRQ_INFO as _, b.as_mut_ptr()) } == 0 {
                *c = b[3];
            }
        }
        let cfg_size = regions[CONFIG_INDEX as usize].size;
        let flr_byte = find_cap(&dev, 0x10).map(|c| c + 9);
        Ok(Target {
            kind,
            dev,
            groups,
            reopen,
            num_regions: info.num_regions,
            regions,
            irqs,
            cfg_size,
            flr_byte,
            junk: File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?,
            pool: Pool::new(),
            stop: AtomicBool::new(false),
            gate: Mutex::new(Instant::now()),
        })
    }

    /// Runs `f` if no expensive operation runs now and the last ended [`EXPENSIVE_GAP`] ago.
    fn expensive<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let mut next = self.gate.try_lock().ok()?;
        if Instant::now() < *next {
            return None;
        }
        let r = f();
        *next = Instant::now() + EXPENSIVE_GAP;
        Some(r)
    }

    /// BARs (and the ROM) that exist.
    fn bars(&self) -> Vec<u32> {
        (0..=NUM_BARS)
            .filter(|&i| self.regions[i as usize].size > 0)
            .collect()
    }
}

/// The config offset of capability `id`, walking the standard list.
fn find_cap(dev: &File, id: u8) -> Option<u64> {
    let mut c = [0u8; 256];
    dev.read_exact_at(&mut c, vfio::CONFIG_BASE as u64).ok()?;
    if c[6] & 0x10 == 0 {
        return None;
    }
    let mut pos = c[0x34] as usize & !3;
    for _ in 0..48 {
        if pos < 0x40 || pos + 2 > 256 {
            return None;
        }
        if c[pos] == id {
            return Some(pos as u64);
        }
        pos = c[pos + 1] as usize & !3;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Threads and their counters

const NOPS: usize = OPS.len();

#[derive(Default)]
struct Stats {
    ioctls: AtomicU64,
    /// Everything else: reads, writes, mmaps, eventfd operations.
    other: AtomicU64,
    /// Device fds the reopening thread got.
    opens: AtomicU64,
    /// The operation running now (for a hang report).
    current: AtomicUsize,
    calls: [AtomicU64; NOPS],
    oks: [AtomicU64; NOPS],
    /// Time spent in each operation.
    nanos: [AtomicU64; NOPS],
}

/// One thread's state: the fd it works on, its PRNG stream and argument memory.
struct Worker<'a> {
    t: &'a Target,
    dev: RawFd,
    rng: Rng,
    arena: Arena,
    buf: Vec<u8>,
    slot: usize,
    st: &'a Stats,
}

impl Worker<'_> {
    fn step(&mut self) {
        let t0 = Instant::now();
        let total: u32 = OPS.iter().map(|o| o.weight).sum();
        let mut x = self.rng.below(total as u64) as u32;
        let i = OPS
            .iter()
            .position(|o| {
                if x < o.weight {
                    true
                } else {
                    x -= o.weight;
                    false
                }
            })
            .unwrap_or(0);
        self.st.current.store(i, Relaxed);
        let ok = (OPS[i].run)(self);
        self.st.nanos[i].fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        self.st.calls[i].fetch_add(1, Relaxed);
        if ok {
            self.st.oks[i].fetch_add(1, Relaxed);
        }
    }

    fn ioctl(&mut self, req: u64) -> Result<i32, i32> {
        self.st.ioctls.fetch_add(1, Relaxed);
        self.arena.ioctl(self.dev, req)
    }

    fn any_fd(&mut self) -> i32 {
        self.t
            .pool
            .any_fd(&mut self.rng, self.dev, self.t.junk.as_raw_fd())
    }

    /// `pread` of `len` bytes at device fd offset `off`: whether all of them came.
    fn pread(&mut self, off: u64, len: usize) -> bool {
        self.st.other.fetch_add(1, Relaxed);
        let len = len.min(self.buf.len());
        // SAFETY: reads at most `len` bytes into our own buffer of at least that size.
        let r = unsafe { libc::pread64(self.dev, self.buf.as_mut_ptr().cast(), len, off as i64) };
        r == len as isize
    }

    /// `pwrite` of the first `len` bytes of the buffer.
    fn pwrite(&mut self, off: u64, len: usize) -> bool {
        self.st.other.fetch_add(1, Relaxed);
        let len = len.min(self.buf.len());
        // SAFETY: writes `len` bytes from our own buffer of at least that size.
        let r = unsafe { libc::pwrite64(self.dev, self.buf.as_ptr().cast(), len, off as i64) };
        r == len as isize
    }

    fn rng_fill(&mut self, len: usize) {
        for b in &mut self.buf[..len] {
            *b = self.rng.next() as u8;
        }
    }

    /// A config span: mostly inside the first 256 bytes, else anywhere, at the end or past it.
    fn cfg_span(&mut self) -> (u64, usize) {
        let size = self.t.cfg_size.max(4);
        let r = &mut self.rng;
        let len = match r.below(10) {
            0..=2 => 4,
            3 | 4 => 2,
            5 | 6 => 1,
            7 => r.pick(&[3, 8, 16]),
            8 => r.below(64) as usize,
            _ => r.pick(&[0, size as usize, size as usize + 1, 4096, RW_MAX]),
        };
        let off = match r.below(10) {
            0..=5 => r.below(size.min(256)),
            6 | 7 => r.below(size),
            8 => size - 1 - r.below(8),
            _ => {
                let any = r.below(1 << 40);
                r.pick(&[size, 1 << 20, (1 << 40) - 1, any])
            }
        };
        (off, len)
    }
}

fn region_offset(index: u32) -> u64 {
    (index as u64) << vfio::REGION_SHIFT
}

// ---------------------------------------------------------------------------------------------
// The operations: one generator each

struct Op {
    name: &'static str,
    weight: u32,
    /// Issues the operation; true if the kernel accepted it.
    run: fn(&mut Worker) -> bool,
}

#[rustfmt::skip]
const OPS: &[Op] = &[
    Op { name: "get-info", weight: 5, run: op_get_info },
    Op { name: "region-info", weight: 7, run: op_region_info },
    Op { name: "irq-info", weight: 5, run: op_irq_info },
    Op { name: "set-irqs", weight: 18, run: op_set_irqs },
    Op { name: "reset", weight: 2, run: op_reset },
    Op { name: "ioeventfd", weight: 12, run: op_ioeventfd },
    Op { name: "hot-reset-info", weight: 3, run: op_hot_reset_info },
    Op { name: "hot-reset", weight: 3, run: op_hot_reset },
    Op { name: "feature", weight: 6, run: op_feature },
    Op { name: "cfg-read", weight: 5, run: op_cfg_read },
    Op { name: "cfg-write", weight: 5, run: op_cfg_write },
    Op { name: "command", weight: 2, run: op_command },
    Op { name: "bar-read", weight: 4, run: op_bar_read },
    Op { name: "bar-write", weight: 4, run: op_bar_write },
    Op { name: "mmap", weight: 1, run: op_mmap },
    Op { name: "ev-new", weight: 2, run: op_ev_new },
    Op { name: "ev-close", weight: 2, run: op_ev_close },
    Op { name: "ev-signal", weight: 4, run: op_ev_signal },
];

fn op_get_info(w: &mut Worker) -> bool {
    let a = w.rng.argsz(24, 16);
    w.arena.fill(64, 0xa5);
    w.arena.put32(0, a);
    w.ioctl(GET_INFO).is_ok()
}

fn op_region_info(w: &mut Worker) -> bool {
    let exact = if w.rng.chance(50) { 32 } else { 256 };
    let a = w.rng.argsz(exact, 32);
    let i = w.rng.index(w.t.num_regions + 1);
    w.arena.fill(256, 0xa5);
    w.arena.put32(0, a);
    w.arena.put32(8, i);
    w.ioctl(GET_REGION_INFO).is_ok()
}

fn op_irq_info(w: &mut Worker) -> bool {
    let a = w.rng.argsz(16, 16);
    let i = w.rng.index(5);
    w.arena.fill(64, 0xa5);
    w.arena.put32(0, a);
    w.arena.put32(8, i);
    w.ioctl(GET_IRQ_INFO).is_ok()
}

/// `SET_IRQS`: half of them well-formed ([`sane_set_irqs`]), the others with any index, data
/// type, action, range and `argsz`; eventfd arrays from the pool.
fn op_set_irqs(w: &mut Worker) -> bool {
    if w.rng.chance(50) {
        if let Some(ok) = sane_set_irqs(w) {
            return ok;
        }
    }
    let index = w.rng.index(5);
    let n = w.t.irqs.get(index as usize).copied().unwrap_or(0);
    let data = if w.rng.chance(95) {
        w.rng.pick(&[IRQ_NONE, IRQ_BOOL, IRQ_EVENTFD, IRQ_EVENTFD])
    } else {
        w.rng.u32() & 7
    };
    let action = if w.rng.chance(95) {
        w.rng
            .pick(&[IRQ_MASK, IRQ_UNMASK, IRQ_TRIGGER, IRQ_TRIGGER])
    } else {
        w.rng.u32() & 0x38
    };
    let mut flags = data | action;
    if w.rng.chance(3) {
        flags |= 1 << (6 + w.rng.below(26));
    }
    let (start, count) = w.rng.range(n);
    let elem = match data {
        IRQ_BOOL => 1,
        IRQ_EVENTFD => 4,
        _ => 0,
    };
    let filled = (count as usize).min(256);
    for k in 0..filled {
        match elem {
            1 => {
                let b = if w.rng.chance(90) {
                    w.rng.below(2) as u8
                } else {
                    w.rng.next() as u8
                };
                w.arena.bytes()[20 + k] = b;
            }
            4 => {
                let fd = w.any_fd();
                w.arena.put32(20 + 4 * k, fd as u32);
            }
            _ => {}
        }
    }
    let exact = 20 + (filled * elem) as u32;
    let a = w.rng.argsz(exact, 20);
    for (o, v) in [(0, a), (4, flags), (8, index), (12, start), (16, count)] {
        w.arena.put32(o, v);
    }
    w.ioctl(SET_IRQS).is_ok()
}

/// A well-formed `SET_IRQS` on an interrupt type the device has, so that requests get past
/// validation: eventfds attached, replaced (by numbers another thread may be closing) and
/// detached (-1), loopback, mask and unmask, INTx unmask eventfds, disable (count 0).
fn sane_set_irqs(w: &mut Worker) -> Option<bool> {
    let have: Vec<u32> = (0..5).filter(|&i| w.t.irqs[i as usize] > 0).collect();
    if have.is_empty() {
        return None;
    }
    let index = w.rng.pick(&have);
    let n = w.t.irqs[index as usize];
    let (action, data) = w.rng.pick(&[
        (IRQ_TRIGGER, IRQ_EVENTFD),
        (IRQ_TRIGGER, IRQ_EVENTFD),
        (IRQ_TRIGGER, IRQ_EVENTFD),
        (IRQ_TRIGGER, IRQ_NONE),
        (IRQ_TRIGGER, IRQ_BOOL),
        (IRQ_MASK, IRQ_NONE),
        (IRQ_UNMASK, IRQ_NONE),
        (IRQ_MASK, IRQ_BOOL),
        (IRQ_UNMASK, IRQ_BOOL),
        (IRQ_UNMASK, IRQ_EVENTFD),
        (IRQ_UNMASK, IRQ_EVENTFD),
    ]);
    let start = w.rng.below(n.min(4) as u64) as u32;
    let count = w.rng.below((n - start).min(8) as u64 + 1) as u32;
    let elem = match data {
        IRQ_BOOL => 1,
        IRQ_EVENTFD => 4,
        _ => 0,
    };
    for k in 0..count as usize {
        match elem {
            1 => w.arena.bytes()[20 + k] = w.rng.below(2) as u8,
            4 => {
                let fd = if w.rng.chance(80) {
                    w.t.pool.live(&mut w.rng).map_or(-1, |e| e.as_raw_fd())
                } else {
                    -1
                };
                w.arena.put32(20 + 4 * k, fd as u32);
            }
            _ => {}
        }
    }
    let argsz = 20 + count * elem;
    for (o, v) in [
        (0, argsz),
        (4, action | data),
        (8, index),
        (12, start),
        (16, count),
    ] {
        w.arena.put32(o, v);
    }
    Some(w.ioctl(SET_IRQS).is_ok())
}

fn op_reset(w: &mut Worker) -> bool {
    let t = w.t;
    match t.expensive(|| w.ioctl(RESET)) {
        Some(r) => r.is_ok(),
        // Gated: something cheap instead, not counted as an accepted reset.
        None => {
            op_get_info(w);
            false
        }
    }
}

/// `IOEVENTFD`: allow-listed registrations, removals anywhere, and invalid requests.
fn op_ioeventfd(w: &mut Worker) -> bool {
    let kind = w.t.kind;
    let bars = w.t.bars();
    let mut hold = None;
    let (argsz, flags, offset, data, fd) = match w.rng.below(10) {
        // An allow-listed registration with a live eventfd, or its removal.
        0..=3 if kind != Kind::ReadOnly => {
            let (bar, off, size, data) = safe_write(kind, &mut w.rng, true).unwrap_or_default();
            if w.rng.chance(60) {
                hold = w.t.pool.live(&mut w.rng);
            }
            let fd = hold.as_ref().map_or(-1, |e| e.as_raw_fd());
            (32, size as u32, region_offset(bar) + off, data, fd)
        }
        // Allow-listed place and data, anything else mutated.
        4 if kind != Kind::ReadOnly => {
            let (bar, off, size, data) = safe_write(kind, &mut w.rng, true).unwrap_or_default();
            let flags = if w.rng.chance(50) {
                size as u32 | 1 << w.rng.below(32)
            } else {
                w.rng.u32() & 0xf
            };
            let fd = w.any_fd();
            (
                w.rng.argsz(32, 32),
                flags,
                region_offset(bar) + off,
                data,
                fd,
            )
        }
        // A removal somewhere inside a BAR: never writes.
        5 | 6 if !bars.is_empty() => {
            let bar = w.rng.pick(&bars);
            let size = w.t.regions[bar as usize].size;
            let off = region_offset(bar) + w.rng.below(size);
            (32, w.rng.pick(&[1, 2, 4, 8]), off, w.rng.next(), -1)
        }
        // Refused by range whatever the rest says.
        _ => {
            let flags = match w.rng.below(4) {
                0 => w.rng.u32(),
                _ => w.rng.pick(&[1, 2, 4, 8, 3, 0, 16]),
            };
            let off = bad_ioeventfd_offset(w, flags);
            let fd = w.any_fd();
            (w.rng.argsz(32, 32), flags, off, w.rng.next(), fd)
        }
    };
    w.arena.fill(32, 0);
    w.arena.put32(0, argsz);
    w.arena.put32(4, flags);
    w.arena.put64(8, offset);
    w.arena.put64(16, data);
    w.arena.put32(24, fd as u32);
    if w.rng.chance(3) {
        let r = w.rng.u32();
        w.arena.put32(28, r);
    }
    let ok = w.ioctl(IOEVENTFD).is_ok();
    drop(hold);
    ok
}

/// An ioeventfd offset no driver may accept: past a BAR's end (or straddling it, for a size
/// given by valid `flags`), in the ROM, config, VGA or an absent BAR, or a huge region index.
fn bad_ioeventfd_offset(w: &mut Worker, flags: u32) -> u64 {
    let bars: Vec<u32> = w.t.bars().into_iter().filter(|&b| b < NUM_BARS).collect();
    let size_bits = flags & 0xf;
    match w.rng.below(5) {
        0 | 1 if !bars.is_empty() => {
            let b = w.rng.pick(&bars);
            let end = w.t.regions[b as usize].size;
            let straddle = size_bits.count_ones() == 1 && size_bits > 1 && w.rng.chance(50);
            let off = if straddle {
                end - w.rng.below(size_bits as u64 - 1) - 1
            } else {
                end + w.rng.below(1 << 20)
            };
            region_offset(b) + off
        }
        2 => {
            let absent: Vec<u32> = (0..NUM_BARS)
                .filter(|&b| w.t.regions[b as usize].size == 0)
                .collect();
            let idx = if absent.is_empty() {
                w.rng.pick(&[6, 7, 8])
            } else {
                w.rng.pick(&absent)
            };
            region_offset(idx) + w.rng.below(0x1000)
        }
        3 => region_offset(w.rng.pick(&[6, 7, 8, 9, 255])) + w.rng.below(0x1000),
        // Huge, but below 2^63: see "Exclusions" in the module documentation.
        _ => region_offset(9 + w.rng.below((1 << 23) - 9) as u32) + w.rng.below(1 << 40),
    }
}

fn op_hot_reset_info(w: &mut Worker) -> bool {
    let a = w.rng.argsz(12 + 8 * 4, 12);
    w.arena.fill(64, 0xa5);
    w.arena.put32(0, a);
    w.ioctl(HOT_RESET_INFO).is_ok()
}

/// `PCI_HOT_RESET` with group fd arrays made of the proof, junk and invalid fds. A request
/// that could reset goes through the rate gate; without it, it becomes one with bad flags.
fn op_hot_reset(w: &mut Worker) -> bool {
    let proof: Vec<RawFd> = w.t.groups.iter().map(|g| g.group.as_raw_fd()).collect();
    let count = match w.rng.below(10) {
        0..=5 => proof.len() as u32,
        6 => 0,
        7 => proof.len() as u32 + 1,
        8 => w.rng.below(8) as u32,
        _ => {
            let any = w.rng.u32();
            w.rng.pick(&[u32::MAX, 1 << 20, any])
        }
    };
    let filled = (count as usize).min(64);
    let mut real = false;
    for k in 0..filled {
        let fd = match w.rng.below(10) {
            0..=6 => {
                real = true;
                proof[k % proof.len()]
            }
            7 => w.t.junk.as_raw_fd(),
            8 => w.any_fd(),
            _ => w.dev,
        };
        w.arena.put32(12 + 4 * k, fd as u32);
    }
    let flags = if w.rng.chance(90) { 0 } else { w.rng.u32() | 1 };
    let a = w.rng.argsz(12 + 4 * filled as u32, 12);
    w.arena.put32(0, a);
    w.arena.put32(4, flags);
    w.arena.put32(8, count);
    if !real || flags != 0 {
        return w.ioctl(HOT_RESET).is_ok();
    }
    let t = w.t;
    match t.expensive(|| w.ioctl(HOT_RESET)) {
        Some(r) => r.is_ok(),
        None => {
            w.arena.put32(4, 1);
            w.ioctl(HOT_RESET).is_ok()
        }
    }
}

/// `DEVICE_FEATURE`: the 6.12 features and random ones, any operation bits and payload.
fn op_feature(w: &mut Worker) -> bool {
    let feature = if w.rng.chance(85) {
        w.rng.below(11) as u32
    } else {
        w.rng.u32() & 0xffff
    };
    let mut flags = feature
        | w.rng.pick(&[
            FEAT_GET,
            FEAT_SET,
            FEAT_PROBE,
            FEAT_PROBE | FEAT_GET,
            FEAT_PROBE | FEAT_SET,
            FEAT_GET | FEAT_SET,
            0,
        ]);
    if w.rng.chance(5) {
        flags |= 1 << (19 + w.rng.below(13));
    }
    let any = w.rng.below(64) as usize;
    let len = w.rng.pick(&[0usize, 4, 8, 16, 24, any]);
    w.arena.random(8, 64, &mut w.rng);
    if feature == FEAT_LOW_POWER_WAKEUP {
        let fd = w.any_fd();
        w.arena.put32(8, fd as u32);
    }
    if feature == FEAT_BUS_MASTER {
        // op = VFIO_DEVICE_FEATURE_CLEAR_MASTER: never turn bus mastering on.
        w.arena.put32(8, 0);
    }
    let a = w.rng.argsz(8 + len as u32, 8);
    w.arena.put32(0, a);
    w.arena.put32(4, flags);
    w.ioctl(FEATURE).is_ok()
}

fn op_cfg_read(w: &mut Worker) -> bool {
    let (off, len) = w.cfg_span();
    w.pread(region_offset(CONFIG_INDEX) + off, len)
}

/// A random config write, without Bus Master and (unless the rate gate allows) without FLR.
fn op_cfg_write(w: &mut Worker) -> bool {
    let (off, len) = w.cfg_span();
    let len = len.min(RW_MAX);
    let fill = w.rng.below(4);
    for b in &mut w.buf[..len] {
        *b = match fill {
            0 => 0,
            1 => 0xff,
            _ => w.rng.next() as u8,
        };
    }
    no_bus_master(off, &mut w.buf[..len]);
    let at = region_offset(CONFIG_INDEX) + off;
    let flr = w.t.flr_byte.filter(|&f| off <= f && f < off + len as u64);
    match flr {
        Some(f) if w.buf[(f - off) as usize] & 0x80 != 0 => {
            let t = w.t;
            match t.expensive(|| w.pwrite(at, len)) {
                Some(ok) => ok,
                None => {
                    w.buf[(f - off) as usize] &= !0x80;
                    w.pwrite(at, len)
                }
            }
        }
        _ => w.pwrite(at, len),
    }
}

/// Reads `COMMAND` and writes it back with memory (mostly) and I/O decode and INTx disable
/// toggled at random, never with Bus Master.
fn op_command(w: &mut Worker) -> bool {
    let at = region_offset(CONFIG_INDEX) + 4;
    if !w.pread(at, 2) {
        return false;
    }
    let mut v = u16::from_le_bytes([w.buf[0], w.buf[1]]);
    if w.rng.chance(70) {
        v ^= 0x2;
    }
    if w.rng.chance(20) {
        v ^= 0x1;
    }
    if w.rng.chance(10) {
        v ^= 0x400;
    }
    v &= !0x4;
    w.buf[..2].copy_from_slice(&v.to_le_bytes());
    w.pwrite(at, 2)
}

/// A BAR region and offset for a read: mostly inside an existing BAR or the ROM.
fn op_bar_read(w: &mut Worker) -> bool {
    let bars = w.t.bars();
    let (index, off) = if w.rng.chance(85) && !bars.is_empty() {
        let b = w.rng.pick(&bars);
        let size = w.t.regions[b as usize].size;
        let off = match w.rng.below(4) {
            0 | 1 => w.rng.below(size) & !3,
            2 => w.rng.below(size),
            _ => size + w.rng.below(4096),
        };
        (b, off)
    } else {
        let bar = w.rng.below(NUM_BARS as u64) as u32;
        let i = w.rng.pick(&[8, 9, 255, w.t.num_regions, bar]);
        (i, w.rng.below(1 << 20))
    };
    let len = match w.rng.below(8) {
        0..=4 => w.rng.pick(&[1, 2, 4, 8]),
        5 => 0,
        6 => w.rng.below(64) as usize,
        _ => w.rng.pick(&[4096, RW_MAX]),
    };
    w.pread(region_offset(index) + off, len)
}

/// A `pwrite` to an allow-listed register, or one the kernel must refuse as a whole.
fn op_bar_write(w: &mut Worker) -> bool {
    let k = w.t.kind;
    if let (true, Some((bar, off, size, data))) =
        (w.rng.chance(70), safe_write(k, &mut w.rng, false))
    {
        w.buf[..size].copy_from_slice(&data.to_le_bytes()[..size]);
        return w.pwrite(region_offset(bar) + off, size);
    }
    let bars: Vec<u32> = w.t.bars().into_iter().filter(|&b| b < NUM_BARS).collect();
    let at = match w.rng.below(4) {
        0 if !bars.is_empty() => {
            let b = w.rng.pick(&bars);
            region_offset(b) + w.t.regions[b as usize].size + w.rng.below(1 << 16)
        }
        1 => region_offset(6) + w.rng.below(1 << 16),
        2 => {
            let absent: Vec<u32> = (0..NUM_BARS)
                .filter(|&b| w.t.regions[b as usize].size == 0)
                .collect();
            let i = if absent.is_empty() {
                8
            } else {
                w.rng.pick(&absent)
            };
            region_offset(i) + w.rng.below(1 << 16)
        }
        _ => region_offset(w.rng.pick(&[8, w.t.num_regions.max(9), 255])) + w.rng.below(1 << 16),
    };
    let len = w.rng.pick(&[1usize, 2, 4, 8, 3, 64, 4096]);
    w.rng_fill(len);
    w.pwrite(at, len)
}

/// `mmap` of a BAR (or a request the kernel must refuse), a few touches, `munmap`.
fn op_mmap(w: &mut Worker) -> bool {
    let mappable: Vec<u32> = (0..NUM_BARS)
        .filter(|&i| {
            let r = w.t.regions[i as usize];
            r.size > 0 && r.flags & REGION_FLAG_MMAP != 0
        })
        .collect();
    let sane = !mappable.is_empty() && w.rng.chance(85);
    let (index, off, len, prot, flags) = if sane {
        let i = w.rng.pick(&mappable);
        let pages = w.t.regions[i as usize].size.div_ceil(PAGE as u64);
        let first = w.rng.below(pages);
        // A few pages: each mapped page costs a fault and a zap, and edu's BAR has 256.
        let n = 1 + w.rng.below((pages - first).min(MMAP_PAGES));
        let prot = if w.rng.chance(80) {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        (
            i,
            first * PAGE as u64,
            n as usize * PAGE,
            prot,
            libc::MAP_SHARED,
        )
    } else {
        let i = w.rng.pick(&[0, 1, 5, 6, 7, 8, 9]);
        let size = w.t.regions.get(i as usize).map_or(0, |r| r.size);
        let odd = w.rng.below(PAGE as u64) | 1;
        let off = w.rng.pick(&[size, odd, 1 << 39]);
        let len = w.rng.pick(&[0, PAGE, 2 * size as usize + PAGE]);
        let flags = w.rng.pick(&[libc::MAP_SHARED, libc::MAP_PRIVATE]);
        (i, off, len, libc::PROT_READ | libc::PROT_WRITE, flags)
    };
    w.st.other.fetch_add(1, Relaxed);
    // SAFETY: a new mapping at an address the kernel chooses; nothing is aliased.
    let p = unsafe {
        libc::mmap64(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            w.dev,
            (region_offset(index) + off) as i64,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    let base = p as usize;
    if sane {
        MAP_START[w.slot].store(base, Relaxed);
        MAP_END[w.slot].store(base + len, Relaxed);
        for _ in 0..1 + w.rng.below(3) {
            let o = (w.rng.below(len as u64 / 4) * 4) as usize;
            // SAFETY: an aligned dword inside our live mapping; a SIGBUS is handled by
            // `on_sigbus` (the slot covers it), which maps a page of zeros there.
            let _ = unsafe { std::ptr::read_volatile((base + o) as *const u32) };
        }
        if prot & libc::PROT_WRITE != 0 {
            if let Some((bar, woff, size, data)) = safe_write(w.t.kind, &mut w.rng, false) {
                if bar == index && woff >= off && woff + size as u64 <= off + len as u64 {
                    let a = base + (woff - off) as usize;
                    // SAFETY: an allow-listed register inside our writable mapping, naturally
                    // aligned for its size (or handled by `on_sigbus`, as above).
                    unsafe {
                        match size {
                            1 => std::ptr::write_volatile(a as *mut u8, data as u8),
                            2 if a.is_multiple_of(2) => {
                                std::ptr::write_volatile(a as *mut u16, data as u16)
                            }
                            4 if a.is_multiple_of(4) => {
                                std::ptr::write_volatile(a as *mut u32, data as u32)
                            }
                            8 if a.is_multiple_of(8) => {
                                std::ptr::write_volatile(a as *mut u64, data)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    // SAFETY: unmaps exactly the mapping made above (and any page `on_sigbus` put in it).
    unsafe { libc::munmap(p, len) };
    MAP_START[w.slot].store(0, Relaxed);
    MAP_END[w.slot].store(0, Relaxed);
    true
}

fn op_ev_new(w: &mut Worker) -> bool {
    w.st.other.fetch_add(1, Relaxed);
    w.t.pool.create(&mut w.rng)
}

fn op_ev_close(w: &mut Worker) -> bool {
    w.st.other.fetch_add(1, Relaxed);
    w.t.pool.close(&mut w.rng)
}

fn op_ev_signal(w: &mut Worker) -> bool {
    w.st.other.fetch_add(1, Relaxed);
    w.t.pool.live(&mut w.rng).is_some_and(|e| signal(&e))
}

// ---------------------------------------------------------------------------------------------
// A session: threads on one device with one driver

impl<'a> Worker<'a> {
    /// Thread `slot`'s worker on `dev`, with its own PRNG stream of `seed`.
    fn new(t: &'a Target, st: &'a Stats, dev: RawFd, seed: u64, slot: usize) -> Option<Self> {
        Some(Worker {
            t,
            dev,
            rng: Rng::new(seed, slot as u64),
            arena: Arena::new().ok()?,
            buf: vec![0; RW_MAX],
            slot,
            st,
        })
    }
}

fn worker_thread(t: Arc<Target>, st: &Stats, seed: u64, slot: usize) {
    let Some(mut w) = Worker::new(&t, st, t.dev.as_raw_fd(), seed, slot) else {
        return;
    };
    while !t.stop.load(Relaxed) {
        w.step();
    }
}

/// Opens a second fd of the device (or the pair's other function), runs a few operations on
/// it and closes it, until told to stop.
fn reopen_thread(t: Arc<Target>, st: &Stats, seed: u64, slot: usize) {
    let Some(mut w) = Worker::new(&t, st, -1, seed, slot) else {
        return;
    };
    while !t.stop.load(Relaxed) {
        let (g, name) = &t.reopen[w.rng.below(t.reopen.len() as u64) as usize];
        st.ioctls.fetch_add(1, Relaxed);
        let Ok(f) = t.groups[*g].device(name) else {
            continue;
        };
        st.opens.fetch_add(1, Relaxed);
        w.dev = f.as_raw_fd();
        for _ in 0..w.rng.below(8) {
            w.step();
        }
        w.dev = -1;
        drop(f);
    }
}

/// How long a session runs.
#[derive(Clone, Copy)]
struct Plan {
    /// The deadline: the threads are stopped then at the latest.
    max: Duration,
    /// Stop as soon as this many ioctls were issued and `min` has passed (the test kernel is
    /// ten times faster than the debug kernel; `None` runs to the deadline).
    quota: Option<(u64, Duration)>,
}

/// A session's counters, in memory shared between the suite and the session's child process
/// (`MAP_SHARED`), so the suite can read them even when the child hangs.
#[derive(Default)]
struct Shared {
    stats: [Stats; SLOTS],
    finished: [AtomicBool; SLOTS],
    sigbus: AtomicU64,
    elapsed_ms: AtomicU64,
}

impl Shared {
    fn sum(&self, f: impl Fn(&Stats) -> u64) -> u64 {
        self.stats.iter().map(f).sum()
    }

    /// The threads that have not finished, with the operation each is in.
    fn unfinished(&self) -> Vec<String> {
        (0..SLOTS)
            .filter(|&k| !self.finished[k].load(Relaxed))
            .map(|k| {
                let who = if k < WORKERS {
                    format!("worker {k}")
                } else {
                    "reopen".into()
                };
                format!("{who} in {}", OPS[self.stats[k].current.load(Relaxed)].name)
            })
            .collect()
    }
}

/// A [`Shared`] in its own shared anonymous mapping, unmapped on drop (a forked child keeps
/// its own view of the same pages).
struct SharedMap(*mut Shared);

impl SharedMap {
    fn new() -> Result<Self, String> {
        let len = std::mem::size_of::<Shared>();
        // SAFETY: a new shared anonymous mapping, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap shared: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: page-aligned, large enough, and nothing else refers to it yet.
        unsafe { std::ptr::write(p.cast::<Shared>(), Shared::default()) };
        Ok(SharedMap(p.cast()))
    }

    fn get(&self) -> &Shared {
        // SAFETY: initialised in `new`, mapped until drop; only atomics inside.
        unsafe { &*self.0 }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; `Shared` has nothing to drop.
        unsafe { libc::munmap(self.0.cast(), std::mem::size_of::<Shared>()) };
    }
}

/// Runs the threads on `t` until the plan says stop; returns the threads that did not finish
/// within [`GRACE`] after that, and those that panicked.
fn run_threads(
    t: &Arc<Target>,
    seed: u64,
    plan: Plan,
    sh: &'static Shared,
) -> (Vec<String>, Vec<String>) {
    let start = Instant::now();
    let mut handles = Vec::new();
    for slot in 0..SLOTS {
        let t = Arc::clone(t);
        let body: fn(Arc<Target>, &Stats, u64, usize) = if slot < WORKERS {
            worker_thread
        } else {
            reopen_thread
        };
        let h = std::thread::Builder::new()
            .name(format!("fuzz-{slot}"))
            .spawn(move || {
                body(t, &sh.stats[slot], seed, slot);
                sh.finished[slot].store(true, Relaxed);
            });
        handles.push(h.ok());
    }
    let deadline = start + plan.max;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let n = sh.sum(|s| s.ioctls.load(Relaxed));
        let enough = plan
            .quota
            .is_some_and(|(q, min)| n >= q && now >= start + min);
        if now >= deadline || enough || sh.unfinished().is_empty() {
            break;
        }
    }
    t.stop.store(true, Relaxed);
    let give_up = Instant::now() + GRACE;
    while !sh.unfinished().is_empty() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    sh.elapsed_ms
        .store(start.elapsed().as_millis() as u64, Relaxed);
    sh.sigbus.store(SIGBUS_HITS.load(Relaxed), Relaxed);
    let hung = sh.unfinished();
    let mut panicked = vec![];
    for (slot, h) in handles.into_iter().enumerate() {
        match h {
            None => panicked.push(format!("thread {slot} could not start")),
            // Left running (hung): it holds the device fd, so the device stays bound.
            Some(h) if !h.is_finished() => {}
            Some(h) => {
                if h.join().is_err() {
                    panicked.push(format!("thread {slot}"));
                }
            }
        }
    }
    (hung, panicked)
}

/// What a session's child needs: the device, its groups and sysfs IDs.
struct Session<'a> {
    kind: Kind,
    bdfs: &'a [Bdf],
    nodes: &'a [String],
    iommu_type: u32,
    ids: (u16, u16),
}

/// The child process of a session: opens the device, fuzzes it and checks that it still
/// answers. `Err((true, ..))` is a hang.
fn child_session(
    s: &Session,
    seed: u64,
    plan: Plan,
    sh: &'static Shared,
) -> Result<(), (bool, String)> {
    let e = |x: String| (false, x);
    let mut groups = vec![vfio::Group::open(&s.nodes[0], s.iommu_type).map_err(e)?];
    let mut reopen = vec![(0, s.bdfs[0].as_str().to_string())];
    if let (Some(b), Some(nb)) = (s.bdfs.get(1), s.nodes.get(1)) {
        if *nb != s.nodes[0] {
            groups.push(vfio::Group::open(nb, s.iommu_type).map_err(e)?);
        }
        reopen.push((groups.len() - 1, b.as_str().to_string()));
    }
    let dev = groups[0]
        .device(s.bdfs[0].as_str())
        .map_err(|x| e(format!("GET_DEVICE_FD {}: {x}", s.bdfs[0])))?;
    let t = Arc::new(Target::new(s.kind, dev, groups, reopen).map_err(e)?);
    let (hung, panicked) = run_threads(&t, seed, plan, sh);
    if !hung.is_empty() {
        return Err((
            true,
            format!(
                "hung {}s after the stop: {}",
                GRACE.as_secs(),
                hung.join(", ")
            ),
        ));
    }
    if !panicked.is_empty() {
        return Err(e(format!("threads panicked: {}", panicked.join(", "))));
    }
    let info = vfio::device_info(&t.dev, 24).map_err(|x| e(format!("GET_INFO afterwards: {x}")))?;
    if info.flags & vfio::VFIO_DEVICE_FLAGS_PCI == 0 {
        return Err(e(format!("GET_INFO afterwards: flags {:#x}", info.flags)));
    }
    let mut id = [0u8; 4];
    t.dev
        .read_exact_at(&mut id, vfio::CONFIG_BASE as u64)
        .map_err(|x| e(format!("config dword 0 afterwards: {x}")))?;
    let (v, d) = s.ids;
    if id != [v as u8, (v >> 8) as u8, d as u8, (d >> 8) as u8] {
        return Err(e(format!(
            "config dword 0 afterwards {id:02x?}, sysfs {v:04x}:{d:04x}"
        )));
    }
    if t.kind == Kind::Edu {
        // Leave no interrupt raised by the fuzzing pending in edu (its INTx status would show
        // in the config status register after close).
        let _ = crate::irq::command_set(&t.dev, 0x2);
        let _ = t.dev.write_all_at(&[0xff; 4], region_offset(0) + 0x64);
    }
    // Closes the device, its groups and eventfds (the threads are gone).
    drop(t);
    Ok(())
}

/// How a session's child ended.
enum ChildResult {
    Ok,
    Failed(String),
    Hung(String),
}

/// Forks; the child runs [`child_session`] and writes one line (`ok`, `err ...` or
/// `hung ...`) into a pipe, and exits once its fds are closed. The suite (single-threaded
/// at the fork: the fuzzing threads exist only in the child) waits for the line at most the
/// session's plan plus [`GRACE`] and a margin, then for the child's exit. A child that does
/// not report or exit in time counts as hung and is left behind: its threads may hold
/// process-wide locks (the reopening thread in `mmap` holds the address space's lock), which
/// would also stop the suite if the threads ran in its own process.
fn fork_session(s: &Session, seed: u64, plan: Plan, sh: &SharedMap) -> ChildResult {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return ChildResult::Failed(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the suite is single-threaded here (see above), so the child may run Rust code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child never unmaps the shared block, so it lives as long as the child.
        let shared: &'static Shared = unsafe { &*sh.0 };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child_session(s, seed, plan, shared)
        }));
        let line = match r {
            Ok(Ok(())) => "ok\n".to_string(),
            Ok(Err((true, why))) => format!("hung {}\n", why.replace('\n', " ")),
            Ok(Err((false, why))) => format!("err {}\n", why.replace('\n', " ")),
            Err(_) => "err the session's child panicked\n".to_string(),
        };
        // SAFETY: writes our own buffer to the pipe, then ends the child without running the
        // suite's destructors.
        unsafe {
            libc::write(fds[1], line.as_ptr().cast(), line.len());
            libc::_exit(0);
        }
    }
    // SAFETY: the parent's copy of the write end; the read end is ours to close below.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        // SAFETY: as above.
        unsafe { libc::close(fds[0]) };
        return ChildResult::Failed(format!("fork: {}", std::io::Error::last_os_error()));
    }
    let limit = plan.max + GRACE + Duration::from_secs(30);
    let line = read_line_within(fds[0], limit);
    // SAFETY: our read end.
    unsafe { libc::close(fds[0]) };
    let unfinished = || sh.get().unfinished().join(", ");
    let result = match line.as_deref() {
        None => {
            return ChildResult::Hung(format!(
                "no report within {}s; threads not finished: {}",
                limit.as_secs(),
                unfinished()
            ))
        }
        Some(l) if l.starts_with("hung ") => return ChildResult::Hung(l[5..].to_string()),
        Some("ok") => ChildResult::Ok,
        Some(l) => ChildResult::Failed(l.strip_prefix("err ").unwrap_or(l).to_string()),
    };
    // The child closes the device on its way out; wait for that.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        // SAFETY: our own child; `status` is a live int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid || r < 0 {
            return result;
        }
        if Instant::now() > end {
            return ChildResult::Hung(
                "the child did not exit (closing the device) within 30s".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads one line from `fd` within `limit`; `None` on timeout or EOF without a line.
fn read_line_within(fd: RawFd, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    loop {
        if let Some(i) = got.iter().position(|&b| b == b'\n') {
            return Some(String::from_utf8_lossy(&got[..i]).into_owned());
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) } <= 0 {
            continue;
        }
        let mut b = [0u8; 4096];
        // SAFETY: reads into our own buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            return None;
        }
        got.extend_from_slice(&b[..n as usize]);
    }
}

/// Writes back, through sysfs, every config dword past the standard header that differs from
/// `old` (taken before the bind); returns how many. QEMU's devices leave their device-specific
/// config bytes writable and both drivers pass writes to bytes outside any capability through,
/// but no driver restores them at close, so the fuzzer's random writes would outlive it.
/// Differences in the header are left for `config-restored-*` to see.
fn restore_device_config(sys: &pcibind::Sysfs, b: &Bdf, old: &[u8]) -> usize {
    let path = sys.device_dir(b).join("config");
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    else {
        return 0;
    };
    let Ok(now) = std::fs::read(&path) else {
        return 0;
    };
    let mut n = 0;
    for o in (0x40..old.len().min(now.len())).step_by(4) {
        let end = (o + 4).min(old.len());
        if old[o..end] != now[o..end] && f.write_all_at(&old[o..end], o as u64).is_ok() {
            n += 1;
        }
    }
    n
}

/// The session plan: [`FUZZ_SECONDS`] at most, stopping at [`SESSION_IOCTLS`] after
/// [`MIN_SECONDS`]; with `VFIO_FUZZ_SECONDS=N`, exactly N seconds.
fn plan() -> Plan {
    match std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(n) => Plan {
            max: Duration::from_secs(n),
            quota: None,
        },
        None => Plan {
            max: Duration::from_secs(FUZZ_SECONDS),
            quota: Some((SESSION_IOCTLS, Duration::from_secs(MIN_SECONDS))),
        },
    }
}

/// One driver's totals over its sessions.
#[derive(Default)]
struct Total {
    ioctls: u64,
    time: Duration,
    sessions: u64,
    /// A session hung, and the driver's remaining sessions were skipped.
    hung: bool,
}

impl Suite {
    pub(crate) fn fuzz_checks(&mut self) {
        let seed = self.args.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        });
        let plan = plan();
        self.r.info(format!(
            "fuzz seed={seed:#x} seconds<={} {} threads={WORKERS}+1 (replay: vfiotest.extra=--suite,robust,--seed,{seed:#x})",
            plan.max.as_secs(),
            plan.quota.map_or("(fixed)".into(), |(q, m)| format!("(or {q} ioctls after {}s)", m.as_secs()))
        ));
        let old = install_sigbus();
        let drivers = self.args.drivers.clone();
        let mut totals: Vec<Total> = drivers.iter().map(|_| Total::default()).collect();
        let devices: Vec<String> = match std::env::var(DEVICES_ENV) {
            Ok(v) => v.split(',').map(|x| x.trim().to_string()).collect(),
            Err(_) => DEVICES.iter().map(|x| x.to_string()).collect(),
        };
        // Every device with the first driver (upstream, the control), then with the next: a
        // hang can block what both drivers share (a deadlock in a virqfd shutdown blocks
        // vfio's single `vfio-irqfd-cleanup` workqueue), so after one nothing more is fuzzed,
        // and the control has run in full before our driver can hang.
        let mut hung_at: Option<String> = None;
        for (d, total) in drivers.iter().zip(totals.iter_mut()) {
            for label in &devices {
                if self.label_bdf(label).is_none() {
                    self.r.info(format!("fuzz: no device {label}"));
                    continue;
                }
                if let Some(h) = &hung_at {
                    self.r
                        .info(format!("fuzz: {label} not fuzzed with {d}: {h} hung"));
                    total.hung = true;
                    continue;
                }
                let (ioctls, time, hung) = self.fuzz_session(label, d, seed, plan);
                total.ioctls += ioctls;
                total.time += time;
                total.sessions += 1;
                if hung {
                    total.hung = true;
                    hung_at = Some(format!("the session {label} {d}"));
                }
            }
        }
        restore_sigbus(&old);
        for (d, total) in drivers.iter().zip(&totals) {
            // The minimum is meant for the default plan and devices; a shorter fixed plan or
            // fewer devices (`VFIO_FUZZ_DEVICES`) scale it down.
            let min = MIN_IOCTLS * plan.max.as_secs().min(FUZZ_SECONDS) / FUZZ_SECONDS
                * total.sessions
                / DEVICES.len() as u64;
            if total.hung {
                self.r.info(format!(
                    "fuzz: no fuzz-ioctls-{d}: its sessions were cut short by a hang (the hung device stays bound)"
                ));
                continue;
            }
            let s = total.time.as_secs_f64().max(1e-3);
            self.r.info(format!(
                "fuzz total {d}: ioctls={} in {s:.1}s ({:.0}/s), at least {min} wanted",
                total.ioctls,
                total.ioctls as f64 / s
            ));
            let n = total.ioctls;
            self.r.check(&format!("fuzz-ioctls-{d}"), || {
                if n >= min {
                    Ok(())
                } else {
                    Err(format!("{n} ioctls in {s:.1}s, fewer than {min}"))
                }
            });
        }
    }

    /// Binds, fuzzes and unbinds one device with one driver; returns the ioctl count, the time
    /// the threads ran and whether one hung.
    fn fuzz_session(
        &mut self,
        label: &str,
        d: &str,
        seed: u64,
        plan: Plan,
    ) -> (u64, Duration, bool) {
        let pair = label == "pair-a";
        let name = format!("fuzz-{}-{d}", if pair { "pair" } else { label });
        let mut bdfs: Vec<Bdf> = self.label_bdf(label).into_iter().collect();
        if pair {
            match self.label_bdf("pair-b") {
                Some(b) => bdfs.push(b),
                None => {
                    self.r.check(&name, || Err("no pair-b".into()));
                    return (0, Duration::ZERO, false);
                }
            }
        }
        let sseed = seed ^ label_hash(label);
        let before: Vec<Vec<u8>> = bdfs
            .iter()
            .map(|b| std::fs::read(self.sys.device_dir(b).join("config")).unwrap_or_default())
            .collect();
        let mut lines = vec![];
        let (mut ioctls, mut time, mut hung) = (0, Duration::ZERO, false);
        let res: Result<(), String> = (|| {
            for b in bdfs.iter().rev() {
                self.sys
                    .bind(b, d)
                    .map_err(|e| format!("bind {b} to {d}: {e}"))?;
            }
            let nodes = bdfs
                .iter()
                .map(|b| find_nodes(&self.sys, self.args.mode, b).map(|n| n.group))
                .collect::<Result<Vec<_>, _>>()?;
            let ids = self
                .sys
                .vendor_device(&bdfs[0])
                .map_err(|e| e.to_string())?;
            let session = Session {
                kind: kind(label),
                bdfs: &bdfs,
                nodes: &nodes,
                iommu_type: self.iommu_type(),
                ids,
            };
            let shm = SharedMap::new()?;
            let result = fork_session(&session, sseed, plan, &shm);
            let sh = shm.get();
            ioctls = sh.sum(|s| s.ioctls.load(Relaxed));
            time = Duration::from_millis(sh.elapsed_ms.load(Relaxed));
            let per: Vec<String> = sh
                .stats
                .iter()
                .map(|s| s.ioctls.load(Relaxed).to_string())
                .collect();
            lines.push(format!(
                "fuzz {label} {d}: seed={seed:#x} stream={sseed:#x} {:.1}s ioctls={ioctls} ({:.0}/s; per thread {}) other={} reopens={} sigbus={}",
                time.as_secs_f64(),
                ioctls as f64 / time.as_secs_f64().max(1e-3),
                per.join("/"),
                sh.sum(|s| s.other.load(Relaxed)),
                sh.sum(|s| s.opens.load(Relaxed)),
                sh.sigbus.load(Relaxed),
            ));
            let ops: Vec<String> = OPS
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let c = sh.sum(|s| s.calls[i].load(Relaxed));
                    let k = sh.sum(|s| s.oks[i].load(Relaxed));
                    let ns = sh.sum(|s| s.nanos[i].load(Relaxed));
                    format!("{}={c}/{k}/{}us", o.name, ns / c.max(1) / 1000)
                })
                .collect();
            lines.push(format!(
                "fuzz-ops {label} {d} (calls/accepted/mean time): {}",
                ops.join(" ")
            ));
            match result {
                ChildResult::Ok => {}
                ChildResult::Failed(why) => return Err(why),
                ChildResult::Hung(why) => {
                    hung = true;
                    return Err(why);
                }
            }
            let left = proc_vfio(None);
            if !left.is_empty() {
                return Err(format!("interrupts left after close: {left:?}"));
            }
            Ok(())
        })();
        for l in &lines {
            self.r.info(l);
        }
        self.r.check(&name, || res);
        if !hung {
            for (b, old) in bdfs.iter().zip(&before) {
                let _ = self.sys.unbind(b);
                let n = restore_device_config(&self.sys, b, old);
                if n > 0 {
                    self.r.info(format!(
                        "fuzz {label} {d}: {b}: {n} config dwords past 0x40 put back through sysfs"
                    ));
                }
            }
        }
        (ioctls, time, hung)
    }
}
