//! The operations layer: every privileged step netsetup takes is an [`Op`] value.
//!
//! The same value is rendered as the shell command that does the step (`--explain`, through
//! `sysops::explain`) and performed by a [`System`]: the kernel ([`crate::kernel::Kernel`]:
//! rtnetlink, nf_tables netlink, /proc/sys, mount(2), files) or, in unit tests, a fake that
//! records the steps and keeps a small model of links and tables. Because the command is built
//! from the arguments that are performed, the transcript cannot drift from what happens, and
//! pasted into a fresh namespace it makes the same links, addresses, routes, sysctls and nft
//! table (tests/e2e/explain_replay_net.rs checks that).
//!
//! What a [`System`] can also answer are the questions netsetup asks before acting (does the
//! bridge exist, what MTU has the default route, which revision is the nft table at), so the
//! decisions — and so the logic of attach and detach — run the same against the fake.

use crate::nft::{self, Family};
use crate::{Error, Protocol};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use sysops::explain::{self, Cmd};

/// Where `ip netns` keeps named namespaces; `ip -n NAME` opens `/run/netns/NAME`.
pub const IP_NETNS_DIR: &str = "/run/netns";

/// A network namespace reached by a file (a bind mount in /run/netns, or /proc/PID/ns/net).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ns(pub PathBuf);

impl Ns {
    /// `ip -n NAME` when the namespace is published where ip-netns looks; otherwise
    /// `nsenter --net=PATH ip`.
    fn ip(&self) -> Cmd {
        match (self.0.parent(), self.0.file_name()) {
            (Some(dir), Some(name)) if dir == Path::new(IP_NETNS_DIR) => {
                Cmd::new("ip").arg("-n").arg(name)
            }
            _ => Cmd::new("nsenter")
                .arg(format!("--net={}", self.0.display()))
                .arg("ip"),
        }
    }

    /// The `netns` argument of `ip link add ... peer ... netns X`: a name in /run/netns, or a
    /// path (iproute2 opens either).
    fn arg(&self) -> String {
        match (self.0.parent(), self.0.file_name()) {
            (Some(dir), Some(name)) if dir == Path::new(IP_NETNS_DIR) => {
                name.to_string_lossy().into_owned()
            }
            _ => self.0.display().to_string(),
        }
    }
}

fn ip_in(ns: Option<&Ns>) -> Cmd {
    ns.map_or_else(|| Cmd::new("ip"), Ns::ip)
}

