// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask bench`: our driver against upstream C `vfio-pci`, every hot path and its
//! scaling, in one boot of the test kernel; and the short form `cargo xtask test` runs so the
//! benchmark cannot rot.
//!
//! The guest half (`tests/guest/src/perf.rs`) prints one `BENCH {json}` record per device,
//! operation, driver slot and round, with every sample. Here the records become, per
//! operation: each slot's median (the median of its rounds' medians), the ratio ours/upstream,
//! and the noise band: the range of the control/upstream ratios (the same C driver against
//! itself, round by round, and over all rounds, widened to include 1.00). A ratio inside the
//! band is "same": the run cannot tell the drivers apart there.
//!
//! Outputs, under `target/bench/` (or `--out`): `bench.txt` (the terminal table), `bench.md`,
//! `bench.json` (every raw record plus the summary) and `ratios.svg`.

use crate::guest::{self, BenchOptions, GuestRun, Mode, Suite, DEVICES};
use crate::kernel::Profile;
use crate::util::{output, repo_root, step};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The devices `cargo xtask bench` measures by default.
pub const DEFAULT_DEVICES: &[&str] = &["edu", "nvme", "e1000e", "pci-testdev"];
/// What `cargo xtask test` runs: two rounds on two devices, plus the fleet.
pub const SHORT_DEVICES: &[&str] = &["edu", "nvme"];
pub const SHORT_ROUNDS: u16 = 2;
const SLOTS: [&str; 3] = ["upstream", "ours", "control"];
/// The operations `--profile` takes: the benchmark's per-device operation names (the guest
/// runs the one its device has).
pub const PROFILE_OPS: &[&str] = &[
    "config-read-virt",
    "config-read-pass",
    "config-read-bar",
    "config-read-cap",
    "config-write-virt",
    "config-write-command",
    "config-write-pass",
    "bar-read-1",
    "bar-read-2",
    "bar-read-4",
    "bar-read-8",
    "bar-write-1",
    "bar-write-2",
    "bar-write-4",
    "bar-write-8",
    "ioeventfd",
    "irq-msi",
    "irq-intx",
    "irq-msix-loopback",
    "reset",
    "open",
    "close",
];

/// One `BENCH` record.
#[derive(Clone, Debug)]
pub struct Record {
    pub device: String,
    pub op: String,
    pub slot: String,
    pub round: u32,
    pub unit: String,
    pub samples: Vec<u64>,
}

impl Record {
    pub fn parse(line: &str) -> Result<Record> {
        let v: Value = serde_json::from_str(line).with_context(|| format!("record {line:.80}"))?;
        let s = |k: &str| -> Result<String> {
            Ok(v.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("record without {k}"))?
                .to_string())
        };
        let samples = v
            .get("samples")
            .and_then(Value::as_array)
            .context("record without samples")?
            .iter()
            .map(|x| x.as_u64().context("sample not a number"))
            .collect::<Result<Vec<u64>>>()?;
        Ok(Record {
            device: s("device")?,
            op: s("op")?,
            slot: s("slot")?,
            round: v.get("round").and_then(Value::as_u64).context("no round")? as u32,
            unit: s("unit")?,
            samples,
        })
    }

    fn to_json(&self) -> Value {
        json!({"device": self.device, "op": self.op, "slot": self.slot, "round": self.round,
               "unit": self.unit, "samples": self.samples})
    }
}

pub fn median(v: &[u64]) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied()
}

/// One slot of one operation.
#[derive(Clone, Debug, Default)]
pub struct SlotStat {
    /// Round -> that round's median.
    pub rounds: BTreeMap<u32, u64>,
    /// The median of the round medians.
    pub median: u64,
    pub samples: usize,
}

/// Where ours stands against upstream for one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Faster,
    Same,
    Slower,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Same => "same",
            Verdict::Slower => "slower",
        }
    }
}

/// One operation on one device.
#[derive(Clone, Debug)]
pub struct OpStat {
    pub device: String,
    pub op: String,
    pub unit: String,
    pub slots: BTreeMap<String, SlotStat>,
    /// ours / upstream.
    pub ratio: Option<f64>,
    /// control / upstream over all rounds.
    pub control: Option<f64>,
    /// The noise band of ratios: (low, high).
    pub band: Option<(f64, f64)>,
    pub verdict: Option<Verdict>,
}

