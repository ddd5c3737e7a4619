//! Checks of the Vorbis comments in FLAC and Ogg Vorbis headers before
//! symphonia reads them.
//!
//! symphonia 0.5's Vorbis-comment reader (`symphonia-metadata`,
//! `read_comment_no_framing`) allocates `vec![0; comment_length]` from an
//! unchecked 32-bit length, so a damaged header asks for up to 4 GiB at once
//! (the seeded mutation test found a 2.2 GB request); where the allocator
//! refuses, that is an abort, not an error. A comment can never be longer
//! than the block or packet holding it, so those lengths are checked here and
//! such files get a clear error instead. (An upstream bug to report.)

use super::audio_error;
use crate::Result;

/// Checks the Vorbis-comment lengths in `comment` (the structure after any
/// framing: vendor length, vendor, count, then length-prefixed comments),
/// the first bytes of a block or packet of `limit` bytes: no length may run
/// past `limit`. Where `comment` ends before `limit` (the file is longer than
/// what was read, or truncated), the rest is not checked: symphonia bounds
/// those reads by the block length.
fn check_comment(comment: &[u8], limit: usize) -> Result<()> {
    let bad = || audio_error("the file's tag (Vorbis comment) block is corrupt: a length runs past its end");
    let read_u32 = |pos: usize| -> Option<usize> {
        let b = comment.get(pos..pos + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let skip = |pos: usize, len: usize| pos.checked_add(len).filter(|&p| p <= limit).ok_or_else(bad);
    let Some(vendor) = read_u32(0) else { return Ok(()) };
    let mut pos = skip(4, vendor)?;
    let Some(count) = read_u32(pos) else { return Ok(()) };
    pos += 4;
    for _ in 0..count {
        let Some(len) = read_u32(pos) else { return Ok(()) };
        pos = skip(pos + 4, len)?;
    }
    Ok(())
}

/// Checks the VORBIS_COMMENT metadata blocks of a FLAC stream whose first
/// bytes are `head`. Blocks past `head` are left to symphonia.
pub(crate) fn check_flac(head: &[u8]) -> Result<()> {
    let mut pos = 4; // after "fLaC"
    while let Some(h) = head.get(pos..pos + 4) {
        let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7f);
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        pos += 4;
        if kind == 4 {
            let end = (pos + len).min(head.len());
            check_comment(&head[pos.min(end)..end], len)?;
        }
        if last {
            break;
        }
        pos += len;
    }
    Ok(())
}

/// Checks the comment header (the second packet) of the first logical
/// stream of an Ogg file held in `head`, when it is a Vorbis comment packet
/// that ends within `head`.
pub(crate) fn check_ogg(head: &[u8]) -> Result<()> {
    let mut pos = 0usize;
    let mut serial = None;
    let mut packets: Vec<Vec<u8>> = vec![Vec::new()];
    while packets.len() <= 2 {
        let Some(h) = head.get(pos..pos + 27) else { return Ok(()) };
        if &h[..4] != b"OggS" {
            return Ok(()); // not Ogg as far as we can tell; symphonia decides
        }
        let page_serial = u32::from_le_bytes([h[14], h[15], h[16], h[17]]);
        let n_segments = usize::from(h[26]);
        let Some(lacing) = head.get(pos + 27..pos + 27 + n_segments) else { return Ok(()) };
        let mut data = pos + 27 + n_segments;
        let ours = *serial.get_or_insert(page_serial) == page_serial;
        for &lace in lacing {
            let Some(seg) = head.get(data..data + usize::from(lace)) else { return Ok(()) };
            data += usize::from(lace);
            if ours {
                packets.last_mut().unwrap_or(&mut Vec::new()).extend_from_slice(seg);
                if lace < 255 {
                    packets.push(Vec::new());
                }
            }
        }
        pos = data;
    }
    if let Some(comment) = packets.get(1).and_then(|p| p.strip_prefix(b"\x03vorbis")) {
        check_comment(comment, comment.len())?;
    }
    Ok(())
}
