//! sha256 digests, computed while data streams by.

use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Copies `r` to `w`, returning (`sha256:HEX`, bytes copied). Never holds more than a buffer.
pub fn copy_hashing(r: &mut impl Read, w: &mut impl Write) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((format!("sha256:{:x}", h.finalize()), n))
}

/// `sha256:HEX` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// The hex part of a `sha256:HEX` digest, checked (it becomes a file name).
pub fn hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

/// Wraps a layer stream in the right decompressor, by its magic bytes.
pub fn decompress<'a>(mut r: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut magic[got..])? {
            0 => break,
            k => got += k,
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec()).chain(r);
    Ok(match &magic[..got] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(head)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::new(head)?),
        _ => Box::new(head),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_checks() {
        let (d, n) = copy_hashing(&mut &b"abc"[..], &mut std::io::sink()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex(&d).is_some());
        assert!(hex("sha256:../../etc").is_none());
    }
}
