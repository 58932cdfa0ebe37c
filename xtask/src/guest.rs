// SPDX-License-Identifier: GPL-2.0
//! The guest half of `cargo xtask test`: the static test binary, the initramfs, and the QEMU run.
//!
//! - The binary (`tests/guest`, crate `vfio-guest-tests`) is built static against glibc with its
//!   own target directory in the cache, so host builds are not invalidated.
//! - The initramfs is an uncompressed newc cpio written here (no `cpio` tool, no dependence on
//!   the ownership of host files): busybox with one symlink per applet, `/init`, the test
//!   binary, the upstream C `vfio-pci` modules with their dependencies and our modules. It is
//!   cached under `<cache>/initramfs/` keyed by the hash of everything that goes into it.
//! - QEMU (TCG, q35) boots it with the devices of [`DEVICES`] (edu, pci-testdev, ivshmem-plain,
//!   nvme, and e1000e and virtio-rng-pci behind their own `pcie-root-port`s), with
//!   `intel-iommu` (mode `iommu`) or without an IOMMU and `vfio.enable_unsafe_noiommu_mode=1`
//!   (mode `noiommu`). The console is streamed with a `[guest]` prefix and the
//!   `PASS`/`FAIL`/`SUMMARY` lines are parsed; `HOST-REQUEST qmp ...` lines are served on
//!   QEMU's QMP socket (`qmp.rs`: device unplug and re-plug for the fault checks). The guest writes 0x10 to isa-debug-exit when it
//!   ran to the end, so QEMU exits with 33; anything else (panic: 0 with `panic=-1
//!   -no-reboot`, the init fallback: 3, a QEMU error, a timeout) is a failure.

use crate::kernel::Profile;
use crate::util::{cache_root, repo_root, run, sha256_hex, show, step};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU exit status meaning "the guest test binary ran to the end": `(0x10 << 1) | 1`.
pub const PASS_STATUS: i32 = 33;
/// Default wall-clock limit for one guest run under TCG (override: `VFIO_RS_GUEST_TIMEOUT`, in
/// seconds; `VFIO_RS_GUEST_APPEND` adds kernel command-line arguments).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
const BUSYBOX: &str = "/bin/busybox";
/// Where modules live inside the guest.
const GUEST_MODDIR: &str = "/lib/modules/vfio-test";
const GENERIC_KO: &str = "vfio_pci_generic.ko";
/// Guest RAM reserved with `memmap=` for the fake PCI devices of `tests/fixtures/fakepci`
/// (20 MiB at 128 MiB: clear of the kernel image, the initramfs at the top of RAM and the
/// firmware's tables): the fake IGD's OpRegion and BARs, then the fake GPUs' memory.
pub const FAKEPCI_MEMMAP: &str = "20M$0x8000000";
/// One emulated device of the test machine: the label the guest checks use in their names, its
/// fixed address in the guest, and the QEMU arguments that create it (its backend or its
/// `pcie-root-port` first). A device behind a root port has `id=<label>`, so the surprise
/// removal checks can have it unplugged and re-plugged through QMP (`qmp.rs`). Bus numbers behind root ports are the ones the firmware assigns in
/// slot order (root port 00:07.0 gets bus 1, 00:08.0 bus 2); the guest's `environment` check
/// fails if a device is not where this table says.
pub struct GuestDevice {
    pub label: &'static str,
    pub bdf: &'static str,
    /// Config space size the guest sees (256 for conventional PCI, 4096 for PCIe).
    pub cfg_size: u32,
    pub qemu: &'static [&'static str],
}

