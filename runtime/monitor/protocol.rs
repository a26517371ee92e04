//! The attach protocol between minc-monitor, which holds a `-t` container's pty master, and
//! its clients (`minc attach`, a foreground `minc run -t`): one message per packet of a
//! SOCK_SEQPACKET unix socket, whose first byte says what it is. Shared, as source, by the
//! monitor (runtime/monitor/main.rs) and minc (runtime/src/cli/attach.rs).

/// client → monitor: bytes for the terminal (what the person typed).
pub const INPUT: u8 = b'i';
/// client → monitor: the window size, rows then columns, each a little-endian u16.
pub const RESIZE: u8 = b'w';
/// monitor → client: bytes from the terminal.
pub const OUTPUT: u8 = b'o';
/// monitor → client: the container exited; its exit code as a little-endian i32.
pub const EXIT: u8 = b'x';
/// The largest packet either side sends (tag included).
pub const MAX_PACKET: usize = 16 * 1024;
