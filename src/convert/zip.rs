//! The part of the zip format PyTorch checkpoints use: a central directory of stored (uncompressed)
//! entries, zip64 when large. Compressed entries are refused: PyTorch never writes them, and
//! refusing them means an entry's size on disk is its size, so nothing can expand.

use crate::error::{Error, Result};

/// End of central directory record: fixed part; the tail read holds it, the longest comment, and
/// the zip64 locator (20 bytes) and end record (56) before it.
pub const EOCD_BYTES: u64 = 22;
pub const MAX_TAIL: u64 = EOCD_BYTES + 0xffff + 20 + 56;
/// Bytes of a local file header before its name and extra field.
pub const LOCAL_HEADER_BYTES: usize = 30;
/// Bounds on the directory (a checkpoint has a few entries per tensor).
const MAX_DIRECTORY_BYTES: u64 = 64 << 20;
const MAX_ENTRIES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    pub local_header: u64,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!("the checkpoint is not a valid PyTorch zip archive: {msg}"))
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Finds the central directory from the file's last bytes (`tail`, which ends at `file_len`):
/// returns its offset and length.
pub fn directory(tail: &[u8], file_len: u64) -> Result<(u64, u64)> {
    let tail_start = file_len - tail.len() as u64;
    let eocd = (0..=tail.len().saturating_sub(EOCD_BYTES as usize))
        .rev()
        .find(|&i| tail.len() >= i + 22 && u32_at(tail, i) == 0x0605_4b50)
        .ok_or_else(|| bad("no end-of-directory record (truncated?)"))?;
    let mut size = u32_at(tail, eocd + 12) as u64;
    let mut offset = u32_at(tail, eocd + 16) as u64;
    if (size == 0xffff_ffff || offset == 0xffff_ffff) && eocd >= 20 && u32_at(tail, eocd - 20) == 0x0706_4b50 {
        // zip64: the locator points at the zip64 end record, which we need in the tail too.
        let rec = u64_at(tail, eocd - 20 + 8);
        let i = rec.checked_sub(tail_start).ok_or_else(|| bad("the zip64 record is out of reach"))? as usize;
        if i + 56 > tail.len() || u32_at(tail, i) != 0x0606_4b50 {
            return Err(bad("bad zip64 end record"));
        }
        size = u64_at(tail, i + 40);
        offset = u64_at(tail, i + 48);
    }
    if size > MAX_DIRECTORY_BYTES || offset.checked_add(size).map_or(true, |end| end > file_len) {
        return Err(bad("the directory lies outside the file (truncated?)"));
    }
    Ok((offset, size))
}

/// The entries of the central directory.
pub fn entries(dir: &[u8], file_len: u64) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 46 <= dir.len() {
        if u32_at(dir, i) != 0x0201_4b50 {
            return Err(bad("a directory entry has a bad signature"));
        }
        if out.len() as u64 >= MAX_ENTRIES {
            return Err(bad("too many entries"));
        }
        let method = u16_at(dir, i + 10);
        let mut compressed = u32_at(dir, i + 20) as u64;
        let mut size = u32_at(dir, i + 24) as u64;
        let (n, m, k) = (u16_at(dir, i + 28) as usize, u16_at(dir, i + 30) as usize, u16_at(dir, i + 32) as usize);
        let mut local = u32_at(dir, i + 42) as u64;
        let end = i + 46 + n + m + k;
        if end > dir.len() {
            return Err(bad("a directory entry is cut off"));
        }
        let name = String::from_utf8(dir[i + 46..i + 46 + n].to_vec()).map_err(|_| bad("an entry name is not UTF-8"))?;
        // zip64 extra field: the 0xffffffff values, in order, as u64.
        let mut extra = &dir[i + 46 + n..i + 46 + n + m];
        while extra.len() >= 4 {
            let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
            let body = extra.get(4..4 + len).ok_or_else(|| bad("an extra field is cut off"))?;
            if id == 1 {
                let mut vals = body.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8")));
                for field in [&mut size, &mut compressed, &mut local] {
                    if *field == 0xffff_ffff {
                        *field = vals.next().ok_or_else(|| bad("a zip64 field is missing"))?;
                    }
                }
            }
            extra = &extra[4 + len..];
        }
        if method != 0 {
            return Err(bad(format!("entry '{name}' is compressed (method {method}); PyTorch stores entries uncompressed")));
        }
        if compressed != size {
            return Err(bad(format!("entry '{name}' claims {size} bytes but stores {compressed}")));
        }
        if local.checked_add(size).map_or(true, |e| e > file_len) {
            return Err(bad(format!("entry '{name}' lies outside the file (truncated?)")));
        }
        out.push(Entry { name, size, local_header: local });
        i = end;
    }
    Ok(out)
}

/// Where an entry's data starts, from its local header's first 30 bytes; checks it fits the file.
pub fn data_offset(e: &Entry, header: &[u8], file_len: u64) -> Result<u64> {
    if header.len() < LOCAL_HEADER_BYTES || u32_at(header, 0) != 0x0403_4b50 {
        return Err(bad(format!("entry '{}' has no local header where the directory says", e.name)));
    }
    if u16_at(header, 8) != 0 {
        return Err(bad(format!("entry '{}' is compressed", e.name)));
    }
    let start = e.local_header + LOCAL_HEADER_BYTES as u64 + u16_at(header, 26) as u64 + u16_at(header, 28) as u64;
    if start.checked_add(e.size).map_or(true, |end| end > file_len) {
        return Err(bad(format!("entry '{}' runs past the end of the file (truncated?)", e.name)));
    }
    Ok(start)
}
