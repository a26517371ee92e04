//! sysops: the small layer of Linux operations that the runtime, the image store and the
//! network setup all use, so that each is written once.
//!
//! - [`explain`]: how a privileged step is rendered as the shell command it stands for
//!   (`minc --explain`), with correct quoting, from the same arguments that perform it.
//! - [`lock`]: exclusive file locks (flock(2)) that guard state directories.
//! - [`container`]: the rules every crate shares about ids, hostnames and environments.
//! - [`inroot`]: paths resolved inside a root directory held as an fd (openat2(2)
//!   `RESOLVE_IN_ROOT`), for unpacking layers and for the runtime's mount targets.
//! - [`private_dir`]: directories only their owner may enter, whatever the umask.
//! - [`fs`]: files written atomically (temporary sibling + rename).
//! - [`netns`]: entering a network namespace, on a scoped thread or in the calling thread.
//! - [`copy`]: `cp -a` between two directories held as fds, never following a symlink.
//! - [`idmap`]: idmapped mounts (open_tree, mount_setattr MOUNT_ATTR_IDMAP, move_mount).
//!
//! This crate depends on no other crate of the workspace; `minc` (runtime), `images` and
//! `netsetup` depend on it. It never composes them.

pub mod container;
pub mod copy;
pub mod explain;
pub mod fs;
pub mod idmap;
pub mod inroot;
pub mod lock;
pub mod netns;
pub mod private_dir;
