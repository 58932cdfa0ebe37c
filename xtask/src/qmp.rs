// SPDX-License-Identifier: GPL-2.0
//! A small QMP (QEMU Machine Protocol) client, for the guest's surprise-removal checks.
//!
//! QEMU is started with `-qmp unix:<dir>/qmp.sock,server=on,wait=off`. A guest check that needs
//! the host to unplug or re-plug a device prints one console line
//!
//! ```text
//! HOST-REQUEST qmp device_del <id>
//! HOST-REQUEST qmp device_add <id>
//! ```
//!
//! and waits (with a timeout) for the effect in its sysfs. The console loop of
//! `run_guest_suite` hands such lines to [`serve`], which connects, does the `qmp_capabilities`
//! handshake and the command, and says what it did. Only the devices of `guest::DEVICES` whose
//! `-device` argument carries `id=<label>` can be named; `device_add` re-creates the device
//! from that same argument (driver and properties as JSON strings, which QEMU 7.2's
//! `device_add` accepts as it does on the command line).
//!
//! QEMU frees an unplugged device only when the guest has ejected it, which may come a moment
//! after the device left the guest's sysfs: `device_add` is retried for a few seconds while
//! QEMU still says `Duplicate device ID`.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The console line prefix of a request from the guest.
pub const REQUEST: &str = "HOST-REQUEST qmp ";
/// How long `device_add` keeps retrying while QEMU has not freed the old device yet.
const ADD_RETRY: Duration = Duration::from_secs(20);

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `{"execute": cmd, "arguments": {k: v, ...}}` with string values.
fn command_json(cmd: &str, args: &[(String, String)]) -> String {
    let mut s = format!("{{\"execute\": {}", json_str(cmd));
    if !args.is_empty() {
        let a: Vec<String> = args
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
            .collect();
        s.push_str(&format!(", \"arguments\": {{{}}}", a.join(", ")));
    }
    s.push('}');
    s
}

/// One QMP session on a unix socket, after the handshake.
struct Session {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
}

impl Session {
    fn connect(sock: &Path) -> Result<Self> {
        let wr = UnixStream::connect(sock)
            .with_context(|| format!("connecting to QMP socket {}", sock.display()))?;
        wr.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut s = Session {
            rd: BufReader::new(wr.try_clone()?),
            wr,
        };
        let greeting = s.line()?;
        if !greeting.contains("\"QMP\"") {
            bail!("not a QMP greeting: {greeting}");
        }
        s.execute("qmp_capabilities", &[])?;
        Ok(s)
    }

    fn line(&mut self) -> Result<String> {
        let mut l = String::new();
        if self.rd.read_line(&mut l)? == 0 {
            bail!("QMP connection closed");
        }
        Ok(l.trim().to_string())
    }

    /// Sends one command; `Ok` with the `return` line, `Err` with QEMU's error. Events that
    /// arrive in between are skipped.
    fn execute(&mut self, cmd: &str, args: &[(String, String)]) -> Result<String> {
        writeln!(self.wr, "{}", command_json(cmd, args))?;
        loop {
            let l = self.line()?;
            if l.starts_with("{\"return\"") {
                return Ok(l);
            }
            if l.starts_with("{\"error\"") {
                bail!("{cmd}: {l}");
            }
        }
    }
}

/// The `-device` argument that creates the device `id` (a `DEVICES` label with `id=<label>`),
/// as QMP `device_add` arguments: `driver` first, then each `key=value`.
pub fn device_args(id: &str) -> Option<Vec<(String, String)>> {
    let d = crate::guest::DEVICES.iter().find(|d| d.label == id)?;
    d.qemu.windows(2).find_map(|w| {
        let (flag, spec) = (w[0], w[1]);
        if flag != "-device" {
            return None;
        }
        let mut parts = spec.split(',');
        let driver = parts.next()?;
        let props: Vec<(String, String)> = parts
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, "on"));
                (k.to_string(), v.to_string())
            })
            .collect();
        props.iter().any(|(k, v)| k == "id" && v == id).then(|| {
            let mut a = vec![("driver".to_string(), driver.to_string())];
            a.extend(props);
            a
        })
    })
}

