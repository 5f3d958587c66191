//! PIL's conversion of CMYK pixels to RGB (`Image.convert("RGB")` on a "CMYK" image):
//! `R = 255 − K − C·(255 − K)/255` in PIL's rounded integer arithmetic.

/// `a·b/255` rounded as PIL's `MULDIV255` macro does.
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// RGB from CMYK samples as a JPEG stores them. PIL reads every four-channel JPEG with
/// Adobe's polarity (stored value 255 − ink, rawmode `CMYK;I`), marker or not.
pub(crate) fn to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let v = |x: u8| u32::from(255 - x);
        let nk = 255 - v(p[3]);
        for &c in &p[..3] {
            out.push(nk.saturating_sub(muldiv255(v(c), nk)) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn extremes() {
        assert_eq!(super::to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(super::to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(super::to_rgb(&[0, 255, 127, 255]), [0, 255, 127]);
    }
}
