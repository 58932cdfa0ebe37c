// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask test`: host tests, then the guest suite in each IOMMU mode, then one summary
//! line `N passed, N failed`. Anything that cannot run (no kernel, no QEMU, a guest that does
//! not finish) is a failure, never a skip.

use crate::guest::{self, Counts, Mode};
use crate::util::{repo_root, show, step};
use anyhow::Result;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `cargo test` over the host crates and adds up cargo's own `test result:` lines.
fn host_tests() -> Counts {
    step("host tests: cargo test --workspace");
    let mut counts = Counts::default();
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--color", "never"])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    println!("    $ {}", show(&cmd));
    let child = cmd.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            counts.failed += 1;
            counts.failures.push(format!("host: cannot run cargo test: {e}"));
            return counts;
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |key: &str| -> usize {
                    rest.split(';')
                        .find_map(|p| p.trim().strip_suffix(key).map(|n| n.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").to_string()))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                counts.passed += num(" passed");
                counts.failed += num(" failed");
            }
            if let Some(name) = line.strip_prefix("test ").and_then(|l| l.strip_suffix(" ... FAILED")) {
                counts.failures.push(format!("host: {name}"));
            }
        }
    }
    match child.wait() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            if counts.failures.is_empty() {
                counts.failed += 1;
                counts.failures.push(format!("host: cargo test exited with {s} (build failure?)"));
            }
        }
        Err(e) => {
            counts.failed += 1;
            counts.failures.push(format!("host: cargo test: {e}"));
        }
    }
    counts
}

fn add(total: &mut Counts, c: Counts) {
    total.passed += c.passed;
    total.failed += c.failed;
    total.failures.extend(c.failures);
}

/// The whole suite. Returns whether everything passed; the summary line is printed last.
pub fn test(kdir: Option<PathBuf>, modes: &[Mode], host: bool) -> Result<bool> {
    let start = Instant::now();
    let mut total = Counts::default();
    if host {
        add(&mut total, host_tests());
    }
    let guest_ready = crate::modules::build_modules(kdir.clone()).and_then(|kos| {
        let kdir = crate::modules::resolve_kdir(kdir)?;
        Ok((kdir, kos))
    });
    match guest_ready {
        Ok((kdir, kos)) => {
            for &mode in modes {
                step(format!("guest suite, {} mode", mode.name()));
                match guest::run_guest_suite(&kdir, &kos, mode) {
                    Ok(c) => add(&mut total, c),
                    Err(e) => {
                        total.failed += 1;
                        total.failures.push(format!("guest ({}): {e:#}", mode.name()));
                    }
                }
            }
        }
        Err(e) => {
            total.failed += 1;
            total.failures.push(format!("build: {e:#}"));
        }
    }
    println!();
    if !total.failures.is_empty() {
        println!("failures:");
        for f in &total.failures {
            println!("    {f}");
        }
    }
    println!("took {}s", start.elapsed().as_secs());
    println!("{} passed, {} failed", total.passed, total.failed);
    Ok(total.failed == 0)
}