impl OpStat {
    /// Whether the acceptance rule holds: ours no slower, or inside the noise band.
    pub fn at_parity(&self) -> bool {
        match (self.ratio, self.verdict) {
            (Some(r), Some(v)) => r <= 1.0 || v != Verdict::Slower,
            _ => false,
        }
    }
}

/// The summary of a run's records, in first-seen order of (device, op).
pub fn analyse(records: &[Record]) -> Vec<OpStat> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        let k = (r.device.clone(), r.op.clone());
        if !by.contains_key(&k) {
            order.push(k.clone());
        }
        by.entry(k).or_default().push(r);
    }
    order
        .into_iter()
        .map(|k| {
            let rs = &by[&k];
            let mut slots: BTreeMap<String, SlotStat> = BTreeMap::new();
            for r in rs {
                let s = slots.entry(r.slot.clone()).or_default();
                if let Some(m) = median(&r.samples) {
                    s.rounds.insert(r.round, m);
                }
                s.samples += r.samples.len();
            }
            for s in slots.values_mut() {
                s.median = median(&s.rounds.values().copied().collect::<Vec<_>>()).unwrap_or(0);
            }
            let med = |slot: &str| {
                slots
                    .get(slot)
                    .filter(|s| !s.rounds.is_empty())
                    .map(|s| s.median)
            };
            let ratio_of = |a: Option<u64>, b: Option<u64>| match (a, b) {
                (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64),
                _ => None,
            };
            let ratio = ratio_of(med("ours"), med("upstream"));
            let control = ratio_of(med("control"), med("upstream"));
            let band = control.map(|c| {
                let mut lo = c.min(1.0);
                let mut hi = c.max(1.0);
                if let (Some(u), Some(cs)) = (slots.get("upstream"), slots.get("control")) {
                    for (round, &um) in &u.rounds {
                        if let (Some(&cm), true) = (cs.rounds.get(round), um > 0) {
                            let x = cm as f64 / um as f64;
                            lo = lo.min(x);
                            hi = hi.max(x);
                        }
                    }
                }
                (lo, hi)
            });
            let verdict = match (ratio, band) {
                (Some(r), Some((lo, hi))) => Some(if r < lo {
                    Verdict::Faster
                } else if r > hi {
                    Verdict::Slower
                } else {
                    Verdict::Same
                }),
                _ => None,
            };
            OpStat {
                device: k.0.clone(),
                op: k.1.clone(),
                unit: rs.first().map(|r| r.unit.clone()).unwrap_or_default(),
                slots,
                ratio,
                control,
                band,
                verdict,
            }
        })
        .collect()
}

/// `12345` ns as `12.3us`, bytes as `1.2KiB`.
fn human(v: u64, unit: &str) -> String {
    match unit {
        "ns" if v >= 10_000_000 => format!("{:.1}ms", v as f64 / 1e6),
        "ns" if v >= 10_000 => format!("{:.1}us", v as f64 / 1e3),
        "ns" => format!("{v}ns"),
        "B" if v >= 10 * 1024 => format!("{:.1}KiB", v as f64 / 1024.0),
        "B" => format!("{v}B"),
        u => format!("{v}{u}"),
    }
}

fn cell(s: &OpStat, slot: &str) -> String {
    s.slots
        .get(slot)
        .filter(|x| !x.rounds.is_empty())
        .map_or("-".into(), |x| human(x.median, &s.unit))
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}"))
}

fn band_cell(b: Option<(f64, f64)>) -> String {
    b.map_or("-".into(), |(lo, hi)| format!("{lo:.2}-{hi:.2}"))
}

/// The cells of one table row: device, operation, the three slots, ratio, band, verdict.
fn row(s: &OpStat) -> [String; 8] {
    [
        s.device.clone(),
        s.op.clone(),
        cell(s, "upstream"),
        cell(s, "ours"),
        cell(s, "control"),
        ratio_cell(s.ratio),
        band_cell(s.band),
        s.verdict.map_or("-", Verdict::name).to_string(),
    ]
}