/// The emulated devices, in the order the guest tests visit them. None of them has a driver in
/// the test kernel (`tests/kernel/vfio-test.config` builds no NVMe, e1000e, virtio or ivshmem
/// driver), so they stay driverless until a test binds them.
pub const DEVICES: &[GuestDevice] = &[
    // Conventional PCI, MSI capability.
    GuestDevice {
        label: "edu",
        bdf: "0000:00:03.0",
        cfg_size: 256,
        qemu: &["-device", "edu,addr=03.0"],
    },
    // Conventional PCI, no capabilities.
    GuestDevice {
        label: "pci-testdev",
        bdf: "0000:00:04.0",
        cfg_size: 256,
        qemu: &["-device", "pci-testdev,addr=04.0"],
    },
    // Conventional PCI, two BARs (registers, 1 MiB shared memory), no capabilities.
    GuestDevice {
        label: "ivshmem",
        bdf: "0000:00:05.0",
        cfg_size: 256,
        qemu: &[
            "-object",
            "memory-backend-ram,id=ivshmem-mem,size=1M,share=on",
            "-device",
            "ivshmem-plain,memdev=ivshmem-mem,addr=05.0",
        ],
    },
    // PCIe root-complex integrated endpoint (on pcie.0): PM, PCIe and MSI-X capabilities.
    GuestDevice {
        label: "nvme",
        bdf: "0000:00:06.0",
        cfg_size: 4096,
        qemu: &[
            "-drive",
            "if=none,id=nvme-drive,file=null-co://,format=raw",
            "-device",
            "nvme,drive=nvme-drive,serial=vfiotest,addr=06.0",
        ],
    },
    // PCIe endpoint behind a root port: PM, MSI, PCIe, MSI-X, AER and DSN.
    GuestDevice {
        label: "e1000e",
        bdf: "0000:01:00.0",
        cfg_size: 4096,
        qemu: &[
            "-device",
            "pcie-root-port,id=rp-e1000e,bus=pcie.0,addr=07.0,chassis=1,slot=1",
            // A user-mode backend with `restrict=on` (no host network), so QEMU does not
            // warn about a NIC without a peer.
            "-netdev",
            "user,id=e1000e-net,restrict=on",
            "-device",
            "e1000e,bus=rp-e1000e,addr=00.0,netdev=e1000e-net,romfile=,id=e1000e",
        ],
    },
    // Modern-only virtio behind a root port: vendor-specific capabilities (including the
    // VIRTIO_PCI_CAP_PCI_CFG window), MSI-X, PM, PCIe.
    GuestDevice {
        label: "virtio-rng",
        bdf: "0000:02:00.0",
        cfg_size: 4096,
        qemu: &[
            "-device",
            "pcie-root-port,id=rp-virtio,bus=pcie.0,addr=08.0,chassis=2,slot=2",
            "-device",
            "virtio-rng-pci,bus=rp-virtio,addr=00.0,disable-legacy=on,id=virtio-rng",
        ],
    },
    // Two functions sharing one conventional PCI bus behind a `pci-bridge` (bus 3, after the
    // two root ports): neither has a function reset of its own (a bus reset would hit the
    // other), so they share a bus dev_set; the bridge's secondary bus reset is the hot reset.
    // Under intel-iommu they also share an IOMMU group (the bridge aliases their requester
    // IDs); in noiommu mode each has its own group.
    GuestDevice {
        label: "pair-a",
        bdf: "0000:03:01.0",
        cfg_size: 256,
        qemu: &[
            "-device",
            "pci-bridge,id=pair-bridge,bus=pcie.0,addr=09.0,chassis_nr=3,shpc=off",
            "-device",
            "pci-testdev,bus=pair-bridge,addr=01.0",
        ],
    },
    GuestDevice {
        label: "pair-b",
        bdf: "0000:03:02.0",
        cfg_size: 256,
        qemu: &["-device", "pci-testdev,bus=pair-bridge,addr=02.0"],
    },
    // QEMU's standard VGA (1234:1111, class 0x030000): the boot VGA device (SeaBIOS runs its
    // VGA BIOS, whose VESA mode the kernel's setup code sets from `vga=`, see [`VESA_MODE`]),
    // so the guest has a firmware framebuffer (vesafb) on its BAR 0 and the VGA arbiter's
    // default device; its ROM is the shadow copy at 0xc0000. The VGA checks
    // (`tests/guest/src/vga.rs`) bind it first.
    GuestDevice {
        label: "vga",
        bdf: "0000:00:0b.0",
        cfg_size: 256,
        qemu: &["-device", "VGA,addr=0b.0"],
    },
    // The same device without legacy VGA (class 0x038000, "other display"): not VGA for
    // vfio-pci, so no arbiter, no eviction and no VGA region.
    GuestDevice {
        label: "secondary-vga",
        bdf: "0000:00:0c.0",
        cfg_size: 256,
        qemu: &["-device", "secondary-vga,addr=0c.0"],
    },
    // A second edu: the destination of the live-migration checks (`tests/guest/src/
    // migration.rs`, which migrate `edu` to it). The other checks visit it as any device.
    GuestDevice {
        label: "edu-b",
        bdf: "0000:00:0d.0",
        cfg_size: 256,
        qemu: &["-device", "edu,addr=0d.0"],
    },
];

/// The VESA mode the guest kernel's setup code sets at boot through QEMU's VGA BIOS
/// (`vga=0x311`: 640x480, 16 bits per pixel), so that vesafb is a firmware framebuffer on the
/// VGA device for the eviction checks to find.
pub const VESA_MODE: &str = "0x311";

/// An SR-IOV capable PF (QEMU's `nvme` with two VFs) for the check that a PF is never put in
/// D3 under its VFs (`tests/guest/src/sriov.rs`). Not in [`DEVICES`]: enabling VFs is all that
/// is done with it, and its VFs come and go during that check only.
pub const SRIOV_PF: GuestDevice = GuestDevice {
    label: "nvme-sriov",
    bdf: "0000:00:0a.0",
    cfg_size: 4096,
    qemu: &[
        "-device",
        "nvme-subsys,id=sriov-subsys,nqn=vfiotest-sriov",
        "-device",
        "nvme,serial=sriov,subsys=sriov-subsys,sriov_max_vfs=2,sriov_vq_flexible=4,\
         sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=5,addr=0a.0",
    ],
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// q35 with `intel-iommu,intremap=on`: type1v2 containers and iommufd cdevs.
    Iommu,
    /// No IOMMU; `vfio.enable_unsafe_noiommu_mode=1`, noiommu groups only.
    NoIommu,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Iommu => "iommu",
            Mode::NoIommu => "noiommu",
        }
    }
}

/// Which checks the guest runs (`--suite` of the test binary).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Suite {
    /// Every check.
    Full,
    /// The regression, concurrency, fuzz, fault and storm checks only (what `cargo xtask
    /// test` runs on the debug kernel).
    Robust,
    /// The benchmark of `cargo xtask bench` (`tests/guest/src/perf.rs`), with the scaling
    /// fleet ([`BENCH_FLEET`]) added to the machine.
    Bench(BenchOptions),
}

