//! What the resolver knows: one file per container in a network's `names/` directory (see
//! netsetup's src/dns.rs for the format), read again whenever inotify(7) says the directory
//! changed. A query is answered from the network it came in on and, when the asking container
//! is on other networks too (its id has a names file there), from those as well, so a
//! container on two networks resolves both and one on a single network only its own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One container's names file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub ips: Vec<IpAddr>,
    pub names: Vec<String>,
    pub upstream: Vec<IpAddr>,
}

/// Reads one names file's text; unknown or malformed lines are skipped.
pub fn parse(id: &str, text: &str) -> Entry {
    let mut e = Entry {
        id: id.into(),
        ..Default::default()
    };
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("ip"), Some(a)) => e.ips.extend(a.parse::<IpAddr>().ok()),
            (Some("name"), Some(n)) => e.names.push(n.to_ascii_lowercase()),
            (Some("upstream"), Some(a)) => e.upstream.extend(a.parse::<IpAddr>().ok()),
            _ => {}
        }
    }
    e
}

/// A network's names directory, as last read.
#[derive(Debug, Default)]
pub struct Dir {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    /// Read again before the next lookup.
    pub dirty: bool,
    /// The inotify watch on it (-1: none, so every lookup reads it).
    pub wd: i32,
}

/// At most this many entries, and bytes per file: the files are netsetup's, but the resolver
/// still refuses to grow without bound.
const MAX_ENTRIES: usize = 65536;
const MAX_FILE: u64 = 64 * 1024;

impl Dir {
    pub fn new(path: PathBuf, wd: i32) -> Dir {
        Dir {
            path,
            entries: Vec::new(),
            dirty: true,
            wd,
        }
    }

    fn fresh(&mut self) -> &[Entry] {
        if self.dirty || self.wd < 0 {
            self.entries = read_dir(&self.path);
            self.dirty = false;
        }
        &self.entries
    }
}

fn read_dir(path: &Path) -> Vec<Entry> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str() else { continue };
        if id.starts_with('.') || v.len() >= MAX_ENTRIES {
            continue;
        }
        let ok = e
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE);
        if let (true, Ok(text)) = (ok, std::fs::read_to_string(e.path())) {
            v.push(parse(id, &text));
        }
    }
    // Answers in a stable order: by container id.
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The names of this network and, for containers on several networks, of the others.
pub struct Book {
    /// The network this resolver serves.
    pub own: Dir,
    /// Where every network's directory is (`DATA/net`), and this one's name.
    pub networks: PathBuf,
    pub network: String,
    /// Other networks' names directories, read when first needed.
    pub others: BTreeMap<String, Dir>,
}

/// What a lookup found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Addresses of the name (empty: the name is unknown).
    pub ips: Vec<IpAddr>,
    /// Whether the name is known at all (it may lack the family asked for).
    pub known: bool,
}

impl Book {
    /// The entry of the container that sent from `from`, on this network.
    pub fn querier(&mut self, from: &IpAddr) -> Option<Entry> {
        self.own
            .fresh()
            .iter()
            .find(|e| e.ips.contains(from))
            .cloned()
    }