/// Serves one console line if it is a request (`None` otherwise): returns what was done, or
/// why not, as one line for the log.
pub fn serve(sock: &Path, line: &str) -> Option<String> {
    let req = &line[line.find(REQUEST)? + REQUEST.len()..];
    let mut w = req.split_whitespace();
    let (cmd, id) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    let r = (|| -> Result<String> {
        let args =
            device_args(id).with_context(|| format!("no device with id={id} in guest::DEVICES"))?;
        match cmd {
            "device_del" => {
                let mut s = Session::connect(sock)?;
                s.execute("device_del", &[("id".into(), id.into())])?;
                Ok(format!("device_del {id}: accepted"))
            }
            "device_add" => {
                let start = Instant::now();
                let mut tries = 0;
                loop {
                    tries += 1;
                    let mut s = Session::connect(sock)?;
                    match s.execute("device_add", &args) {
                        Ok(_) => {
                            return Ok(format!(
                                "device_add {}: done after {tries} tries in {} ms",
                                command_json("", &args),
                                start.elapsed().as_millis()
                            ))
                        }
                        Err(e)
                            if e.to_string().contains("Duplicate")
                                && start.elapsed() < ADD_RETRY =>
                        {
                            drop(s);
                            std::thread::sleep(Duration::from_millis(250));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            _ => bail!("unknown request {cmd:?}"),
        }
    })();
    Some(match r {
        Ok(s) => format!("host QMP: {s}"),
        Err(e) => format!("host QMP: {req}: FAILED: {e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn device_add_args_come_from_the_table() {
        let a = device_args("virtio-rng").unwrap();
        assert_eq!(a[0], ("driver".to_string(), "virtio-rng-pci".to_string()));
        assert!(a.contains(&("bus".to_string(), "rp-virtio".to_string())));
        assert!(a.contains(&("id".to_string(), "virtio-rng".to_string())));
        let e = device_args("e1000e").unwrap();
        assert!(e.contains(&("romfile".to_string(), String::new())));
        // Root ports, devices without an id and unknown names cannot be named.
        assert!(device_args("rp-virtio").is_none());
        assert!(device_args("edu").is_none());
        assert!(device_args("nope").is_none());
    }

    #[test]
    fn json_is_escaped() {
        assert_eq!(
            command_json("x", &[("a".into(), "b\"c\\".into())]),
            r#"{"execute": "x", "arguments": {"a": "b\"c\\"}}"#
        );
        assert_eq!(command_json("q", &[]), r#"{"execute": "q"}"#);
    }

    /// A fake QMP server: greets, answers the handshake, refuses the first `device_add` as
    /// QEMU does while the old device still exists (with an event in between), then accepts.
    #[test]
    fn serves_requests_against_a_fake_server() {
        let dir = std::env::temp_dir().join(format!("xtask-qmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&sock);
        let l = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut adds = 0;
            for _ in 0..3 {
                let (c, _) = l.accept().unwrap();
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                writeln!(w, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 {
                    seen.push(line.trim().to_string());
                    if line.contains("device_add") {
                        adds += 1;
                        writeln!(w, r#"{{"timestamp": {{}}, "event": "X"}}"#).unwrap();
                        if adds == 1 {
                            writeln!(w, r#"{{"error": {{"class": "GenericError", "desc": "Duplicate device ID 'virtio-rng'"}}}}"#).unwrap();
                            break;
                        }
                    }
                    writeln!(w, r#"{{"return": {{}}}}"#).unwrap();
                    if !line.contains("qmp_capabilities") {
                        break;
                    }
                    line.clear();
                }
            }
            seen
        });
        let d = serve(&sock, "noise HOST-REQUEST qmp device_del virtio-rng").unwrap();
        assert!(d.contains("device_del virtio-rng: accepted"), "{d}");
        let a = serve(&sock, "HOST-REQUEST qmp device_add virtio-rng").unwrap();
        assert!(a.contains("done after 2 tries"), "{a}");
        assert!(serve(&sock, "PASS x").is_none());
        let bad = serve(&sock, "HOST-REQUEST qmp device_del rp-virtio").unwrap();
        assert!(bad.contains("FAILED"), "{bad}");
        let seen = server.join().unwrap();
        assert_eq!(seen[0], r#"{"execute": "qmp_capabilities"}"#);
        assert_eq!(
            seen[1],
            r#"{"execute": "device_del", "arguments": {"id": "virtio-rng"}}"#
        );
        assert!(seen[3].starts_with(r#"{"execute": "device_add", "arguments": {"driver": "virtio-rng-pci", "bus": "rp-virtio""#));
        assert_eq!(seen.len(), 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
