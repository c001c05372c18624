//! Minimal ZIP reading for statement archives: members are listed from the local file headers
//! and inflated one at a time (stored or deflate), each bounded in size.

use crate::error::{Error, Position, Result};

/// Largest member inflated into memory (bytes).
pub const MAX_MEMBER_BYTES: usize = 512 << 20;

/// One file inside a ZIP archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipMember {
    pub name: String,
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
    ])))
}

fn u32_at(b: &[u8], i: usize) -> Option<usize> {
    usize::try_from(u32::from_le_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
    .ok()
}

/// Whether the bytes start like a ZIP archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Calls `f` for each file member in order (directories skipped).
pub fn for_each_member(bytes: &[u8], mut f: impl FnMut(ZipMember) -> Result<()>) -> Result<()> {
    let bad = |at: usize, why: &str| {
        Error::syntax(
            Position::element(format!("zip offset {at}")),
            why.to_owned(),
        )
    };
    // Sizes may only be in the central directory (bit 3), so read them from there.
    let eocd = bytes
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .ok_or_else(|| bad(bytes.len(), "no end of central directory record"))?;
    let count = u16_at(bytes, eocd + 10).ok_or_else(|| bad(eocd, "truncated"))?;
    let mut cd = u32_at(bytes, eocd + 16).ok_or_else(|| bad(eocd, "truncated"))?;
    for _ in 0..count {
        if bytes.get(cd..cd + 4) != Some(b"PK\x01\x02") {
            return Err(bad(cd, "bad central directory entry"));
        }
        let method = u16_at(bytes, cd + 10).ok_or_else(|| bad(cd, "truncated"))?;
        let csize = u32_at(bytes, cd + 20).ok_or_else(|| bad(cd, "truncated"))?;
        let usize_ = u32_at(bytes, cd + 24).ok_or_else(|| bad(cd, "truncated"))?;
        let nlen = u16_at(bytes, cd + 28).ok_or_else(|| bad(cd, "truncated"))?;
        let xlen = u16_at(bytes, cd + 30).ok_or_else(|| bad(cd, "truncated"))?;
        let clen = u16_at(bytes, cd + 32).ok_or_else(|| bad(cd, "truncated"))?;
        let local = u32_at(bytes, cd + 42).ok_or_else(|| bad(cd, "truncated"))?;
        let name = String::from_utf8_lossy(
            bytes
                .get(cd + 46..cd + 46 + nlen)
                .ok_or_else(|| bad(cd, "truncated"))?,
        )
        .into_owned();
        cd += 46 + nlen + xlen + clen;
        if name.ends_with('/') {
            continue;
        }
        if bytes.get(local..local + 4) != Some(b"PK\x03\x04") {
            return Err(bad(local, "bad local file header"));
        }
        let lnlen = u16_at(bytes, local + 26).ok_or_else(|| bad(local, "truncated"))?;
        let lxlen = u16_at(bytes, local + 28).ok_or_else(|| bad(local, "truncated"))?;
        let start = local + 30 + lnlen + lxlen;
        let raw = bytes
            .get(start..start + csize)
            .ok_or_else(|| bad(start, "member data truncated"))?;
        if usize_ > MAX_MEMBER_BYTES {
            return Err(Error::limit(
                Position::element(name),
                format!("member larger than {MAX_MEMBER_BYTES} bytes"),
            ));
        }
        let data = match method {
            0 => raw.to_vec(),
            8 => miniz_oxide::inflate::decompress_to_vec_with_limit(raw, MAX_MEMBER_BYTES)
                .map_err(|e| {
                    Error::syntax(
                        Position::element(name.clone()),
                        format!("bad deflate data: {e:?}"),
                    )
                })?,
            m => {
                return Err(Error::Unsupported(format!(
                    "zip member {name}: compression method {m}"
                )));
            }
        };
        f(ZipMember { name, data })?;
    }
    Ok(())
}