/// What `--suite bench` measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BenchOptions {
    pub rounds: u16,
    /// Bit `i` set: measure `DEVICES[i]`.
    pub devices: u32,
    /// Per batched measurement and round, at most this many calls.
    pub max_ops: u32,
    /// `cargo xtask bench --profile OP`: instead of the benchmark, a kernel profile of OP (one
    /// of [`crate::bench::PROFILE_OPS`]) for this many seconds per slot.
    pub profile: Option<(&'static str, u16)>,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Full => "full",
            Suite::Robust => "robust",
            Suite::Bench(_) => "bench",
        }
    }

    /// The test binary's arguments for this suite, as `vfiotest.extra=` takes them (commas for
    /// spaces).
    fn guest_args(self) -> String {
        match self {
            Suite::Bench(b) => {
                let labels: Vec<&str> = DEVICES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| b.devices & (1 << i) != 0)
                    .map(|(_, d)| d.label)
                    .collect();
                let mut a = format!(
                    "--suite,bench,--bench-rounds,{},--bench-max-ops,{},--bench-devices,{},\
                     --bench-fleet,{}",
                    b.rounds,
                    b.max_ops,
                    // Commas are the spaces of `vfiotest.extra`.
                    labels.join("+"),
                    BENCH_FLEET_BRIDGE
                );
                if let Some((op, secs)) = b.profile {
                    a.push_str(&format!(
                        ",--bench-profile,{op},--bench-profile-secs,{secs}"
                    ));
                }
                a
            }
            s => format!("--suite,{}", s.name()),
        }
    }
}

/// The bridge of the benchmark's scaling fleet: a conventional PCI bus with
/// [`BENCH_FLEET`] `pci-testdev`s, none with a reset of its own, so they share one bus reset
/// (one dev_set) and, under intel-iommu, one IOMMU group.
pub const BENCH_FLEET_BRIDGE: &str = "0000:00:10.0";
pub const BENCH_FLEET: usize = 16;

/// The QEMU arguments of the fleet.
fn bench_fleet_qemu() -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-device".into(),
        "pci-bridge,id=bench-fleet,bus=pcie.0,addr=10.0,chassis_nr=9,shpc=off".into(),
    ];
    for i in 0..BENCH_FLEET {
        a.push("-device".into());
        a.push(format!("pci-testdev,bus=bench-fleet,addr={:x}.0", i + 1));
    }
    a
}

/// One guest run: which kernel and which checks.
#[derive(Clone, Copy, Debug)]
pub struct GuestRun {
    pub profile: Profile,
    pub suite: Suite,
    pub mode: Mode,
}

impl GuestRun {
    /// The label of this run in the console prefix and in failure lines.
    pub fn label(self) -> String {
        match self.profile {
            Profile::Test => self.mode.name().to_string(),
            Profile::Debug => format!("{} {}", self.profile.name(), self.mode.name()),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    /// Names (and reasons) of the failed checks, plus a line for a run that did not finish.
    pub failures: Vec<String>,
    /// The guest's `INFO bench ...` lines (without `INFO bench `), prefixed with `[mode]`:
    /// measurements, not checks.
    pub bench: Vec<String>,
    /// The `BENCH {json}` records of `--suite bench` (the JSON only).
    pub records: Vec<String>,
    /// The `PROFILE <device> <text>` lines of `--bench-profile` (without `PROFILE `).
    pub profile: Vec<String>,
}

/// Builds the static guest test binary and returns its path.
pub fn build_guest_binary() -> Result<PathBuf> {
    step("building the static guest test binary (vfio-guest-tests)");
    // One target directory per checkout: two worktrees building at once must not overwrite
    // each other's binary.
    let checkout = sha256_hex(repo_root().display().to_string().as_bytes());
    let target_dir = cache_root().join("guest-target").join(&checkout[..12]);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "vfio-guest-tests",
            "--target",
            GUEST_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let bin = target_dir
        .join(GUEST_TARGET)
        .join("release/vfio-guest-tests");
    let data = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    if elf_has_interp(&data) {
        bail!(
            "{} is dynamically linked (PT_INTERP present); the guest has no libc",
            bin.display()
        );
    }
    Ok(bin)
}

/// Whether an ELF64 file has a program interpreter (i.e. is dynamically linked).
fn elf_has_interp(d: &[u8]) -> bool {
    let rd = |o: usize, n: usize| -> usize {
        d.get(o..o + n)
            .map(|b| b.iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize))
            .unwrap_or(0)
    };
    let (phoff, phentsize, phnum) = (rd(0x20, 8), rd(0x36, 2), rd(0x38, 2));
    (0..phnum).any(|i| rd(phoff + i * phentsize, 4) == 3 /* PT_INTERP */)
}

/// `.modinfo` of a `.ko` as key/value pairs (the shared reader in `pcibind`).
pub fn modinfo(path: &Path) -> Result<Vec<(String, String)>> {
    Ok(pcibind::modinfo::modinfo(path)?)
}

fn mod_name(path: &Path) -> Result<String> {
    Ok(modinfo(path)?
        .into_iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v)
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().replace('-', "_"))
                .unwrap_or_default()
        }))
}