/// Module sizes: (module, text, data, bss) from `size`'s Berkeley format, and the largest
/// functions (`nm --size-sort`).
#[derive(Clone, Debug, Default)]
pub struct ModuleSizes {
    pub modules: Vec<(String, u64, u64, u64)>,
    pub largest: Vec<(String, u64, String)>,
}

impl ModuleSizes {
    fn totals(&self) -> (u64, u64, u64) {
        self.modules
            .iter()
            .fold((0, 0, 0), |(t, d, b), m| (t + m.1, d + m.2, b + m.3))
    }
}

fn module_sizes(kos: &[PathBuf]) -> Result<ModuleSizes> {
    let mut m = ModuleSizes::default();
    for ko in kos {
        let out = output(Command::new("size").arg(ko))?;
        let line = out
            .lines()
            .nth(1)
            .with_context(|| format!("size {}: no numbers", ko.display()))?;
        let n: Vec<u64> = line
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        let [t, d, b] = n[..] else {
            bail!("size {}: cannot parse {line:?}", ko.display())
        };
        let name = ko
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        m.modules.push((name.clone(), t, d, b));
        let syms = output(
            Command::new("nm")
                .args(["--size-sort", "-S", "-t", "d"])
                .arg(ko),
        )?;
        for l in syms.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [_, size, ty, sym] = f[..] {
                if ty.eq_ignore_ascii_case("t") {
                    if let Ok(sz) = size.parse::<u64>() {
                        m.largest.push((sym.to_string(), sz, name.clone()));
                    }
                }
            }
        }
    }
    m.largest.sort_by_key(|x| std::cmp::Reverse(x.1));
    m.largest.truncate(12);
    Ok(m)
}

/// Everything a report shows.
pub struct Report {
    pub stats: Vec<OpStat>,
    pub ours: ModuleSizes,
    pub upstream: ModuleSizes,
    pub meta: Value,
}

