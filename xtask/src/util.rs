// SPDX-License-Identifier: GPL-2.0
//! Small helpers shared by the subcommands: announced command execution, paths, hashing.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prints a step header, so a long run reads as a list of what was done.
pub fn step(msg: impl AsRef<str>) {
    println!("==> {}", msg.as_ref());
    let _ = std::io::stdout().flush();
}

/// Renders a command the way a user could paste it into a shell.
pub fn show(cmd: &Command) -> String {
    let mut s = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("(cd {} && ", dir.display()));
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    if cmd.get_current_dir().is_some() {
        s.push(')');
    }
    s
}

/// Runs a command with inherited stdio after printing it; fails with the command line on error.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("    $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

/// Runs a command and returns its trimmed stdout; stderr is passed through.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!("`{}` failed with {}", show(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs a long command whose output goes to `log`, printing a one-line progress report every
/// `every` and the tail of the log on failure. `count` decides which lines count as a unit of
/// work (compiled objects for a kernel build).
pub fn run_logged(
    cmd: &mut Command,
    log: &Path,
    label: &str,
    every: Duration,
    count: impl Fn(&str) -> bool,
) -> Result<()> {
    println!("    $ {}  (log: {})", show(cmd), log.display());
    let mut file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    // stderr is merged into the same pipe by a shell-free trick: spawn with both piped and drain
    // stderr on a thread, so warnings appear in the log in roughly the order they happened.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", show(cmd)))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut units = 0usize;
    let mut last_line = String::new();
    let mut tail: std::collections::VecDeque<String> = Default::default();
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                writeln!(file, "{line}")?;
                if count(&line) {
                    units += 1;
                    last_line = line.trim().to_string();
                }
                tail.push_back(line);
                if tail.len() > 80 {
                    tail.pop_front();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_report.elapsed() >= every {
            last_report = Instant::now();
            println!(
                "    [{label}] {:>4}s  {units} steps done, now: {last_line}",
                start.elapsed().as_secs()
            );
            let _ = std::io::stdout().flush();
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait()?;
    println!(
        "    [{label}] finished in {}s ({units} steps), {status}",
        start.elapsed().as_secs()
    );
    if !status.success() {
        println!("---- last lines of {} ----", log.display());
        for l in &tail {
            println!("{l}");
        }
        println!("---- end ----");
        bail!("{label} failed; full log in {}", log.display());
    }
    Ok(())
}

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where caches live: `$VFIO_RS_CACHE`, else `$XDG_CACHE_HOME/vfio-pci-rs`, else
/// `~/.cache/vfio-pci-rs`. Always outside the repository, so a fresh clone reuses them.
/// A directory of the cache that belongs to this checkout only
/// (`<cache>/checkouts/<12 hex digits of the checkout's path>/<what>`), for outputs that
/// worktrees testing side by side must not share or clean up under each other.
pub fn checkout_cache(what: &str) -> PathBuf {
    let checkout = sha256_hex(repo_root().display().to_string().as_bytes());
    cache_root()
        .join("checkouts")
        .join(&checkout[..12])
        .join(what)
}

pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("VFIO_RS_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("vfio-pci-rs");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/vfio-pci-rs")
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Looks a program up on PATH plus the places our own installs put things.
pub fn which(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.push("/root/.cargo/bin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn is_root() -> bool {
    // The effective uid is the third field of the `Uid:` line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