/// The upstream C reference driver's module and every module of ours, with all their
/// dependencies from the kernel build (via `modules.order`), in load order.
pub fn modules_in_load_order(kernel_build: &Path, our_modules: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let order = std::fs::read_to_string(kernel_build.join("modules.order"))
        .with_context(|| format!("reading {}/modules.order", kernel_build.display()))?;
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for l in order.lines().filter(|l| !l.trim().is_empty()) {
        let ko = kernel_build.join(l.trim()).with_extension("ko");
        if ko.exists() {
            by_name.insert(mod_name(&ko)?, ko);
        }
    }
    for m in our_modules {
        by_name.insert(mod_name(m)?, m.clone());
    }
    // Upstream's references: vfio-pci, and nvgrace-gpu for `vfio-pci-nvlink` (nvlink.rs).
    let mut wanted: Vec<String> = vec!["vfio_pci".into(), "nvgrace_gpu_vfio_pci".into()];
    for m in our_modules {
        wanted.push(mod_name(m)?);
    }
    // Depth-first topological sort on `depends=`.
    fn visit(
        n: &str,
        by_name: &BTreeMap<String, PathBuf>,
        out: &mut Vec<PathBuf>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        let Some(p) = by_name.get(n) else {
            bail!("module {n} is needed but neither the kernel build nor our build has it (built in?)")
        };
        if out.contains(p) {
            return Ok(());
        }
        if stack.iter().any(|s| s == n) {
            bail!("module dependency cycle through {n}");
        }
        stack.push(n.to_string());
        for (k, v) in modinfo(p)? {
            if k == "depends" {
                for d in v.split(',').filter(|d| !d.is_empty()) {
                    let d = d.replace('-', "_");
                    // A dependency missing from both lists is built in (or absent): let the
                    // guest's load report it.
                    if by_name.contains_key(&d) {
                        visit(&d, by_name, out, stack)?;
                    }
                }
            }
        }
        stack.pop();
        out.push(p.clone());
        Ok(())
    }
    // modinfo `name`s use underscores; so do the keys.
    let by_name: BTreeMap<String, PathBuf> = by_name
        .into_iter()
        .map(|(k, v)| (k.replace('-', "_"), v))
        .collect();
    let mut out = Vec::new();
    for w in &wanted {
        visit(w, &by_name, &mut out, &mut vec![])?;
    }
    Ok(out)
}

const INIT: &str = r#"#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest init: mount the pseudo file systems, run the test binary, report through isa-debug-exit.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mode=iommu
shell=0
extra=
for x in $(cat /proc/cmdline); do
    case "$x" in
        vfiotest.mode=*) mode="${x#vfiotest.mode=}" ;;
        vfiotest.extra=*) extra="$(echo "${x#vfiotest.extra=}" | tr , ' ')" ;;
        vfiotest.shell=1) shell=1 ;;
    esac
done
echo "GUEST init: mode=$mode, $(cat /proc/uptime | cut -d' ' -f1)s since boot"
if [ "$shell" = 1 ]; then
    echo "GUEST debug shell; run: vfio-guest-tests --mode $mode --no-exit $(cat /etc/vfio-guest-tests.args)"
    setsid cttyhack sh
    poweroff -f
fi
/bin/vfio-guest-tests --mode "$mode" $(cat /etc/vfio-guest-tests.args) $extra
echo "GUEST-ERROR: vfio-guest-tests exited with status $? without reporting to isa-debug-exit"
# 0x01 -> QEMU exit status 3: "the test binary did not get to the end".
printf '\001' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
"#;

/// A newc ("070701") cpio archive in memory.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Cpio {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }
    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, data, (0, 0));
    }
    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes(), (0, 0));
    }
    fn chardev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

/// What the host's test steps made for the guest besides the build: the in-tree variant made
/// by `new-variant`, the staging root `cargo xtask install --destdir` installed into, and the
/// standalone variant built against that install's SDK.
#[derive(Default)]
pub struct Extras {
    pub new_variant: Option<PathBuf>,
    pub installed_root: Option<PathBuf>,
    pub standalone: Option<PathBuf>,
}

/// The dynamically linked kmod the guest's `modprobe` is (the one on this machine, with the
/// shared libraries and loader it needs at the same paths): busybox's modprobe is not what
/// users run.
const KMOD: &str = "/usr/bin/kmod";
/// kmod's applets in the guest, all `/sbin/NAME -> /usr/bin/kmod`.
const KMOD_APPLETS: [&str; 6] = ["modprobe", "depmod", "modinfo", "insmod", "rmmod", "lsmod"];
/// The directories every initramfs has.
const BASE_DIRS: [&str; 8] = [
    "bin",
    "dev",
    "etc",
    "proc",
    "sys",
    "tmp",
    "lib",
    "lib/modules",
];
/// Where the README's "Use it" commands go in the guest.
pub const README_USE_IT: &str = "etc/readme-use-it";

/// kmod and the shared objects `ldd` says it loads, as (path, contents).
fn kmod_files() -> Result<Vec<(String, Vec<u8>)>> {
    let ldd = crate::util::output(Command::new("ldd").arg(KMOD))?;
    let mut files = vec![(
        KMOD.to_string(),
        std::fs::read(KMOD).with_context(|| format!("reading {KMOD} (install kmod)"))?,
    )];
    for l in ldd.lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match l.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next(),
            None => l.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push((
                p.to_string(),
                std::fs::read(p).with_context(|| format!("reading {p}"))?,
            ));
        }
    }
    Ok(files)
}