impl Report {
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<12} {:<30} {:>10} {:>10} {:>10} {:>7} {:>11} {:<7}",
            "device",
            "operation",
            "upstream",
            "ours",
            "control",
            "ours/up",
            "noise band",
            "verdict"
        );
        for s in &self.stats {
            let [d, op, u, ours, c, r, b, v] = row(s);
            let over = if s.at_parity() || s.unit != "ns" {
                ""
            } else {
                "  <- over"
            };
            let _ = writeln!(
                o,
                "{d:<12} {op:<30} {u:>10} {ours:>10} {c:>10} {r:>7} {b:>11} {v:<7}{over}"
            );
        }
        let (ot, od, ob) = self.ours.totals();
        let (ut, ud, ub) = self.upstream.totals();
        let _ = writeln!(o, "\nmodule size (size(1) Berkeley: text includes rodata):");
        for (n, t, d, b) in self.ours.modules.iter().chain(&self.upstream.modules) {
            let _ = writeln!(o, "    {n:<24} text {t:>7} data {d:>6} bss {b:>5}");
        }
        let _ = writeln!(
            o,
            "    ours {ot}/{od}/{ob} vs upstream {ut}/{ud}/{ub} (text/data/bss): text ratio {:.2}",
            ot as f64 / ut.max(1) as f64
        );
        let _ = writeln!(o, "largest functions of ours:");
        for (sym, sz, m) in &self.ours.largest {
            let _ = writeln!(o, "    {sz:>6} {sym} ({m})");
        }
        let over: Vec<&OpStat> = self
            .stats
            .iter()
            .filter(|s| s.unit == "ns" && !s.at_parity())
            .collect();
        let _ = writeln!(
            o,
            "\n{} operations; {} over upstream and outside the noise band{}",
            self.stats.iter().filter(|s| s.unit == "ns").count(),
            over.len(),
            if over.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    over.iter()
                        .map(|s| format!("{}/{}", s.device, s.op))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        o
    }

    pub fn markdown(&self) -> String {
        let mut o = String::from(
            "| device | operation | upstream | ours | control | ours/upstream | noise band | verdict |\n\
             |---|---|---:|---:|---:|---:|---:|---|\n",
        );
        for s in &self.stats {
            let _ = writeln!(o, "| {} |", row(s).join(" | "));
        }
        let (ot, od, ob) = self.ours.totals();
        let (ut, ud, ub) = self.upstream.totals();
        let _ = writeln!(
            o,
            "\n| modules | text | data | bss |\n|---|---:|---:|---:|\n\
             | ours ({}) | {ot} | {od} | {ob} |\n| upstream ({}) | {ut} | {ud} | {ub} |",
            self.ours
                .modules
                .iter()
                .map(|m| m.0.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            self.upstream
                .modules
                .iter()
                .map(|m| m.0.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        );
        o
    }

    pub fn json(&self, records: &[Record]) -> Value {
        let stats: Vec<Value> = self
            .stats
            .iter()
            .map(|s| {
                json!({
                    "device": s.device, "op": s.op, "unit": s.unit,
                    "medians": s.slots.iter().map(|(k, v)| (k.clone(), json!(v.median))).collect::<serde_json::Map<_, _>>(),
                    "round_medians": s.slots.iter().map(|(k, v)| (k.clone(), json!(v.rounds.values().collect::<Vec<_>>()))).collect::<serde_json::Map<_, _>>(),
                    "ratio": s.ratio, "control_ratio": s.control,
                    "band": s.band.map(|(a, b)| vec![a, b]),
                    "verdict": s.verdict.map(Verdict::name),
                    "at_parity": s.at_parity(),
                })
            })
            .collect();
        let sizes = |m: &ModuleSizes| {
            json!({
                "modules": m.modules.iter().map(|(n, t, d, b)| json!({"name": n, "text": t, "data": d, "bss": b})).collect::<Vec<_>>(),
                "largest_functions": m.largest.iter().map(|(s, z, n)| json!({"symbol": s, "size": z, "module": n})).collect::<Vec<_>>(),
            })
        };
        json!({
            "meta": self.meta,
            "summary": stats,
            "module_sizes": {"ours": sizes(&self.ours), "upstream": sizes(&self.upstream)},
            "records": records.iter().map(Record::to_json).collect::<Vec<_>>(),
        })
    }

    /// A horizontal bar per latency operation: ours/upstream, with the noise band shaded and
    /// a line at 1.00.
    pub fn svg(&self) -> String {
        let rows: Vec<&OpStat> = self
            .stats
            .iter()
            .filter(|s| s.unit == "ns" && s.ratio.is_some())
            .collect();
        let (label_w, plot_w, row_h, top) = (300.0, 560.0, 18.0, 40.0);
        let (lo, hi) = (0.5f64, 1.5f64);
        let x = |r: f64| label_w + (r.clamp(lo, hi) - lo) / (hi - lo) * plot_w;
        let height = top + row_h * rows.len() as f64 + 30.0;
        let width = label_w + plot_w + 80.0;
        let mut o = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             font-family=\"monospace\" font-size=\"11\">\n\
             <text x=\"10\" y=\"18\" font-size=\"13\">ours / upstream vfio-pci (median latency; \
             grey: C-against-C noise band; clamped to {lo}-{hi})</text>\n"
        );
        for (i, s) in rows.iter().enumerate() {
            let y = top + row_h * i as f64;
            let r = s.ratio.unwrap_or(1.0);
            let _ = writeln!(
                o,
                "<text x=\"10\" y=\"{:.1}\">{}/{}</text>",
                y + 12.0,
                s.device,
                s.op
            );
            if let Some((a, b)) = s.band {
                let _ = writeln!(
                    o,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ddd\"/>",
                    x(a),
                    y + 1.0,
                    (x(b) - x(a)).max(1.0),
                    row_h - 2.0
                );
            }
            let colour = match s.verdict {
                Some(Verdict::Slower) if r > 1.0 => "#c0392b",
                Some(Verdict::Faster) => "#27ae60",
                _ => "#2c6fbb",
            };
            let (a, b) = if r < 1.0 {
                (x(r), x(1.0))
            } else {
                (x(1.0), x(r))
            };
            let _ = writeln!(
                o,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\">{r:.2}</text>",
                y + 4.0,
                (b - a).max(1.0),
                row_h - 8.0,
                label_w + plot_w + 8.0,
                y + 12.0
            );
        }
        let _ = writeln!(
            o,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"black\"/>\n</svg>",
            x(1.0),
            top - 4.0,
            top + row_h * rows.len() as f64
        );
        o
    }

    /// Writes the four files into `dir`.
    pub fn write(&self, dir: &Path, records: &[Record]) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let w = |name: &str, body: String| {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
        };
        w("bench.txt", self.text())?;
        w("bench.md", self.markdown())?;
        w(
            "bench.json",
            serde_json::to_string_pretty(&self.json(records))? + "\n",
        )?;
        w("ratios.svg", self.svg())?;
        Ok(())
    }
}

