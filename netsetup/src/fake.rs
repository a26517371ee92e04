//! A [`System`] for unit tests: records every step and keeps a small model of what the kernel
//! would hold (links, sysctls, chains and their comments, set elements), so the logic of attach
//! and detach runs without root and its decisions can be checked step by step.

use crate::nft::{self, Batch, Change, Family, Value};
use crate::ops::{LinkInfo, Ns, Op, System};
use crate::{Error, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

/// Links are keyed by (namespace path, name); `None` is the host.
type LinkKey = (Option<PathBuf>, String);

#[derive(Default)]
pub struct Fake {
    pub done: Vec<Op>,
    pub links: BTreeMap<LinkKey, LinkInfo>,
    /// veth pairs: host name -> the peer's key.
    pub peers: BTreeMap<String, LinkKey>,
    pub sysctls: BTreeMap<String, String>,
    pub chains: BTreeMap<(Family, String), Option<String>>,
    pub elements: BTreeMap<(Family, String), BTreeMap<Vec<u8>, Vec<u8>>>,
    pub default_mtu: Option<u32>,
    /// Ports a "host process" holds (every address).
    pub host_ports: BTreeSet<(Protocol, u16)>,
    /// The host's route destinations.
    pub routes: Vec<ipnet::IpNet>,
    /// Makes the first step for which it returns true fail (nothing of it is done).
    pub fail: Option<fn(&Op) -> bool>,
    next_index: u32,
}

fn injected() -> Error {
    Error::Netlink {
        what: "injected failure".into(),
        source: std::io::Error::from_raw_os_error(libc::EIO),
    }
}

impl Fake {
    pub fn new() -> Self {
        Fake {
            default_mtu: Some(1500),
            next_index: 2,
            ..Default::default()
        }
    }

    fn add_link(&mut self, key: LinkKey, mtu: Option<u32>, up: bool) -> Result<(), Error> {
        if self.links.contains_key(&key) {
            return Err(Error::Netlink {
                what: format!("link {}", key.1),
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            });
        }
        self.next_index += 1;
        self.links.insert(
            key,
            LinkInfo {
                index: self.next_index,
                mtu,
                mac: Some(format!("02:00:00:00:00:{:02x}", self.next_index)),
                up,
                alias: None,
            },
        );
        Ok(())
    }

    fn link_mut(&mut self, ns: Option<&Ns>, name: &str) -> Result<&mut LinkInfo, Error> {
        self.links
            .get_mut(&(ns.map(|n| n.0.clone()), name.to_string()))
            .ok_or_else(|| Error::Netlink {
                what: format!("link {name}"),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })
    }

    fn nft(&mut self, b: &Batch) -> Result<(), Error> {
        // A transaction: work on a copy, keep it only if every command succeeds.
        let mut chains = self.chains.clone();
        let mut elements = self.elements.clone();
        for c in &b.0 {
            let f = c.family;
            match &c.change {
                Change::AddChain { name, comment, .. } => {
                    let e = chains.entry((f, name.clone())).or_insert(None);
                    if comment.is_some() {
                        e.clone_from(comment);
                    }
                }
                Change::DeleteChain { name } => {
                    if chains.remove(&(f, name.clone())).is_none() {
                        return Err(Error::Nft(format!("{}: no such chain", c.text())));
                    }
                }
                Change::AddMap { name, .. } | Change::AddSet { name, .. } => {
                    elements.entry((f, name.clone())).or_default();
                }
                Change::AddElement { set, key, data } => {
                    let m = elements
                        .get_mut(&(f, set.clone()))
                        .ok_or_else(|| Error::Nft(format!("no set {set}")))?;
                    let d = data.as_ref().map(Value::bytes).unwrap_or_default();
                    if m.get(&key.bytes()).is_some_and(|old| *old != d) {
                        return Err(Error::Nft(format!("{}: busy", c.text())));
                    }
                    m.insert(key.bytes(), d);
                }
                Change::DeleteElement { set, key } => {
                    let gone = elements
                        .get_mut(&(f, set.clone()))
                        .and_then(|m| m.remove(&key.bytes()));
                    if gone.is_none() {
                        return Err(Error::Nft(format!("{}: no such element", c.text())));
                    }
                }
                Change::AddTable | Change::FlushChain { .. } | Change::AddRule { .. } => {}
            }
        }
        self.chains = chains;
        self.elements = elements;
        Ok(())
    }

    fn one(&mut self, op: &Op) -> Result<(), Error> {
        match op {
            Op::BridgeAdd { name, mtu } => self.add_link((None, name.clone()), *mtu, false)?,
            Op::LinkAlias { name, alias } => self.link_mut(None, name)?.alias = Some(alias.clone()),
            Op::AddrAdd { ns, dev, .. } => {
                self.link_mut(ns.as_ref(), dev)?;
            }
            Op::LinkUp { ns, dev } => {
                if dev == "lo" {
                    // Every namespace has lo.
                    let key = (ns.as_ref().map(|n| n.0.clone()), "lo".to_string());
                    self.links.entry(key).or_default().up = true;
                } else {
                    self.link_mut(ns.as_ref(), dev)?.up = true;
                }
            }
            Op::VethAdd {
                name,
                mtu,
                master,
                peer,
                peer_ns,
            } => {
                self.link_mut(None, master)?;
                let pkey = (Some(peer_ns.0.clone()), peer.clone());
                if self.links.contains_key(&pkey) {
                    return Err(Error::Netlink {
                        what: format!("link {peer}"),
                        source: std::io::Error::from_raw_os_error(libc::EEXIST),
                    });
                }
                self.add_link((None, name.clone()), *mtu, true)?;
                self.add_link(pkey.clone(), *mtu, false)?;
                self.peers.insert(name.clone(), pkey);
            }
            Op::Hairpin { dev } => {
                self.link_mut(None, dev)?;
            }
            Op::DefaultRoute { ns, dev, .. } => {
                self.link_mut(Some(ns), dev)?;
            }
            Op::LinkDel { name } => {
                self.links.remove(&(None, name.clone()));
                if let Some(p) = self.peers.remove(name) {
                    self.links.remove(&p);
                }
            }
            Op::LinkNomaster { .. } => {}
            Op::Sysctl { key, value } => {
                self.sysctls.insert(key.clone(), value.clone());
            }
            Op::Nft(b) => self.nft(b)?,
            // The name is a hard link in the test's own directory: the same file as the
            // "namespace", as a bind mount would be.
            Op::NetnsPublish { source, target, .. } => std::fs::hard_link(source, target)
                .map_err(crate::error::io_err("create", target))?,
            Op::NetnsUnpublish { target } => crate::state::remove_file(target)?,
            // Files live in the test's own directory too.
            Op::WriteFile { path, content, .. } => {
                if let Some(d) = path.parent() {
                    std::fs::create_dir_all(d).map_err(crate::error::io_err("create", d))?;
                }
                std::fs::write(path, content).map_err(crate::error::io_err("write", path))?
            }
            Op::RemoveFile { path } => crate::state::remove_file(path)?,
            // The test process stands in for the resolver: alive, and ours.
            Op::ResolverStart { pid_file, .. } => {
                let me = crate::state::ProcId::current().expect("our own stat");
                crate::state::write_atomic(
                    pid_file,
                    format!("{} {}\n", me.pid, me.start).as_bytes(),
                    0o600,
                )?
            }
            Op::ResolverStop { pid_file, .. } => crate::state::remove_file(pid_file)?,
        }
        Ok(())
    }

    /// The steps done so far, as the shell script they render to.
    pub fn script(&self) -> String {
        crate::ops::script(&self.done)
    }
}

impl System for Fake {
    fn perform(&mut self, steps: &[Op]) -> Result<(), Error> {
        for s in steps {
            if self.fail.is_some_and(|f| f(s)) {
                self.fail = None;
                return Err(injected());
            }
            self.one(s)?;
            self.done.push(s.clone());
        }
        Ok(())
    }

    fn link(&mut self, ns: Option<&Ns>, name: &str) -> Result<Option<LinkInfo>, Error> {
        Ok(self
            .links
            .get(&(ns.map(|n| n.0.clone()), name.to_string()))
            .cloned())
    }

    fn default_route_mtu(&mut self) -> Result<Option<u32>, Error> {
        Ok(self.default_mtu)
    }

    fn sysctl(&mut self, key: &str) -> Result<Option<String>, Error> {
        Ok(Some(
            self.sysctls.get(key).cloned().unwrap_or_else(|| "0".into()),
        ))
    }

    fn nft_chain(&mut self, family: Family, chain: &str) -> Result<Option<Option<String>>, Error> {
        Ok(self.chains.get(&(family, chain.to_string())).cloned())
    }

    fn nft_elements(
        &mut self,
        family: Family,
        set: &str,
        key: Option<&Value>,
    ) -> Result<nft::Elements, Error> {
        let Some(m) = self.elements.get(&(family, set.to_string())) else {
            return Ok(vec![]);
        };
        Ok(m.iter()
            .filter(|(k, _)| key.is_none_or(|want| want.bytes() == **k))
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect())
    }

    fn routes(&mut self) -> Result<Vec<ipnet::IpNet>, Error> {
        Ok(self.routes.clone())
    }

    fn probe_port(&mut self, proto: Protocol, _ip: Option<IpAddr>, port: u16) -> Option<i32> {
        self.host_ports
            .contains(&(proto, port))
            .then_some(libc::EADDRINUSE)
    }
}