/// One privileged step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ip link add NAME [mtu N] type bridge`
    BridgeAdd { name: String, mtu: Option<u32> },
    /// `ip link set NAME alias TEXT`: the bridge's owner mark.
    LinkAlias { name: String, alias: String },
    /// `ip [-n NS] addr add|replace ADDR/LEN [broadcast B] dev DEV [nodad]`
    AddrAdd {
        ns: Option<Ns>,
        dev: String,
        addr: IpAddr,
        prefix_len: u8,
        broadcast: Option<Ipv4Addr>,
        /// `replace` (idempotent) rather than `add`.
        replace: bool,
        /// IPv6: usable at once, without duplicate address detection (IFA_F_NODAD). Every
        /// address on a minc network is handed out by minc's IPAM, so none can be taken twice,
        /// and DAD would keep it "tentative" (unusable) for a second or more.
        nodad: bool,
    },
    /// `ip [-n NS] link set DEV up`
    LinkUp { ns: Option<Ns>, dev: String },
    /// `ip link add NAME [mtu N] master BRIDGE up type veth peer name PEER [mtu N] netns NS`:
    /// the pair in one request, its peer born inside the container's namespace.
    VethAdd {
        name: String,
        mtu: Option<u32>,
        master: String,
        peer: String,
        peer_ns: Ns,
    },
    /// `ip link set DEV type bridge_slave hairpin on`
    Hairpin { dev: String },
    /// `ip [-n NS] route add default via GW dev DEV`
    DefaultRoute { ns: Ns, via: IpAddr, dev: String },
    /// `ip link del NAME` (a missing link is fine)
    LinkDel { name: String },
    /// `ip link set NAME nomaster`: off its bridge (a missing link is fine)
    LinkNomaster { name: String },
    /// `sysctl -w KEY=VALUE` (in the host's namespace)
    Sysctl { key: String, value: String },
    /// `nft -f -` with the batch's text: one transaction.
    Nft(nft::Batch),
    /// `mkdir -p DIR; touch TARGET; mount --bind SOURCE TARGET`: the namespace gets a name.
    NetnsPublish {
        source: PathBuf,
        target: PathBuf,
        /// (st_dev, st_ino) the published file must have: the namespace that was validated,
        /// not whatever the source path names by the time of the mount (PID reuse).
        expect: (u64, u64),
    },
    /// `umount -l TARGET; rm -f TARGET`
    NetnsUnpublish { target: PathBuf },
    /// `cat > PATH` with the content: written atomically (a new file renamed into place),
    /// or `in_place` (truncated and rewritten: a file bind-mounted into a running container
    /// keeps its inode, so only an in-place write reaches it).
    WriteFile {
        path: PathBuf,
        content: String,
        in_place: bool,
    },
    /// `rm -f PATH`
    RemoveFile { path: PathBuf },
    /// `setsid -f PROGRAM ARGS...`: a network's resolver, on its own, listening on `listen`
    /// (UDP and TCP). netsetup binds the two sockets itself, so a taken address is its error,
    /// and hands them over as systemd does (`LISTEN_FDS=2`, fds 3 and 4); the program binds
    /// them itself when started by hand. Its PID and start time go to `pid_file`.
    ResolverStart {
        program: PathBuf,
        args: Vec<String>,
        listen: SocketAddr,
        pid_file: PathBuf,
    },
    /// `kill PID; rm -f PID_FILE`: the resolver whose identity `pid_file` recorded (pid and
    /// start time, so a reused PID is never signalled), waited for.
    ResolverStop {
        pid: i32,
        start: u64,
        pid_file: PathBuf,
    },
}

impl Op {
    /// The shell commands this step stands for, in order.
    pub fn commands(&self) -> Vec<Cmd> {
        match self {
            Op::BridgeAdd { name, mtu } => vec![Cmd::new("ip")
                .args(["link", "add"])
                .arg(name)
                .args(mtu_args(*mtu))
                .args(["type", "bridge"])],
            Op::LinkAlias { name, alias } => vec![Cmd::new("ip")
                .args(["link", "set"])
                .arg(name)
                .arg("alias")
                .arg(alias)],
            Op::AddrAdd {
                ns,
                dev,
                addr,
                prefix_len,
                broadcast,
                replace,
                nodad,
            } => vec![ip_in(ns.as_ref())
                .args(addr.is_ipv6().then_some("-6"))
                .arg("addr")
                .arg(if *replace { "replace" } else { "add" })
                .arg(format!("{addr}/{prefix_len}"))
                .args(
                    broadcast
                        .map(|b| ["broadcast".to_string(), b.to_string()])
                        .into_iter()
                        .flatten(),
                )
                .arg("dev")
                .arg(dev)
                .args(nodad.then_some("nodad"))],
            Op::LinkUp { ns, dev } => {
                vec![ip_in(ns.as_ref()).args(["link", "set"]).arg(dev).arg("up")]
            }
            Op::VethAdd {
                name,
                mtu,
                master,
                peer,
                peer_ns,
            } => vec![Cmd::new("ip")
                .args(["link", "add"])
                .arg(name)
                .args(mtu_args(*mtu))
                .arg("master")
                .arg(master)
                .arg("up")
                .args(["type", "veth", "peer", "name"])
                .arg(peer)
                .args(mtu_args(*mtu))
                .arg("netns")
                .arg(peer_ns.arg())],
            Op::Hairpin { dev } => vec![Cmd::new("ip").args(["link", "set"]).arg(dev).args([
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])],
            Op::DefaultRoute { ns, via, dev } => vec![ns
                .ip()
                .args(via.is_ipv6().then_some("-6"))
                .args(["route", "add", "default", "via"])
                .arg(via.to_string())
                .arg("dev")
                .arg(dev)],
            Op::LinkDel { name } => vec![Cmd::new("ip").args(["link", "del"]).arg(name)],
            Op::LinkNomaster { name } => vec![Cmd::new("ip")
                .args(["link", "set"])
                .arg(name)
                .arg("nomaster")
                .note("the namespace is gone: the kernel deletes the pair with it")],
            Op::Sysctl { key, value } => {
                vec![Cmd::new("sysctl").arg("-w").arg(format!("{key}={value}"))]
            }
            Op::Nft(b) => vec![Cmd::new("nft").args(["-f", "-"]).stdin(b.text())],
            Op::NetnsPublish { source, target, .. } => {
                let dir = target.parent().unwrap_or(Path::new("/"));
                vec![
                    Cmd::new("mkdir").arg("-p").arg(dir),
                    Cmd::new("touch").arg(target),
                    Cmd::new("mount").arg("--bind").arg(source).arg(target),
                ]
            }
            Op::NetnsUnpublish { target } => vec![
                Cmd::new("umount").arg("-l").arg(target),
                Cmd::new("rm").arg("-f").arg(target),
            ],
            Op::WriteFile { path, content, .. } => vec![explain::write_file(path, content)],
            Op::RemoveFile { path } => vec![Cmd::new("rm").arg("-f").arg(path)],
            Op::ResolverStart { program, args, .. } => vec![Cmd::new("setsid")
                .arg("-f")
                .arg(program)
                .args(args)
                .note("the network's resolver, on its own (netsetup binds its sockets and passes them, LISTEN_FDS=2)")],
            Op::ResolverStop { pid, pid_file, .. } => vec![
                Cmd::new("kill").arg(pid.to_string()),
                Cmd::new("rm").arg("-f").arg(pid_file),
            ],
        }
    }
}

