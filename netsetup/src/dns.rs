//! Names that resolve on a user-defined network: a small resolver per network, on the
//! network's gateway address, port 53 (UDP and TCP), as Podman's aardvark-dns listens.
//!
//! What the resolver knows is one file per connected container, `STATE/names/ID`:
//!
//! ```text
//! ip 10.78.0.2
//! ip fd4e:a2b1:7c3d:1::2
//! name web
//! name db-alias
//! upstream 192.0.2.53        (the container's --dns: where its other queries go)
//! ```
//!
//! written when the container connects and removed when it leaves, under the IPAM lock. The
//! resolver watches the directory (inotify(7)), so a connect or disconnect is seen at once
//! without a restart. It answers A and AAAA for the names of every network the asking
//! container is on (found by its source address, as aardvark-dns does: a container on two
//! networks resolves the names of both, one on a single network only its own), and forwards
//! everything else to the host's resolvers from the host's resolv.conf. It runs in the host's
//! namespace, so a loopback resolver there (systemd-resolved's 127.0.0.53) works, which a
//! container could never reach itself. On an `--internal` network it forwards nothing.
//!
//! The first container that needs it starts it ([`crate::ops::Op::ResolverStart`]) and the
//! last one to leave stops it; a network without containers has no process. The program is
//! `resolver/main.rs` in this crate, a small static binary built by build.rs and embedded
//! here, written once to `DATA/.bin/`.

use crate::error::io_err;
use crate::ops::Op;
use crate::state::{ProcId, State};
use crate::{Error, Network};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The static resolver program.
static RESOLVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minc-resolver"));

/// Where DNS clients find the resolver: the IPv4 gateway, port 53.
pub fn listen_addr(net: &Network) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(net.gateway), 53)
}

pub fn names_dir(net: &Network) -> PathBuf {
    net.state_dir().join("names")
}

pub fn names_file(net: &Network, id: &str) -> PathBuf {
    names_dir(net).join(id)
}

/// The running resolver's identity: `PID START`.
pub fn pid_file(net: &Network) -> PathBuf {
    net.state_dir().join("resolver.pid")
}

/// The resolver recorded for `net`, if it is still running.
pub fn running(net: &Network) -> Option<ProcId> {
    let text = std::fs::read_to_string(pid_file(net)).ok()?;
    let mut w = text.split_whitespace();
    let id = ProcId {
        pid: w.next()?.parse().ok()?,
        start: w.next()?.parse().ok()?,
    };
    id.alive().then_some(id)
}

/// What the resolver reads for one container.
pub fn render_names(st: &State) -> String {
    let a = &st.allocation;
    let mut s = format!("ip {}\n", a.ip);
    if let Some(ip6) = a.ip6 {
        s += &format!("ip {ip6}\n");
    }
    for n in &st.names {
        s += &format!("name {n}\n");
    }
    for u in &st.upstream {
        s += &format!("upstream {u}\n");
    }
    s
}

/// A DNS name as the resolver matches it: 1-253 characters of letters, digits, `-`, `_`
/// and dots; compared without case.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && !n.starts_with('.')
        && !n.ends_with('.')
        && !n.contains("..")
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The resolver program, written to `DATA/.bin/minc-resolver-HASH` the first time this build
/// needs it (atomically: a concurrent start sees a whole file or none).
pub fn program(net: &Network) -> Result<PathBuf, Error> {
    use sha2::Digest;
    let h = sha2::Sha256::digest(RESOLVER);
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    let dir = net.data_dir.join(".bin");
    let path = dir.join(format!("minc-resolver-{hex}"));
    if !path.exists() {
        crate::ipam::create_private_dir(&dir)?;
        sysops::fs::write_atomic(&path, RESOLVER, 0o755).map_err(io_err("write", &path))?;
    }
    Ok(path)
}

/// The resolver's command line.
pub fn args(net: &Network) -> Vec<String> {
    let mut v = vec![
        "--network".into(),
        net.name.clone(),
        "--listen".into(),
        listen_addr(net).to_string(),
        "--names".into(),
        names_dir(net).display().to_string(),
        "--networks".into(),
        net.data_dir.display().to_string(),
        "--resolv-conf".into(),
        net.host_resolv_conf.display().to_string(),
        "--pid-file".into(),
        pid_file(net).display().to_string(),
        "--subnet".into(),
        net.subnet.to_string(),
    ];
    if let Some(s6) = net.subnet6 {
        v.extend(["--subnet".into(), s6.to_string()]);
    }
    for f in &net.fallback_dns {
        v.extend(["--fallback".into(), f.to_string()]);
    }
    if net.internal {
        v.push("--no-forward".into());
    }
    v
}

/// The steps after `st` connected: its names file, and the resolver if none runs. Caller
/// holds the IPAM lock.
pub fn connect_steps(net: &Network, st: &State) -> Result<Vec<Op>, Error> {
    let dir = names_dir(net);
    crate::ipam::create_private_dir(&dir)?;
    let mut steps = vec![Op::WriteFile {
        path: names_file(net, &st.allocation.id),
        content: render_names(st),
        in_place: false,
    }];
    if running(net).is_none() {
        steps.push(Op::ResolverStart {
            program: program(net)?,
            args: args(net),
            listen: listen_addr(net),
            pid_file: pid_file(net),
        });
    }
    Ok(steps)
}

/// The steps after `id` left: its names file goes, and with the last one the resolver.
/// Caller holds the IPAM lock.
pub fn detach_steps(net: &Network, id: &str) -> Vec<Op> {
    let file = names_file(net, id);
    let mut steps = Vec::new();
    if file.exists() {
        steps.push(Op::RemoveFile { path: file.clone() });
    }
    let others = std::fs::read_dir(names_dir(net))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path() != file && !e.file_name().to_string_lossy().starts_with('.'));
    if !others {
        steps.extend(stop_steps(net));
    }
    steps
}

/// Stops the network's resolver, if one runs.
pub fn stop_steps(net: &Network) -> Vec<Op> {
    match running(net) {
        Some(id) => vec![Op::ResolverStop {
            pid: id.pid,
            start: id.start,
            pid_file: pid_file(net),
        }],
        None if pid_file(net).exists() => vec![Op::RemoveFile {
            path: pid_file(net),
        }],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a-b_c", "svc.local", "0123456789ab"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".x", "x.", "a..b", "a b", "a/b", &"x".repeat(254)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