/// The device mask of `labels` over [`DEVICES`].
pub fn device_mask(labels: &[String]) -> Result<u32> {
    let mut m = 0u32;
    for l in labels {
        let i = DEVICES.iter().position(|d| d.label == l).with_context(|| {
            format!(
                "unknown device {l}; the guest has {}",
                DEVICES
                    .iter()
                    .map(|d| d.label)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        m |= 1 << i;
    }
    Ok(m)
}

/// Our modules' `.ko`s and upstream's from the same kernel build.
fn module_sets(kdir: &Path, kos: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let ours = kos
        .iter()
        .filter(|k| {
            let n = k
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n == "vfio_pci_common.ko" || n == "vfio_pci_generic.ko"
        })
        .cloned()
        .collect();
    let up = ["vfio-pci-core.ko", "vfio-pci.ko"]
        .iter()
        .map(|n| kdir.join("drivers/vfio/pci").join(n))
        .collect();
    (ours, up)
}

/// Runs the benchmark guest and builds the report. Returns the run's check counts, the
/// records and the report.
pub fn run(
    kdir: &Path,
    kos: &[PathBuf],
    mode: Mode,
    opts: BenchOptions,
) -> Result<(guest::Counts, Vec<Record>, Report)> {
    let run = GuestRun {
        profile: Profile::Test,
        suite: Suite::Bench(opts),
        mode,
    };
    let counts = guest::run_guest_suite(kdir, kos, &guest::Extras::default(), run)?;
    let records = counts
        .records
        .iter()
        .map(|l| Record::parse(l))
        .collect::<Result<Vec<_>>>()?;
    let (ours, up) = module_sets(kdir, kos);
    let report = Report {
        stats: analyse(&records),
        ours: module_sizes(&ours)?,
        upstream: module_sizes(&up)?,
        meta: json!({
            "rounds": opts.rounds,
            "mode": mode.name(),
            "max_ops_per_measurement": opts.max_ops,
            "kernel": kdir.display().to_string(),
            "slots": SLOTS,
        }),
    };
    Ok((counts, records, report))
}

/// `cargo xtask bench --profile OP`: one guest run in which, per device, upstream's slot and
/// ours each run OP in a loop for `secs` seconds under the guest's kernel profiler
/// (`tests/guest/src/profile.rs`); the report of each device goes to
/// `<out>/profile-<device>-<op>.txt`, Rust symbols demangled.
pub fn profile_cmd(
    kdir: Option<PathBuf>,
    op: &str,
    secs: u16,
    devices: &[String],
    mode: Mode,
    out: Option<PathBuf>,
) -> Result<bool> {
    let Some(op) = PROFILE_OPS.iter().find(|o| **o == op) else {
        bail!(
            "unknown operation {op}; --profile takes {}",
            PROFILE_OPS.join(", ")
        );
    };
    let kos = crate::modules::build_modules(kdir.clone(), Profile::Test)?;
    let kdir = crate::modules::resolve_kdir(kdir, Profile::Test)?;
    let devices = if devices.is_empty() {
        vec!["edu".to_string()]
    } else {
        devices.to_vec()
    };
    let opts = BenchOptions {
        rounds: 1,
        devices: device_mask(&devices)?,
        max_ops: 1024,
        profile: Some((op, secs)),
    };
    step(format!(
        "kernel profile of {op} on {}: upstream vfio-pci and ours, {secs} s each, mode {}",
        devices.join(", "),
        mode.name()
    ));
    let run = GuestRun {
        profile: Profile::Test,
        suite: Suite::Bench(opts),
        mode,
    };
    let counts = guest::run_guest_suite(&kdir, &kos, &guest::Extras::default(), run)?;
    let dir = out.unwrap_or_else(|| repo_root().join("target/bench"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // `<device> <report line>` or `<device> folded <slot> <stack> <count>`.
    let mut by_device: BTreeMap<String, String> = BTreeMap::new();
    let mut folded: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in &counts.profile {
        let (dev, text) = l.split_once(' ').unwrap_or((l.as_str(), ""));
        if let Some((slot, stack)) = text.strip_prefix("folded ").and_then(|t| t.split_once(' ')) {
            let body = folded
                .entry((dev.to_string(), slot.to_string()))
                .or_default();
            body.push_str(&crate::demangle::demangle_line(stack));
            body.push('\n');
            continue;
        }
        let body = by_device.entry(dev.to_string()).or_default();
        body.push_str(&crate::demangle::demangle_line(text));
        body.push('\n');
    }
    for d in &devices {
        let Some(body) = by_device.get(d) else {
            println!("no profile of {d}");
            continue;
        };
        let p = dir.join(format!("profile-{d}-{op}.txt"));
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
        println!("\n{body}");
        println!("wrote {}", p.display());
        for ((fd, slot), stacks) in &folded {
            if fd == d {
                let p = dir.join(format!("profile-{d}-{op}-{slot}.folded"));
                std::fs::write(&p, stacks).with_context(|| format!("writing {}", p.display()))?;
                println!("wrote {} (folded stacks, root first)", p.display());
            }
        }
    }
    for f in &counts.failures {
        println!("    {f}");
    }
    println!("{} passed, {} failed", counts.passed, counts.failed);
    Ok(counts.failed == 0 && !by_device.is_empty())
}

/// `cargo xtask bench`.
pub fn bench_cmd(
    kdir: Option<PathBuf>,
    rounds: u16,
    devices: &[String],
    mode: Mode,
    max_ops: u32,
    out: Option<PathBuf>,
) -> Result<bool> {
    let kos = crate::modules::build_modules(kdir.clone(), Profile::Test)?;
    let kdir = crate::modules::resolve_kdir(kdir, Profile::Test)?;
    let devices = if devices.is_empty() {
        DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect()
    } else {
        devices.to_vec()
    };
    let opts = BenchOptions {
        rounds,
        devices: device_mask(&devices)?,
        max_ops,
        profile: None,
    };
    step(format!(
        "benchmark: {rounds} rounds of upstream vfio-pci, ours and a control vfio-pci on {} \
         and a fleet of {} pci-testdevs, mode {}",
        devices.join(", "),
        guest::BENCH_FLEET,
        mode.name()
    ));
    let (counts, records, report) = run(&kdir, &kos, mode, opts)?;
    let dir = out.unwrap_or_else(|| repo_root().join("target/bench"));
    report.write(&dir, &records)?;
    println!("\n{}", report.text());
    println!(
        "wrote {}/{{bench.txt,bench.md,bench.json,ratios.svg}} ({} records)",
        dir.display(),
        records.len()
    );
    for f in &counts.failures {
        println!("    {f}");
    }
    println!("{} passed, {} failed", counts.passed, counts.failed);
    Ok(counts.failed == 0)
}

/// The short benchmark of `cargo xtask test`: the guest's checks, plus one host check that
/// the report was produced and covers every slot of every operation.
pub fn short_run(kdir: &Path, kos: &[PathBuf], mode: Mode) -> guest::Counts {
    let labels: Vec<String> = SHORT_DEVICES.iter().map(|s| s.to_string()).collect();
    let opts = BenchOptions {
        rounds: SHORT_ROUNDS,
        devices: device_mask(&labels).unwrap_or(0),
        max_ops: 256,
        profile: None,
    };
    let mut c = guest::Counts::default();
    let name = "host: bench-short-report";
    match run(kdir, kos, mode, opts) {
        Ok((gc, records, report)) => {
            c = gc;
            let dir = repo_root().join("target/bench/short");
            let missing: Vec<String> = report
                .stats
                .iter()
                .filter(|s| {
                    SLOTS
                        .iter()
                        .any(|slot| s.slots.get(*slot).is_none_or(|x| x.rounds.is_empty()))
                })
                .map(|s| format!("{}/{}", s.device, s.op))
                .collect();
            match report.write(&dir, &records) {
                Ok(()) if missing.is_empty() && !report.stats.is_empty() => {
                    println!(
                        "PASS {name} ({} operations, {})",
                        report.stats.len(),
                        dir.display()
                    );
                    print!("{}", report.text());
                    c.passed += 1;
                }
                Ok(()) => {
                    c.failed += 1;
                    c.failures.push(format!(
                        "{name}: {} operations, some slots missing: {}",
                        report.stats.len(),
                        missing.join(", ")
                    ));
                }
                Err(e) => {
                    c.failed += 1;
                    c.failures.push(format!("{name}: {e:#}"));
                }
            }
        }
        Err(e) => {
            c.failed += 1;
            c.failures.push(format!("{name}: {e:#}"));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &str, slot: &str, round: u32, samples: &[u64]) -> Record {
        Record {
            device: "edu".into(),
            op: op.into(),
            slot: slot.into(),
            round,
            unit: "ns".into(),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn parses_the_guest_record() {
        let r = Record::parse(
            r#"{"device":"edu","op":"config-read-virt","slot":"ours","round":3,"unit":"ns","samples":[1,2,3]}"#,
        )
        .unwrap();
        assert_eq!(
            (r.device.as_str(), r.op.as_str(), r.slot.as_str()),
            ("edu", "config-read-virt", "ours")
        );
        assert_eq!((r.round, r.samples.len()), (3, 3));
        assert!(Record::parse(r#"{"device":"edu"}"#).is_err());
    }

    #[test]
    fn ratio_band_and_verdict() {
        let rs = vec![
            rec("a", "upstream", 0, &[100, 100, 100]),
            rec("a", "upstream", 1, &[110]),
            rec("a", "control", 0, &[104]),
            rec("a", "control", 1, &[99]),
            rec("a", "ours", 0, &[103]),
            rec("a", "ours", 1, &[105]),
            rec("b", "upstream", 0, &[100]),
            rec("b", "control", 0, &[101]),
            rec("b", "ours", 0, &[130]),
            rec("c", "upstream", 0, &[100]),
            rec("c", "control", 0, &[100]),
            rec("c", "ours", 0, &[80]),
        ];
        let s = analyse(&rs);
        assert_eq!(s.len(), 3);
        // Round medians: upstream 100, 110 -> median of two is the upper one (110).
        assert_eq!(s[0].slots["upstream"].median, 110);
        let (lo, hi) = s[0].band.unwrap();
        assert!(lo <= 0.9 + 1e-9 && hi >= 1.04 - 1e-9, "{lo} {hi}");
        assert_eq!(s[0].verdict, Some(Verdict::Same));
        assert!(s[0].at_parity());
        assert_eq!(s[1].verdict, Some(Verdict::Slower));
        assert!(!s[1].at_parity());
        assert_eq!(s[2].verdict, Some(Verdict::Faster));
        assert!(s[2].at_parity());
    }

    #[test]
    fn reports_render() {
        let rs = vec![
            rec("a", "upstream", 0, &[100]),
            rec("a", "control", 0, &[100]),
            rec("a", "ours", 0, &[90]),
        ];
        let r = Report {
            stats: analyse(&rs),
            ours: ModuleSizes {
                modules: vec![("x".into(), 10, 2, 1)],
                largest: vec![("f".into(), 8, "x".into())],
            },
            upstream: ModuleSizes {
                modules: vec![("y".into(), 20, 2, 1)],
                largest: vec![],
            },
            meta: json!({}),
        };
        assert!(r.text().contains("0.90"));
        assert!(r.markdown().contains("| edu | a |"));
        assert!(r.svg().starts_with("<svg"));
        let j = r.json(&rs);
        assert_eq!(j["records"].as_array().unwrap().len(), 3);
        assert_eq!(j["summary"][0]["verdict"], "faster");
        assert_eq!(device_mask(&["edu".to_string()]).unwrap(), 1);
        assert!(device_mask(&["nope".to_string()]).is_err());
    }
}