fn mtu_args(mtu: Option<u32>) -> Vec<String> {
    mtu.map(|m| vec!["mtu".into(), m.to_string()])
        .unwrap_or_default()
}

/// What a link looks like, as far as netsetup asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub up: bool,
    pub alias: Option<String>,
}

/// Performs steps and answers questions: the kernel, or a fake.
pub trait System {
    /// Performs the steps in order; stops at the first failure.
    fn perform(&mut self, steps: &[Op]) -> Result<(), Error>;
    /// A link by name, in a namespace or the host's.
    fn link(&mut self, ns: Option<&Ns>, name: &str) -> Result<Option<LinkInfo>, Error>;
    /// The MTU of the interface the host's default route leaves by.
    fn default_route_mtu(&mut self) -> Result<Option<u32>, Error>;
    /// A sysctl of the host's namespace (`net.ipv4.ip_forward`).
    fn sysctl(&mut self, key: &str) -> Result<Option<String>, Error>;
    /// A chain of minc's table of `family`: None when there is no such chain (or table),
    /// else its comment, if any.
    fn nft_chain(&mut self, family: Family, chain: &str) -> Result<Option<Option<String>>, Error>;
    /// Elements of a set or map of minc's table as (key, data) bytes: the one with `key`,
    /// or all of them.
    fn nft_elements(
        &mut self,
        family: Family,
        set: &str,
        key: Option<&nft::Value>,
    ) -> Result<nft::Elements, Error>;
    /// The destinations of the host's routes (to find a free subnet, and refuse one in use).
    fn routes(&mut self) -> Result<Vec<ipnet::IpNet>, Error>;
    /// Whether a socket could be bound to `port` on `ip` (or on every address) right now:
    /// None, or the errno of the bind (EADDRINUSE: a process on the host holds the port;
    /// EADDRNOTAVAIL: `ip` is not one of the host's addresses).
    fn probe_port(&mut self, proto: Protocol, ip: Option<IpAddr>, port: u16) -> Option<i32>;
}

/// Renders the steps (when explaining), then performs them.
pub fn run(sys: &mut dyn System, steps: Vec<Op>) -> Result<(), Error> {
    if steps.is_empty() {
        return Ok(());
    }
    if explain::enabled() {
        for s in &steps {
            for c in s.commands() {
                c.emit();
            }
        }
    }
    sys.perform(&steps)
}

