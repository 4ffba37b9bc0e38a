//! Hostile archives, made quickly: a zip bomb (one deflated entry of
//! zeros), a zip of a million empty entries, a tarball bomb. Crafted byte
//! by byte where a writer would be slow or would refuse.

use std::io::Write;

const PIECE: usize = 16 * 1024 * 1024;

/// A raw deflate stream of `total` zeros (rounded up to 16 MiB): one
/// compressed 16 MiB piece, sync-flushed (byte-aligned, not final), repeated
/// — a piece never refers back before its own start, so the copies chain —
/// then a final empty block. About 1 KB per MiB.
pub fn deflated_zeros(total: u64) -> Vec<u8> {
    let zeros = vec![0u8; PIECE];
    let mut piece = Vec::with_capacity(64 * 1024);
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    c.compress_vec(&zeros, &mut piece, flate2::FlushCompress::Sync)
        .expect("deflate");
    assert_eq!(c.total_in(), PIECE as u64, "the piece took all its input");
    let n = total.div_ceil(PIECE as u64);
    let mut out = Vec::with_capacity(piece.len() * n as usize + 16);
    for _ in 0..n {
        out.extend_from_slice(&piece);
    }
    let mut end = Vec::with_capacity(16);
    flate2::Compress::new(flate2::Compression::best(), false)
        .compress_vec(&[], &mut end, flate2::FlushCompress::Finish)
        .expect("final block");
    out.extend_from_slice(&end);
    out
}

fn u16le(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u32le(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn u64le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// A zip of one entry, `zeros.bin`: `real` zeros deflated, declaring
/// `declared` bytes (declare less than `real` for a zip that lies). Zip64
/// sizes, so both may pass 4 GB. The CRC is left 0: nothing should get as
/// far as checking it.
pub fn zip_bomb(real: u64, declared: u64) -> Vec<u8> {
    let data = deflated_zeros(real);
    let name = b"zeros.bin";
    let mut z = Vec::with_capacity(data.len() + 256);
    // Local header, sizes in the zip64 extra field.
    u32le(&mut z, 0x0403_4b50);
    u16le(&mut z, 45);
    u16le(&mut z, 0);
    u16le(&mut z, 8);
    u16le(&mut z, 0);
    u16le(&mut z, 0x21);
    u32le(&mut z, 0);
    u32le(&mut z, u32::MAX);
    u32le(&mut z, u32::MAX);
    u16le(&mut z, name.len() as u16);
    u16le(&mut z, 20);
    z.extend_from_slice(name);
    u16le(&mut z, 1);
    u16le(&mut z, 16);
    u64le(&mut z, declared);
    u64le(&mut z, data.len() as u64);
    z.extend_from_slice(&data);
    let cd_start = z.len();
    u32le(&mut z, 0x0201_4b50);
    u16le(&mut z, (3 << 8) | 45);
    u16le(&mut z, 45);
    u16le(&mut z, 0);
    u16le(&mut z, 8);
    u16le(&mut z, 0);
    u16le(&mut z, 0x21);
    u32le(&mut z, 0);
    u32le(&mut z, u32::MAX);
    u32le(&mut z, u32::MAX);
    u16le(&mut z, name.len() as u16);
    u16le(&mut z, 20);
    u16le(&mut z, 0);
    u16le(&mut z, 0);
    u16le(&mut z, 0);
    u32le(&mut z, 0o100644 << 16);
    u32le(&mut z, 0);
    z.extend_from_slice(name);
    u16le(&mut z, 1);
    u16le(&mut z, 16);
    u64le(&mut z, declared);
    u64le(&mut z, data.len() as u64);
    let cd_len = z.len() - cd_start;
    end_records(&mut z, 1, cd_start as u64, cd_len as u64);
    z
}

/// The end of a zip: a zip64 record and its locator, then the classic
/// record (counts saturated when they do not fit).
fn end_records(z: &mut Vec<u8>, entries: u64, cd_start: u64, cd_len: u64) {
    let rec_at = z.len() as u64;
    u32le(z, 0x0606_4b50);
    u64le(z, 44);
    u16le(z, 45);
    u16le(z, 45);
    u32le(z, 0);
    u32le(z, 0);
    u64le(z, entries);
    u64le(z, entries);
    u64le(z, cd_len);
    u64le(z, cd_start);
    u32le(z, 0x0706_4b50);
    u32le(z, 0);
    u64le(z, rec_at);
    u32le(z, 1);
    let count = u16::try_from(entries).unwrap_or(u16::MAX);
    u32le(z, 0x0605_4b50);
    u16le(z, 0);
    u16le(z, 0);
    u16le(z, count);
    u16le(z, count);
    u32le(z, u32::try_from(cd_len).unwrap_or(u32::MAX));
    u32le(z, u32::try_from(cd_start).unwrap_or(u32::MAX));
    u16le(z, 0);
}

/// A zip of `n` empty stored entries (`f0000000` ...): about 100 bytes
/// each, written in well under a second for a million.
pub fn zip_many_entries(n: u32) -> Vec<u8> {
    let mut z = Vec::with_capacity(n as usize * 100 + 1024);
    let mut cd = Vec::with_capacity(n as usize * 62);
    for i in 0..n {
        let name = format!("f{i:07}");
        let offset = z.len() as u32;
        u32le(&mut z, 0x0403_4b50);
        u16le(&mut z, 10);
        u16le(&mut z, 0);
        u16le(&mut z, 0);
        u16le(&mut z, 0);
        u16le(&mut z, 0x21);
        u32le(&mut z, 0);
        u32le(&mut z, 0);
        u32le(&mut z, 0);
        u16le(&mut z, name.len() as u16);
        u16le(&mut z, 0);
        z.extend_from_slice(name.as_bytes());
        u32le(&mut cd, 0x0201_4b50);
        u16le(&mut cd, (3 << 8) | 20);
        u16le(&mut cd, 10);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0x21);
        u32le(&mut cd, 0);
        u32le(&mut cd, 0);
        u32le(&mut cd, 0);
        u16le(&mut cd, name.len() as u16);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        u16le(&mut cd, 0);
        u32le(&mut cd, 0o100644 << 16);
        u32le(&mut cd, offset);
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_start = z.len() as u64;
    let cd_len = cd.len() as u64;
    z.extend_from_slice(&cd);
    end_records(&mut z, u64::from(n), cd_start, cd_len);
    z
}

/// A gzipped tarball of one file of `real` zeros whose header says
/// `real` bytes: the gzip stream is `deflated_zeros` behind a tar header.
/// (Tar sizes cannot lie: they frame the archive.)
pub fn tgz_bomb(real: u64) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..9].copy_from_slice(b"zeros.bin");
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{v:0width$o}", width = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], real);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    // The header as its own deflate piece, then the zeros (which also
    // make the padding and the end-of-archive blocks).
    let mut head = Vec::with_capacity(2048);
    flate2::Compress::new(flate2::Compression::best(), false)
        .compress_vec(&header, &mut head, flate2::FlushCompress::Sync)
        .expect("deflate header");
    let body = deflated_zeros(real + 1024);
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&head);
    gz.extend_from_slice(&body);
    // CRC and length of the whole (never checked before the limits bite).
    gz.write_all(&[0; 8]).expect("trailer");
    gz
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn deflated_zeros_inflate_to_zeros() {
        let d = deflated_zeros(48 << 20);
        assert!(d.len() < 100_000, "{} bytes", d.len());
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&d[..])
            .read_to_end(&mut out)
            .expect("inflate");
        assert_eq!(out.len(), 48 << 20);
        assert!(out.iter().all(|b| *b == 0));
    }
}
