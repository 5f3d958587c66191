//! JPEG decoding through libjpeg-turbo's TurboJPEG API, with the settings PIL's
//! `JpegDecode` uses (accurate integer IDCT, fancy upsampling, warnings not fatal).

use std::ffi::CStr;

use turbojpeg_sys as tj;

use crate::decode::{Skip, SkipReason};

/// Progressive scans decoded at most: a hostile file of tiny scans would otherwise take
/// minutes (libjpeg-turbo's own fuzzers use the same bound). Real encoders write ≤ 10.
const SCAN_LIMIT: i32 = 500;

/// The colour model of a decoded JPEG, as PIL names the image's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    /// One channel ("L").
    Grey,
    /// Three channels ("RGB"; YCbCr converted by libjpeg).
    Rgb,
    /// Four channels ("CMYK"; YCCK converted to CMYK by libjpeg).
    Cmyk,
}

/// Pixels of a decoded JPEG: `width × height × channels` bytes.
pub(crate) struct Decoded {
    pub width: u32,
    pub height: u32,
    pub model: Model,
    pub pixels: Vec<u8>,
}

/// A TurboJPEG decompressor, destroyed on drop.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn new() -> Result<Self, Skip> {
        // SAFETY: plain constructor; null on failure.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) };
        if h.is_null() {
            return Err(Skip::new(
                SkipReason::Corrupt,
                "JPEG: libjpeg-turbo could not start a decoder",
            ));
        }
        Ok(Self(h))
    }

    fn get(&self, param: tj::TJPARAM) -> i32 {
        // SAFETY: valid handle, a known parameter.
        unsafe { tj::tj3Get(self.0, param as i32) }
    }

    fn set(&self, param: tj::TJPARAM, value: i32) {
        // SAFETY: valid handle, a known parameter; an invalid value only returns -1.
        unsafe { tj::tj3Set(self.0, param as i32, value) };
    }

    fn error(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated static or per-handle string.
        let s = unsafe { tj::tj3GetErrorStr(self.0) };
        if s.is_null() {
            return "unknown error".into();
        }
        // SAFETY: non-null and NUL-terminated, as above.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }

    /// Whether the last error was fatal (not a warning, which PIL ignores too).
    fn fatal(&self) -> bool {
        // SAFETY: valid handle.
        unsafe { tj::tj3GetErrorCode(self.0) != tj::TJERR_TJERR_WARNING as i32 }
    }
}

/// Width, height and colour model from the headers, without decoding.
pub(crate) fn header(bytes: &[u8]) -> Result<(u32, u32, Model), Skip> {
    let h = Handle::new()?;
    read_header(&h, bytes)
}

fn read_header(h: &Handle, bytes: &[u8]) -> Result<(u32, u32, Model), Skip> {
    // SAFETY: the buffer is valid for its length for the duration of the call.
    let rc = unsafe { tj::tj3DecompressHeader(h.0, bytes.as_ptr(), bytes.len() as tj::size_t) };
    if rc != 0 && h.fatal() {
        return Err(Skip::new(
            SkipReason::Corrupt,
            format!("JPEG: {}", h.error()),
        ));
    }
    let (w, ht) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if w <= 0 || ht <= 0 {
        return Err(Skip::new(
            SkipReason::Corrupt,
            "JPEG: no image size in the header",
        ));
    }
    let precision = h.get(tj::TJPARAM_TJPARAM_PRECISION);
    if precision != 8 {
        return Err(Skip::new(
            SkipReason::Corrupt,
            format!("JPEG: {precision}-bit samples are not supported (8-bit only, as PIL)"),
        ));
    }
    if h.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1 {
        return Err(Skip::new(
            SkipReason::Corrupt,
            "JPEG: lossless JPEG is not supported",
        ));
    }
    let model = match h.get(tj::TJPARAM_TJPARAM_COLORSPACE) as tj::TJCS {
        tj::TJCS_TJCS_GRAY => Model::Grey,
        tj::TJCS_TJCS_RGB | tj::TJCS_TJCS_YCbCr => Model::Rgb,
        tj::TJCS_TJCS_CMYK | tj::TJCS_TJCS_YCCK => Model::Cmyk,
        other => {
            return Err(Skip::new(
                SkipReason::Corrupt,
                format!("JPEG: unknown colour space {other}"),
            ));
        }
    };
    Ok((w as u32, ht as u32, model))
}