/// The steps as one shell script (what the tests compare).
#[cfg(test)]
pub fn script(steps: &[Op]) -> String {
    steps
        .iter()
        .flat_map(Op::commands)
        .map(|c| c.render() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_runnable_ip_lines() {
        let ns = Ns("/run/netns/minc-abc".into());
        let steps = vec![
            Op::BridgeAdd {
                name: "minc0".into(),
                mtu: Some(1500),
            },
            Op::AddrAdd {
                ns: None,
                dev: "minc0".into(),
                addr: "10.77.0.1".parse().unwrap(),
                prefix_len: 16,
                broadcast: Some("10.77.255.255".parse().unwrap()),
                replace: true,
                nodad: false,
            },
            Op::AddrAdd {
                ns: Some(ns.clone()),
                dev: "eth0".into(),
                addr: "fd00::2".parse().unwrap(),
                prefix_len: 64,
                broadcast: None,
                replace: false,
                nodad: true,
            },
            Op::VethAdd {
                name: "veth01".into(),
                mtu: Some(1500),
                master: "minc0".into(),
                peer: "eth0".into(),
                peer_ns: ns.clone(),
            },
            Op::DefaultRoute {
                ns: ns.clone(),
                via: "10.77.0.1".parse().unwrap(),
                dev: "eth0".into(),
            },
            Op::LinkUp {
                ns: Some(Ns("/proc/42/ns/net".into())),
                dev: "lo".into(),
            },
            Op::NetnsPublish {
                source: "/proc/42/ns/net".into(),
                target: "/run/netns/minc-abc".into(),
                expect: (0, 0),
            },
            Op::LinkAlias {
                name: "minc0".into(),
                alias: "minc /var/lib/minc/net".into(),
            },
        ];
        assert_eq!(
            script(&steps),
            "ip link add minc0 mtu 1500 type bridge\n\
             ip addr replace 10.77.0.1/16 broadcast 10.77.255.255 dev minc0\n\
             ip -n minc-abc -6 addr add fd00::2/64 dev eth0 nodad\n\
             ip link add veth01 mtu 1500 master minc0 up type veth peer name eth0 mtu 1500 netns minc-abc\n\
             ip -n minc-abc route add default via 10.77.0.1 dev eth0\n\
             nsenter --net=/proc/42/ns/net ip link set lo up\n\
             mkdir -p /run/netns\n\
             touch /run/netns/minc-abc\n\
             mount --bind /proc/42/ns/net /run/netns/minc-abc\n\
             ip link set minc0 alias 'minc /var/lib/minc/net'\n"
        );
    }

    #[test]
    fn nft_renders_a_complete_heredoc() {
        let m: crate::PortMapping = "8080:8000".parse().unwrap();
        let b = nft::Batch(
            crate::rules::published(&m, "10.77.0.2".parse().unwrap(), None)
                .iter()
                .map(crate::rules::Published::add)
                .collect(),
        );
        assert_eq!(
            script(&[Op::Nft(b)]),
            "nft -f - <<'EOF'\nadd element inet minc tcp4 { 8080 : 10.77.0.2 . 8000 }\nEOF\n"
        );
    }

    #[test]
    fn resolver_start_is_a_runnable_command() {
        let op = Op::ResolverStart {
            program: "/d/.bin/minc-resolver-1".into(),
            args: vec!["--listen".into(), "10.78.0.1:53".into()],
            listen: "10.78.0.1:53".parse().unwrap(),
            pid_file: "/d/n/resolver.pid".into(),
        };
        assert!(script(&[op]).starts_with(
            "setsid -f /d/.bin/minc-resolver-1 --listen 10.78.0.1:53   # the network's resolver"
        ));
        let stop = Op::ResolverStop {
            pid: 42,
            start: 7,
            pid_file: "/d/n/resolver.pid".into(),
        };
        assert_eq!(script(&[stop]), "kill 42\nrm -f /d/n/resolver.pid\n");
    }
}
