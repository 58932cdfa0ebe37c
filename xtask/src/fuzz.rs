// SPDX-License-Identifier: GPL-2.0
//! The config-space fuzz target (`common/logic/fuzz`, libFuzzer through cargo-fuzz) run for a
//! bounded time as one check of `cargo xtask test`. It needs the nightly toolchain (present in
//! this machine image beside stable; rustup cannot fetch one here) and cargo-fuzz, installed
//! from crates.io on first use. Anything missing is a failure, never a skip.

use crate::guest::Counts;
use crate::util::{repo_root, show, step, which};
use std::process::Command;
use std::time::Duration;

/// How long libFuzzer runs in the test suite.
pub const FUZZ_TIME: Duration = Duration::from_secs(20);

fn fail(c: &mut Counts, why: String) {
    println!("FAIL fuzz-config-space: {why}");
    c.failed += 1;
    c.failures.push(format!("fuzz-config-space: {why}"));
}

/// Runs the fuzz target; one check.
pub fn fuzz_check() -> Counts {
    let mut c = Counts::default();
    step(format!(
        "fuzzing the config-space emulator for {} s (cargo +nightly fuzz)",
        FUZZ_TIME.as_secs()
    ));
    let toolchains = Command::new("rustup").args(["toolchain", "list"]).output();
    let has_nightly = toolchains
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("nightly"))
        })
        .unwrap_or(false);
    if !has_nightly {
        fail(
            &mut c,
            "no nightly Rust toolchain (rustup toolchain list); cargo-fuzz needs one".into(),
        );
        return c;
    }
    if which("cargo-fuzz").is_none() {
        let mut install = Command::new("cargo");
        install.args(["install", "--locked", "cargo-fuzz"]);
        println!("    $ {}", show(&install));
        match install.status() {
            Ok(s) if s.success() => {}
            other => {
                fail(&mut c, format!("installing cargo-fuzz failed: {other:?}"));
                return c;
            }
        }
    }
    let mut run = Command::new("cargo");
    run.args(["+nightly", "fuzz", "run", "config_space", "--", "-seed=1"])
        .arg(format!("-max_total_time={}", FUZZ_TIME.as_secs()))
        .current_dir(repo_root().join("common/logic/fuzz"));
    println!("    $ {}", show(&run));
    match run.output() {
        Ok(o) if o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let runs = err
                .lines()
                .rev()
                .find(|l| l.starts_with("Done "))
                .unwrap_or("done")
                .to_string();
            println!("PASS fuzz-config-space ({runs})");
            c.passed += 1;
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().rev().take(30).collect();
            for l in tail.iter().rev() {
                println!("    {l}");
            }
            fail(
                &mut c,
                format!("libFuzzer found a problem or could not run ({})", o.status),
            );
        }
        Err(e) => fail(&mut c, format!("cannot run cargo fuzz: {e}")),
    }
    c
}