/// Decode a JPEG whose size was already checked against the caller's limit; with
/// `refuse_cut_scans`, the "premature end" warning (scan data cut short, grey filled in)
/// is a refusal rather than ignored as PIL ignores it.
pub(crate) fn decode(
    bytes: &[u8],
    max_pixels: u64,
    refuse_cut_scans: bool,
) -> Result<Decoded, Skip> {
    let h = Handle::new()?;
    let (width, height, model) = read_header(&h, bytes)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(Skip::new(
            SkipReason::TooLarge,
            format!("{width}×{height} exceeds the pixel limit of {max_pixels}"),
        ));
    }
    let (format, channels) = match model {
        Model::Grey => (tj::TJPF_TJPF_GRAY, 1usize),
        Model::Rgb => (tj::TJPF_TJPF_RGB, 3),
        Model::Cmyk => (tj::TJPF_TJPF_CMYK, 4),
    };
    let pitch = (width as usize)
        .checked_mul(channels)
        .filter(|p| *p <= i32::MAX as usize)
        .ok_or_else(|| Skip::new(SkipReason::TooLarge, format!("JPEG: {width} columns")))?;
    let len = pitch
        .checked_mul(height as usize)
        .ok_or_else(|| Skip::new(SkipReason::TooLarge, format!("JPEG: {width}×{height}")))?;
    let mut out = vec![0u8; len];
    // PIL's settings are TurboJPEG's defaults (accurate DCT, fancy upsampling, warnings
    // not fatal); the pixel and scan limits bound hostile files.
    h.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        i32::try_from(max_pixels).unwrap_or(i32::MAX),
    );
    h.set(tj::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT);
    // SAFETY: `out` holds `pitch × height` bytes, the size TurboJPEG writes for this
    // format at full scale; `bytes` is valid for its length.
    let rc = unsafe {
        tj::tj3Decompress8(
            h.0,
            bytes.as_ptr(),
            bytes.len() as tj::size_t,
            out.as_mut_ptr(),
            pitch as i32,
            format,
        )
    };
    if rc != 0 && h.fatal() {
        let reason = h.error();
        let kind = if reason.contains("scans") {
            SkipReason::TooLarge
        } else {
            SkipReason::Corrupt
        };
        return Err(Skip::new(kind, format!("JPEG: {reason}")));
    }
    if rc != 0 && refuse_cut_scans {
        let reason = h.error();
        // "Premature end of JPEG file", "premature end of data segment".
        if reason.to_ascii_lowercase().contains("premature end") {
            return Err(Skip::new(
                SkipReason::Truncated,
                format!("JPEG scan data is cut short ({reason})"),
            ));
        }
    }
    Ok(Decoded {
        width,
        height,
        model,
        pixels: out,
    })
}

/// What is read from the markers before the first scan: the first EXIF APP1 payload
/// (for the orientation).
pub(crate) struct Markers<'a> {
    pub exif: Option<&'a [u8]>,
}

/// Walk the marker segments up to the first start-of-scan; malformed lengths end the
/// walk (the decoder reports them).
pub(crate) fn markers(bytes: &[u8]) -> Markers<'_> {
    let mut m = Markers { exif: None };
    let mut i = 2usize; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            break;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if len < 2 {
            break;
        }
        let Some(body) = bytes.get(i + 4..i + 2 + len) else {
            break;
        };
        if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            m.exif = Some(&body[6..]);
            break;
        }
        i += 2 + len;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_not_crashed() {
        for bytes in [
            &b"\xFF\xD8"[..],
            &b"\xFF\xD8\xFF\xC0\x00\x11\x08\x00\x00\x00\x00\x03"[..],
            &b"\xFF\xD8\xFF\xE1\x00\x01"[..],
            &[0xFF, 0xD8, 0xFF, 0xFF, 0xFF][..],
        ] {
            assert!(decode(bytes, 1 << 20, false).is_err());
            let _ = markers(bytes);
        }
    }
}