    /// The other networks the container `id` is on.
    fn networks_of(&self, id: &str) -> Vec<String> {
        std::fs::read_dir(&self.networks)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| *n != self.network && !n.starts_with('.'))
            .filter(|n| self.networks.join(n).join("names").join(id).is_file())
            .collect()
    }

    /// Every directory a query from `querier` may be answered from. `watch` adds an inotify
    /// watch for a directory read for the first time (-1 if it cannot).
    fn dirs(
        &mut self,
        querier: Option<&Entry>,
        watch: &mut dyn FnMut(&Path) -> i32,
    ) -> Vec<String> {
        let Some(q) = querier else {
            return Vec::new();
        };
        let nets = self.networks_of(&q.id);
        for n in &nets {
            if !self.others.contains_key(n) {
                let p = self.networks.join(n).join("names");
                let wd = watch(&p);
                self.others.insert(n.clone(), Dir::new(p, wd));
            }
        }
        nets
    }

    /// The addresses of `name` (lowercase, no final dot) for a query from `querier`.
    pub fn lookup(
        &mut self,
        querier: Option<&Entry>,
        name: &str,
        watch: &mut dyn FnMut(&Path) -> i32,
    ) -> Found {
        let mut f = Found::default();
        let mut take = |entries: &[Entry]| {
            for e in entries.iter().filter(|e| e.names.iter().any(|n| n == name)) {
                f.known = true;
                for ip in &e.ips {
                    if !f.ips.contains(ip) {
                        f.ips.push(*ip);
                    }
                }
            }
        };
        take(self.own.fresh());
        for n in self.dirs(querier, watch) {
            if let Some(d) = self.others.get_mut(&n) {
                take(d.fresh());
            }
        }
        f
    }

    /// The first name of the container with address `ip`, among what `querier` may see.
    pub fn reverse(
        &mut self,
        querier: Option<&Entry>,
        ip: &IpAddr,
        watch: &mut dyn FnMut(&Path) -> i32,
    ) -> Option<String> {
        let find = |entries: &[Entry]| {
            entries
                .iter()
                .find(|e| e.ips.contains(ip))
                .and_then(|e| e.names.first().cloned())
        };
        if let Some(n) = find(self.own.fresh()) {
            return Some(n);
        }
        for n in self.dirs(querier, watch) {
            if let Some(found) = self.others.get_mut(&n).and_then(|d| find(d.fresh())) {
                return Some(found);
            }
        }
        None
    }

    /// Marks the directory of watch `wd` for reading again.
    pub fn changed(&mut self, wd: i32) {
        if self.own.wd == wd {
            self.own.dirty = true;
        }
        for d in self.others.values_mut() {
            if d.wd == wd {
                d.dirty = true;
            }
        }
    }

    /// Marks everything for reading again (the inotify queue overflowed).
    pub fn all_changed(&mut self) {
        self.own.dirty = true;
        for d in self.others.values_mut() {
            d.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, net: &str, id: &str, text: &str) {
        let d = dir.join(net).join("names");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(id), text).unwrap();
    }

    #[test]
    fn names_of_every_network_the_asker_is_on() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(
            root,
            "a",
            "c1",
            "ip 10.78.0.2\nip fd00::2\nname web\nname svc\n",
        );
        write(
            root,
            "a",
            "c2",
            "ip 10.78.0.3\nname client\nname SVC\nbogus line\n",
        );
        write(root, "b", "c3", "ip 10.79.0.2\nname db\n");
        write(root, "b", "c2", "ip 10.79.0.3\nname client\n");
        let mut book = Book {
            own: Dir::new(root.join("a/names"), -1),
            networks: root.into(),
            network: "a".into(),
            others: BTreeMap::new(),
        };
        let mut no_watch = |_: &Path| -1;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // c1 is on a only: a's names, not b's.
        let c1 = book.querier(&ip("10.78.0.2"));
        assert_eq!(c1.as_ref().map(|e| e.id.as_str()), Some("c1"));
        let f = book.lookup(c1.as_ref(), "svc", &mut no_watch);
        assert_eq!(f.ips, vec![ip("10.78.0.2"), ip("fd00::2"), ip("10.78.0.3")]);
        assert!(!book.lookup(c1.as_ref(), "db", &mut no_watch).known);
        // c2 is on both.
        let c2 = book.querier(&ip("10.78.0.3"));
        assert_eq!(
            book.lookup(c2.as_ref(), "db", &mut no_watch).ips,
            vec![ip("10.79.0.2")]
        );
        assert_eq!(
            book.reverse(c2.as_ref(), &ip("10.79.0.2"), &mut no_watch)
                .as_deref(),
            Some("db")
        );
        assert_eq!(
            book.reverse(c1.as_ref(), &ip("10.79.0.2"), &mut no_watch),
            None
        );
        // The host (no entry) sees the network's own names only.
        assert!(!book.lookup(None, "db", &mut no_watch).known);
        // A change is seen without a restart.
        fs::remove_file(root.join("a/names/c1")).unwrap();
        assert_eq!(book.lookup(None, "web", &mut no_watch), Found::default());
        let e = parse("x", "upstream 192.0.2.53\nip nonsense\n");
        assert_eq!((e.upstream.len(), e.ips.len()), (1, 0));
    }
}