/// The `sh` code blocks of the README's "Use it" section, in order.
pub fn readme_use_it(readme: &str) -> Result<Vec<String>> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Use it"))
        .context("README.md has no `## Use it` section")?;
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for l in section.lines() {
        match (&mut cur, l.trim_end()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    if blocks.len() != 2 {
        bail!("README.md's `Use it` section has {} sh blocks; the test runs exactly two (bind, give back)", blocks.len());
    }
    Ok(blocks)
}

/// The guest binary's arguments (besides `--mode`, which comes from the kernel command line).
fn guest_args(modules: &[PathBuf], our_modules: &[PathBuf], extras: &Extras) -> String {
    let mut a: Vec<String> = Vec::new();
    for m in modules {
        a.push(format!("--module {GUEST_MODDIR}/{}", file_name(m)));
    }
    // Ours, for the selection checks (the catalog `match` uses on the host).
    for m in our_modules {
        a.push(format!("--catalog {GUEST_MODDIR}/{}", file_name(m)));
    }
    // Not loaded up front: the bind checks load it through the library.
    if let Some(x) = &extras.new_variant {
        a.push(format!("--new-variant-ko {GUEST_MODDIR}/{}", file_name(x)));
    }
    // Installed under /lib/modules/<release>/ (the guest finds it with uname).
    if extras.installed_root.is_some() {
        a.push("--installed".into());
    }
    if let Some(x) = &extras.standalone {
        a.push(format!("--standalone-ko {GUEST_MODDIR}/{}", file_name(x)));
    }
    a.push("--driver vfio-pci".into());
    if our_modules.iter().any(|m| file_name(m) == GENERIC_KO) {
        a.push("--driver vfio-pci-generic".into());
        a.push(format!("--generic-ko {GUEST_MODDIR}/{GENERIC_KO}"));
    }
    for d in DEVICES {
        a.push(format!("--device {}={}/{}", d.bdf, d.label, d.cfg_size));
    }
    a.push(format!("--sriov-pf {}", SRIOV_PF.bdf));
    a.join(" ")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Builds (or reuses) the initramfs and returns its path.
pub fn build_initramfs(
    kernel_build: &Path,
    our_modules: &[PathBuf],
    extras: &Extras,
    profile: Profile,
) -> Result<PathBuf> {
    let bin = build_guest_binary()?;
    let modules = modules_in_load_order(kernel_build, our_modules)?;
    let args = guest_args(&modules, our_modules, extras);
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("reading {BUSYBOX} (install busybox-static)"))?;
    if elf_has_interp(&busybox) {
        bail!("{BUSYBOX} is not statically linked: install Debian's busybox-static");
    }
    let applets = String::from_utf8_lossy(
        &crate::util::output(Command::new(BUSYBOX).arg("--list"))?.into_bytes(),
    )
    .lines()
    .map(str::to_string)
    .collect::<Vec<_>>();
    let guest_bin = std::fs::read(&bin)?;
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    for m in modules
        .iter()
        .chain(&extras.new_variant)
        .chain(&extras.standalone)
    {
        blobs.push((
            file_name(m),
            std::fs::read(m).with_context(|| format!("reading {}", m.display()))?,
        ));
    }
    // Files at their own paths: the installed module tree (as `cargo xtask install --destdir`
    // laid it out, depmod output included), kmod and its libraries, the README's commands.
    let mut placed: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(root) = &extras.installed_root {
        let mut todo = vec![root.join("lib/modules")];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    todo.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(root)?.display().to_string();
                    placed.push((rel, std::fs::read(e.path())?));
                }
            }
        }
        placed.sort();
    }
    for (p, b) in kmod_files()? {
        placed.push((p.trim_start_matches('/').to_string(), b));
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    for (i, b) in readme_use_it(&readme)?.iter().enumerate() {
        placed.push((
            format!("{README_USE_IT}-{}.sh", i + 1),
            b.clone().into_bytes(),
        ));
    }
    // The key: every input's bytes.
    let mut key = Vec::new();
    for part in [
        INIT.as_bytes(),
        args.as_bytes(),
        &busybox,
        &guest_bin,
        applets.join(",").as_bytes(),
    ] {
        key.extend_from_slice(sha256_hex(part).as_bytes());
    }
    for (n, b) in blobs.iter().chain(&placed) {
        key.extend_from_slice(n.as_bytes());
        key.extend_from_slice(sha256_hex(b).as_bytes());
    }
    let hash = &sha256_hex(&key)[..16];
    // Per checkout: the clean-up below must not delete another worktree's image before its
    // QEMU starts.
    // And per kernel: each profile's image holds that kernel's modules.
    let dir = crate::util::checkout_cache(&format!("initramfs-{}", profile.name()));
    let out = dir.join(format!("initramfs-{hash}.cpio"));
    if out.exists() {
        step(format!("initramfs up to date: {}", out.display()));
        return Ok(out);
    }
    step(format!(
        "writing initramfs {} ({} modules)",
        out.display(),
        modules.len()
    ));
    for m in &modules {
        println!("    module {}", m.display());
    }
    let mut c = Cpio::new();
    for d in BASE_DIRS.iter().copied().chain([&GUEST_MODDIR[1..]]) {
        c.dir(d);
    }
    c.chardev("dev/console", 5, 1);
    c.chardev("dev/null", 1, 3);
    c.file("bin/busybox", 0o755, &busybox);
    for a in applets.iter().filter(|a| a.as_str() != "busybox") {
        c.symlink(&format!("bin/{a}"), "busybox");
    }
    c.file("init", 0o755, INIT.as_bytes());
    c.file("bin/vfio-guest-tests", 0o755, &guest_bin);
    c.file(
        "etc/vfio-guest-tests.args",
        0o644,
        format!("{args}\n").as_bytes(),
    );
    for (n, b) in &blobs {
        c.file(&format!("{}/{n}", &GUEST_MODDIR[1..]), 0o644, b);
    }
    let mut made: std::collections::BTreeSet<String> = BASE_DIRS
        .iter()
        .map(|d| d.to_string())
        .chain(std::iter::once(GUEST_MODDIR[1..].to_string()))
        .collect();
    let mut mkdirs = |c: &mut Cpio, p: &str| {
        let mut at = String::new();
        for part in Path::new(p).parent().into_iter().flat_map(|d| d.iter()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(&part.to_string_lossy());
            if made.insert(at.clone()) {
                c.dir(&at);
            }
        }
    };
    for (p, b) in &placed {
        mkdirs(&mut c, p);
        c.file(p, 0o755, b);
    }
    mkdirs(&mut c, "sbin/x");
    for a in KMOD_APPLETS {
        c.symlink(&format!("sbin/{a}"), KMOD);
    }
    std::fs::create_dir_all(&dir)?;
    // Older images are dead weight; keep only the new one.
    for e in std::fs::read_dir(&dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with("initramfs-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, c.finish())?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

fn qemu_command(
    kernel_build: &Path,
    initramfs: &Path,
    mode: Mode,
    profile: Profile,
    extra_append: &str,
) -> Result<Command> {
    let bz = kernel_build.join("arch/x86/boot/bzImage");
    if !bz.exists() {
        bail!("{} missing: run `cargo xtask kernel`", bz.display());
    }
    let mut append = String::from("console=ttyS0 panic=-1 oops=panic loglevel=5 ");
    // RAM the kernel leaves alone, for the fake IGD of tests/fixtures/fakepci: its OpRegion
    // area and BAR memory (the layout is in that module's documentation).
    append.push_str(&format!("memmap={FAKEPCI_MEMMAP} "));
    // A firmware framebuffer on the VGA device (see `VESA_MODE`).
    append.push_str(&format!("vga={VESA_MODE} "));
    // KASAN's shadow takes an eighth of RAM and kmemleak keeps a record of every object.
    let mem = match profile {
        Profile::Test => "512M",
        Profile::Debug => "1G",
    };
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-machine", "q35", "-accel", "tcg", "-m", mem, "-smp", "1"]);
    c.args(["-nodefaults", "-display", "none", "-no-reboot"]);
    match mode {
        Mode::Iommu => {
            // Must come before the devices it translates for.
            c.args(["-device", "intel-iommu,intremap=on"]);
            append.push_str("intel_iommu=on ");
        }
        Mode::NoIommu => append.push_str("vfio.enable_unsafe_noiommu_mode=1 "),
    }
    for d in DEVICES {
        c.args(d.qemu);
    }
    c.args(SRIOV_PF.qemu);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    append.push_str(&format!(
        "vfiotest.mode={} vfiotest.kernel={} {extra_append}",
        mode.name(),
        profile.name()
    ));
    // Debugging aid: extra kernel arguments, e.g. `loglevel=8`, `vfiotest.shell=1`, or
    // `vfiotest.extra=--driver,vfio-pci` (extra test-binary arguments, commas for spaces).
    if let Ok(extra) = std::env::var("VFIO_RS_GUEST_APPEND") {
        append.push(' ');
        append.push_str(&extra);
    }
    // Debugging aid: extra QEMU arguments, split at whitespace, e.g.
    // `-trace pci_cfg_*,file=/tmp/cfg.trace` to count the config cycles a path makes.
    if let Ok(extra) = std::env::var("VFIO_RS_QEMU_EXTRA") {
        c.args(extra.split_whitespace());
    }
    c.arg("-kernel")
        .arg(bz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append.trim());
    Ok(c)
}

fn timeout(run: GuestRun) -> Duration {
    std::env::var("VFIO_RS_GUEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(match (run.profile, run.suite) {
            (Profile::Test, Suite::Robust) => DEFAULT_TIMEOUT,
            // The whole suite takes 8 to 12 minutes alone on 2 cores; twice that with a second
            // guest or a build beside it.
            (Profile::Test, Suite::Full) => DEFAULT_TIMEOUT * 2,
            // KASAN, lockdep and kmemleak make every kernel path several times slower.
            (Profile::Debug, Suite::Robust) => DEFAULT_TIMEOUT * 3,
            (Profile::Debug, Suite::Full) => DEFAULT_TIMEOUT * 6,
            // About 12 minutes for 9 rounds alone on 2 cores.
            (_, Suite::Bench(b)) => {
                let profile = b.profile.map_or(0, |(_, secs)| 3 * 4 * u64::from(secs));
                DEFAULT_TIMEOUT + Duration::from_secs(180 * u64::from(b.rounds) + profile)
            }
        })
}

/// How many console lines after a report's first line belong to it (a lockdep chain or a
/// KASAN report with its stacks is 40 to 120 lines).
const REPORT_LINES: usize = 150;

/// What the console said, parsed.
#[derive(Default, Debug)]
struct Parsed {
    passes: usize,
    fails: Vec<String>,
    summary: Option<(usize, usize)>,
    panic: bool,
    bench: Vec<String>,
    records: Vec<String>,
    profile: Vec<String>,
    /// Kernel reports (KASAN, lockdep, hung task, WARNING, ...), each with the lines after it.
    reports: Vec<Vec<String>>,
    /// Lines still to add to the last report.
    report_left: usize,
}

impl Parsed {
    fn feed(&mut self, line: &str) {
        // Kernel messages may share a console line with the test binary's output, so look
        // anywhere in the line; the guest's own FAIL lines quoting dmesg are not reports.
        if !line.starts_with("FAIL ") && pcibind::kernel_log::is_report(line) {
            if self.report_left == 0 || self.reports.is_empty() {
                self.reports.push(Vec::new());
            }
            self.report_left = REPORT_LINES;
        }
        if self.report_left > 0 {
            if let Some(r) = self.reports.last_mut() {
                r.push(line.to_string());
            }
            self.report_left -= 1;
        }
        if line.starts_with("PASS ") {
            self.passes += 1;
        } else if let Some(f) = line.strip_prefix("FAIL ") {
            self.fails.push(f.to_string());
        } else if let Some(b) = line.strip_prefix("INFO bench ") {
            self.bench.push(b.to_string());
        } else if let Some(b) = line.strip_prefix("BENCH ") {
            self.records.push(b.to_string());
        } else if let Some(b) = line.strip_prefix("PROFILE ") {
            self.profile.push(b.to_string());
        } else if let Some(s) = line.strip_prefix("SUMMARY ") {
            let num = |k: &str| {
                s.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .and_then(|v| v.parse::<usize>().ok())
            };
            if let (Some(p), Some(f)) = (num("passed="), num("failed=")) {
                self.summary = Some((p, f));
            }
        }
        if line.contains("Kernel panic") {
            self.panic = true;
        }
    }
}

/// Boots the guest in `mode`, runs the suite, and returns the counts. A run that does not get
/// to the end (panic, QEMU error, no SUMMARY, timeout) adds one failure and prints the tail of
/// the console.
pub fn run_guest_suite(
    kernel_build: &Path,
    our_modules: &[PathBuf],
    extras: &Extras,
    run: GuestRun,
) -> Result<Counts> {
    let mode = run.mode;
    let initramfs = build_initramfs(kernel_build, our_modules, extras, run.profile)?;
    // `vfiotest.qmp=1` tells the guest that this host serves its `HOST-REQUEST qmp` lines
    // (device unplug and re-plug for the surprise-removal checks) on this QMP socket.
    let append = format!("vfiotest.extra={} vfiotest.qmp=1", run.suite.guest_args());
    let qmp_dir = std::env::temp_dir().join(format!(
        "vfio-rs-qmp-{}-{}",
        std::process::id(),
        run.label().replace(' ', "-")
    ));
    std::fs::create_dir_all(&qmp_dir).with_context(|| format!("creating {}", qmp_dir.display()))?;
    let qmp_sock = qmp_dir.join("qmp.sock");
    let _ = std::fs::remove_file(&qmp_sock);
    let mut cmd = qemu_command(kernel_build, &initramfs, mode, run.profile, &append)?;
    if let Suite::Bench(_) = run.suite {
        cmd.args(bench_fleet_qemu());
    }
    cmd.arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_sock.display()));
    cmd.args(["-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let limit = timeout(run);
    step(format!(
        "guest tests ({} suite), {} kernel, mode {} (QEMU TCG, timeout {}s)",
        run.suite.name(),
        run.profile.name(),
        mode.name(),
        limit.as_secs()
    ));
    println!("    $ {}", show(&cmd));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .context("cannot start qemu-system-x86_64 (run `cargo xtask setup`)")?;
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for l in BufReader::new(out).split(b'\n').map_while(|l| l.ok()) {
                let _ = tx.send((
                    false,
                    String::from_utf8_lossy(&l)
                        .trim_end_matches('\r')
                        .to_string(),
                ));
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for l in BufReader::new(err).split(b'\n').map_while(|l| l.ok()) {
                let _ = tx.send((true, String::from_utf8_lossy(&l).trim_end().to_string()));
            }
        }));
    }
    drop(tx);
    let prefix = format!("[guest {}]", run.label());
    let mut parsed = Parsed::default();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut timed_out = false;
    let mut first_test: Option<Duration> = None;
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok((is_err, line)) => {
                let shown = if is_err {
                    format!("{prefix} qemu: {line}")
                } else {
                    format!("{prefix} {line}")
                };
                println!("{shown}");
                let _ = std::io::stdout().flush();
                if first_test.is_none() && line.starts_with("TEST ") {
                    first_test = Some(start.elapsed());
                }
                parsed.feed(&line);
                if !is_err {
                    if let Some(done) = crate::qmp::serve(&qmp_sock, &line) {
                        println!("{prefix} {done}");
                    }
                }
                tail.push_back(shown);
                if tail.len() > 60 {
                    tail.pop_front();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if start.elapsed() >= limit {
            timed_out = true;
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait()?;
    for r in readers {
        let _ = r.join();
    }
    let _ = std::fs::remove_dir_all(&qmp_dir);
    let elapsed = start.elapsed();
    let code = status.code();
    let mut problem = None;
    if timed_out {
        problem = Some(format!("timeout after {}s", limit.as_secs()));
    } else if parsed.panic {
        problem = Some("kernel panic".to_string());
    } else if code != Some(PASS_STATUS) {
        problem = Some(match code {
            Some(0) => "QEMU exited with 0 (a guest panic or poweroff before the end)".to_string(),
            Some(3) => {
                "the guest test binary died before the end (init fallback, status 3)".to_string()
            }
            Some(c) => format!("QEMU exited with status {c}, expected {PASS_STATUS}"),
            None => format!("QEMU killed by {status}"),
        });
    } else if parsed.summary.is_none() {
        problem = Some("no SUMMARY line on the console".to_string());
    }
    let (passed, mut failed) = parsed
        .summary
        .unwrap_or((parsed.passes, parsed.fails.len()));
    if let Some((p, f)) = parsed.summary {
        if p != parsed.passes || f != parsed.fails.len() {
            println!(
                "    note: SUMMARY says {p} passed/{f} failed, the console showed {}/{} (lines mangled?)",
                parsed.passes,
                parsed.fails.len()
            );
        }
    }
    let label = run.label();
    let mut failures: Vec<String> = parsed
        .fails
        .iter()
        .map(|f| format!("[{label}] {f}"))
        .collect();
    if let Some(p) = &problem {
        failed += 1;
        failures.push(format!("[{label}] guest run: {p}"));
        println!(
            "---- guest {label}: {p}; last {} console lines ----",
            tail.len()
        );
        for l in &tail {
            println!("{l}");
        }
        println!("---- end ----");
    }
    // A kernel report fails the run even when every check passed: the checks only see what
    // the uAPI returns, the report is what the kernel saw.
    if !parsed.reports.is_empty() {
        failed += 1;
        failures.push(format!(
            "[{label}] kernel reports on the console: {}",
            parsed
                .reports
                .iter()
                .map(|r| r
                    .first()
                    .map(String::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        for (i, r) in parsed.reports.iter().enumerate() {
            println!(
                "---- guest {label}: kernel report {} of {} ----",
                i + 1,
                parsed.reports.len()
            );
            for l in r {
                println!("{prefix} {l}");
            }
            println!("---- end ----");
        }
    }
    println!(
        "    guest {label}: {passed} passed, {failed} failed in {:.1}s (first test at {})",
        elapsed.as_secs_f64(),
        first_test
            .map(|t| format!("{:.1}s", t.as_secs_f64()))
            .unwrap_or_else(|| "never".into())
    );
    let bench = parsed
        .bench
        .iter()
        .map(|b| format!("[{label}] {b}"))
        .collect();
    Ok(Counts {
        passed,
        failed,
        failures,
        bench,
        records: parsed.records,
        profile: parsed.profile,
    })
}

/// Boots the same guest with a shell on the terminal instead of the tests (Ctrl-A X quits).
/// The command to run the suite by hand is printed at the prompt.
pub fn qemu_shell(
    kernel_build: &Path,
    our_modules: &[PathBuf],
    mode: Mode,
    profile: Profile,
) -> Result<()> {
    let initramfs = build_initramfs(kernel_build, our_modules, &Extras::default(), profile)?;
    let mut cmd = qemu_command(kernel_build, &initramfs, mode, profile, "vfiotest.shell=1")?;
    cmd.args(["-serial", "mon:stdio"]);
    step(format!(
        "interactive guest, mode {} (Ctrl-A X quits QEMU)",
        mode.name()
    ));
    println!("    $ {}", show(&cmd));
    let _ = cmd.status().context("cannot start qemu-system-x86_64")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_newc_and_aligned() {
        let mut c = Cpio::new();
        c.dir("bin");
        c.file("bin/x", 0o755, b"abc");
        c.symlink("bin/y", "x");
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 512, 0);
        let s = String::from_utf8_lossy(&out);
        assert!(s.contains("bin/x\0"));
        assert!(s.contains("TRAILER!!!\0"));
        // The file's data starts 4-aligned right after its padded name.
        let pos = s.find("bin/x\0").unwrap();
        let data_at = (pos + 6 + 3) & !3;
        assert_eq!(&out[data_at..data_at + 3], b"abc");
    }

    #[test]
    fn cpio_round_trips_through_the_cpio_tool() {
        let Some(cpio) = crate::util::which("cpio") else {
            return;
        };
        let mut c = Cpio::new();
        c.dir("d");
        c.file("d/f", 0o644, b"hello\n");
        c.symlink("d/l", "f");
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let arc = dir.join("a.cpio");
        std::fs::write(&arc, c.finish()).unwrap();
        let list = std::process::Command::new(cpio)
            .arg("-t")
            .stdin(std::fs::File::open(&arc).unwrap())
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&list.stdout);
        assert_eq!(names.lines().collect::<Vec<_>>(), vec!["d", "d/f", "d/l"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_console_lines() {
        let mut p = Parsed::default();
        for l in [
            "TEST a",
            "PASS a (3 ms)",
            "FAIL b: why",
            "[    1.0] noise",
            "INFO bench config-read edu vfio-pci=900ns vfio-pci-generic=950ns ratio=1.06",
            "INFO not a bench line",
            "SUMMARY passed=1 failed=1 (9 ms)",
        ] {
            p.feed(l);
        }
        assert_eq!(
            p.bench,
            vec!["config-read edu vfio-pci=900ns vfio-pci-generic=950ns ratio=1.06".to_string()]
        );
        assert_eq!(p.passes, 1);
        assert_eq!(p.fails, vec!["b: why".to_string()]);
        assert_eq!(p.summary, Some((1, 1)));
        assert!(!p.panic);
        p.feed("[    2.0] Kernel panic - not syncing: Attempted to kill init!");
        assert!(p.panic);
    }
}
