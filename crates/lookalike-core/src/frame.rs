//! The framing shared by the record and the pool files: 8 magic bytes, u32 format version, u64 header
//! length, the JSON header, then the file's own payload.

/// What can be wrong with the framing; each file type turns it into its own error.
#[derive(Debug)]
pub(crate) enum FrameError {
    BadMagic,
    Version(u32),
    Truncated(&'static str),
}

/// Splits `n` bytes off the front of `bytes`.
pub(crate) fn take<'a>(
    bytes: &mut &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], FrameError> {
    if bytes.len() < n {
        return Err(FrameError::Truncated(what));
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

pub(crate) fn u32_at(bytes: &mut &[u8], what: &'static str) -> Result<u32, FrameError> {
    Ok(u32::from_le_bytes(
        take(bytes, 4, what)?.try_into().expect("4 bytes"),
    ))
}

pub(crate) fn u64_at(bytes: &mut &[u8], what: &'static str) -> Result<usize, FrameError> {
    Ok(u64::from_le_bytes(take(bytes, 8, what)?.try_into().expect("8 bytes")) as usize)
}

/// Magic, version and header; the payload is appended by the caller.
pub(crate) fn write_head(magic: &[u8; 8], version: u32, header: &[u8], payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + 8 + header.len() + payload);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header);
    out
}

/// Checks magic and version (one of `versions`); returns the version, the JSON header and the payload
/// after it.
pub(crate) fn read_head<'a>(
    mut bytes: &'a [u8],
    magic: &[u8; 8],
    versions: std::ops::RangeInclusive<u32>,
) -> Result<(u32, &'a [u8], &'a [u8]), FrameError> {
    if take(&mut bytes, 8, "magic").map_err(|_| FrameError::BadMagic)? != magic {
        return Err(FrameError::BadMagic);
    }
    let found = u32_at(&mut bytes, "version")?;
    if !versions.contains(&found) {
        return Err(FrameError::Version(found));
    }
    let n = u64_at(&mut bytes, "header length")?;
    let header = take(&mut bytes, n, "header")?;
    Ok((found, header, bytes))
}
