//! The receiving end of runc's `--console-socket` protocol, as an OCI client implements it
//! (containerd's shim, conmon, runc's own recvtty): listen on a unix socket, accept the
//! runtime's connection, and take the pty master it sends with SCM_RIGHTS.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A listening console socket.
pub struct ConsoleSocket {
    listener: UnixListener,
    pub path: PathBuf,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> ConsoleSocket {
        ConsoleSocket {
            listener: UnixListener::bind(path).unwrap(),
            path: path.to_path_buf(),
        }
    }

    /// Waits (bounded) for the runtime's connection and returns the master it sent and the
    /// message's data (runc sends the master's name).
    pub fn receive(&self, secs: u64) -> (OwnedFd, Vec<u8>) {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nobody connected to the console socket"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(secs)))
            .unwrap();
        let mut data = vec![0u8; 4096];
        let mut cmsg = vec![0u8; 64];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: a zeroed msghdr pointing at our buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len();
        // SAFETY: recvmsg into the buffers above.
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        data.truncate(n as usize);
        // SAFETY: walking the control messages the kernel filled in.
        unsafe {
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            assert!(!hdr.is_null(), "no descriptor came with the message");
            assert_eq!((*hdr).cmsg_level, libc::SOL_SOCKET);
            assert_eq!((*hdr).cmsg_type, libc::SCM_RIGHTS);
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(hdr) as *const i32);
            (OwnedFd::from_raw_fd(fd), data)
        }
    }
}
