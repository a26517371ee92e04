//! The uncompressed stream of a layer or archive as the tar parser reads it: decompressed
//! (gzip or zstd, by magic bytes), bounded (a 5 MB gzip can expand to terabytes), hashed
//! (the diff_id is the sha256 of the uncompressed tar), and, where the writer stopped right
//! after the last entry's data (umoci `insert` does), padded to the 512-byte block the tar
//! parser expects. The padding is never hashed and never taken as file data.
//!
//! One more guard: the tar crate reads a GNU long name or long link and a pax extended
//! header wholly into memory, however large the header says it is. [`HeaderGuard`] follows
//! the archive's block structure as the parser will and refuses such a header above 1 MiB
//! before the parser starts on it (a 10 GiB "long name" would otherwise be read into RAM).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// What happened to a stream, readable while the parser holds it.
#[derive(Debug, Default)]
pub struct Meter {
    exceeded: Cell<bool>,
    padded: Cell<u64>,
}

impl Meter {
    /// The size bound was hit.
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// Zero bytes supplied past the real end of the stream.
    pub fn padded(&self) -> u64 {
        self.padded.get()
    }
}

/// Reads at most `limit` bytes of `inner`; one more is an error (and sets the meter).
pub struct Limited<R> {
    inner: R,
    left: u64,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte past the limit: if it comes, the stream is too large.
        let want = buf.len().min(self.left.saturating_add(1) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.meter.exceeded.set(true);
            return Err(io::Error::other("size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reader that hashes what passes through.
pub struct Hashing<R> {
    pub inner: R,
    hash: Sha256,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    /// Reads what is left (so the digest covers the whole stream) and returns
    /// `sha256:HEX`.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{:x}", self.hash.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// After the real end, zeros up to the next 512-byte boundary (then the end): a tar whose
/// writer left out the padding of the last entry and the end-of-archive blocks parses.
pub struct EndPad<R> {
    pub inner: R,
    pos: u64,
    pad: u64,
    ended: bool,
    meter: Rc<Meter>,
}

impl<R: Read> Read for EndPad<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.ended {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.pos += n as u64;
                return Ok(n);
            }
            self.ended = true;
            self.pad = (512 - self.pos % 512) % 512;
        }
        let n = buf.len().min(self.pad as usize);
        buf[..n].fill(0);
        self.pad -= n as u64;
        self.meter.padded.set(self.meter.padded.get() + n as u64);
        Ok(n)
    }
}

/// Extended headers (long names, pax records) larger than this are refused.
pub const MAX_EXTENDED_HEADER: u64 = 1 << 20;

/// Follows a tar stream's headers as the tar crate will (pax `size` overrides, GNU sparse
/// extension blocks included) and fails a read that brings in the header of a GNU long
/// name, long link or pax extension larger than [`MAX_EXTENDED_HEADER`]. It never changes
/// the bytes; on a header it cannot parse it stands aside and lets the parser report it.
pub struct HeaderGuard<R> {
    pub inner: R,
    pos: u64,
    /// Where the next 512-byte header block starts.
    next: u64,
    hdr: [u8; 512],
    hdr_len: usize,
    /// A pax header's records being collected (to find a `size` override).
    pax: Option<(Vec<u8>, u64)>,
    /// The `size` a pax header gave the next entry.
    pax_size: Option<u64>,
    /// GNU sparse extension blocks follow, then `sparse_data` bytes of data.
    sparse_ext: bool,
    sparse_data: u64,
    off: bool,
}

impl<R> HeaderGuard<R> {
    pub fn new(inner: R) -> HeaderGuard<R> {
        HeaderGuard {
            inner,
            pos: 0,
            next: 0,
            hdr: [0; 512],
            hdr_len: 0,
            pax: None,
            pax_size: None,
            sparse_ext: false,
            sparse_data: 0,
            off: false,
        }
    }

    fn scan(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() && !self.off {
            if self.pos < self.next {
                let k = bytes.len().min((self.next - self.pos) as usize);
                if let Some((buf, want)) = &mut self.pax {
                    let take = k.min((*want - buf.len() as u64) as usize);
                    buf.extend_from_slice(&bytes[..take]);
                }
                self.pos += k as u64;
                bytes = &bytes[k..];
                continue;
            }
            let k = bytes.len().min(512 - self.hdr_len);
            self.hdr[self.hdr_len..self.hdr_len + k].copy_from_slice(&bytes[..k]);
            self.hdr_len += k;
            self.pos += k as u64;
            bytes = &bytes[k..];
            if self.hdr_len == 512 {
                self.hdr_len = 0;
                self.header()?;
            }
        }
        Ok(())
    }

    /// A whole header block arrived (it starts at `self.next`).
    fn header(&mut self) -> io::Result<()> {
        let h = self.hdr;
        let start = self.next;
        if let Some((buf, _)) = self.pax.take() {
            self.pax_size = pax_size(&buf);
        }
        if self.sparse_ext {
            self.sparse_ext = h[504] != 0;
            self.next = start
                + 512
                + if self.sparse_ext {
                    0
                } else {
                    round(self.sparse_data)
                };
            return Ok(());
        }
        if h.iter().all(|b| *b == 0) {
            self.next = start + 512;
            return Ok(());
        }
        let Some(mut size) = numeric(&h[124..136]) else {
            self.off = true;
            return Ok(());
        };
        let ustar = &h[257..265] == b"ustar\x0000";
        let gnu = &h[257..265] == b"ustar  \0";
        let kind = h[156];
        let extension = matches!(kind, b'x' | b'g' | b'L' | b'K');
        if (ustar || gnu) && matches!(kind, b'x' | b'L' | b'K') {
            if size > MAX_EXTENDED_HEADER {
                return Err(io::Error::other(format!(
                    "a tar extended header (type {}) of {size} bytes, more than {MAX_EXTENDED_HEADER}",
                    kind as char
                )));
            }
            if kind == b'x' {
                self.pax = Some((Vec::with_capacity(size as usize), size));
            }
        } else if !extension {
            if let Some(p) = self.pax_size.take() {
                size = p;
            }
        } else {
            self.pax_size = None;
        }
        if gnu && kind == b'S' && h[482] != 0 {
            self.sparse_ext = true;
            self.sparse_data = size;
            self.next = start + 512;
        } else {
            self.next = start + 512 + round(size);
        }
        Ok(())
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

fn round(n: u64) -> u64 {
    n.saturating_add(511) & !511
}

/// A tar numeric field: octal text, or base-256 when the top bit of the first byte is set.
fn numeric(f: &[u8]) -> Option<u64> {
    if f[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for (i, b) in f.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
    let text = std::str::from_utf8(&f[..end]).ok()?.trim();
    u64::from_str_radix(text, 8).ok()
}

/// The `size` record of a pax header, as the tar crate reads it (the first one).
fn pax_size(records: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(records) {
        let ext = ext.ok()?;
        if ext.key() == Ok("size") {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

/// The tar stream of a blob: decompressed, at most `limit` bytes, hashed, end-padded, its
/// extended headers bounded.
pub type TarStream<'a> = HeaderGuard<EndPad<Hashing<Limited<Box<dyn Read + 'a>>>>>;

/// Wraps a blob (compressed or not) for the tar parser; the meter tells whether the limit
/// was hit and whether padding was supplied.
pub fn tar_stream<'a>(blob: impl Read + 'a, limit: u64) -> io::Result<(TarStream<'a>, Rc<Meter>)> {
    let meter = Rc::new(Meter::default());
    let stream = crate::digest::decompress(blob)?;
    let limited = Limited {
        inner: stream,
        left: limit,
        meter: meter.clone(),
    };
    let pad = EndPad {
        inner: Hashing::new(limited),
        pos: 0,
        pad: 0,
        ended: false,
        meter: meter.clone(),
    };
    Ok((HeaderGuard::new(pad), meter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_hashed_and_padded() {
        let data = vec![7u8; 700];
        let (mut s, meter) = tar_stream(&data[..], 1000).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1024, "padded to the block");
        assert_eq!(meter.padded(), 324);
        let digest = s.inner.inner.finish().unwrap();
        let (want, _) = crate::digest::copy_hashing(&mut &data[..], &mut io::sink()).unwrap();
        assert_eq!(digest, want, "the padding is not hashed");

        let (mut s, meter) = tar_stream(&data[..], 699).unwrap();
        assert!(s.read_to_end(&mut Vec::new()).is_err());
        assert!(meter.exceeded());
        let (mut s, meter) = tar_stream(&data[..], 700).unwrap();
        s.read_to_end(&mut Vec::new()).unwrap();
        assert!(!meter.exceeded(), "exactly the limit is fine");
    }

    /// A tar whose GNU long name claims `size` bytes.
    fn long_name_header(size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(size);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn huge_extended_headers_are_refused_before_they_are_read() {
        let mut data = long_name_header(8 << 30);
        data.extend(vec![b'a'; 1 << 16]);
        let (s, _) = tar_stream(&data[..], u64::MAX).unwrap();
        let mut ar = tar::Archive::new(s);
        let e = ar.entries().unwrap().next().unwrap().err().unwrap();
        assert!(e.to_string().contains("extended header"), "{e}");

        // Ordinary archives pass untouched: long names, pax records (with a size override),
        // and data in between.
        let mut b = tar::Builder::new(Vec::new());
        let long = "n/".repeat(300) + "file";
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("size", &b"5"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_path("pax-sized").unwrap();
        h.set_cksum();
        b.append(&h, &b"hello"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "last", &b"zz"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let (s, _) = tar_stream(&data[..], u64::MAX).unwrap();
        let mut ar = tar::Archive::new(s);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            seen.push((e.path().unwrap().display().to_string(), body));
        }
        assert_eq!(
            seen,
            [
                (long, "abc".to_string()),
                ("pax-sized".into(), "hello".into()),
                ("last".into(), "zz".into())
            ]
        );
    }
}
