//! Request verification as the SDK's axon does it, stricter: the signed message, sr25519
//! signatures (signing context `substrate`, also over the `<Bytes>…</Bytes>` wrapping),
//! the body hash of the required fields, and nonces (a window for the first one per
//! dendrite, strictly increasing after, never from the future, bounded memory).

use std::collections::{HashMap, VecDeque};

use schnorrkel::{PublicKey, Signature};
use sha3::{Digest, Sha3_256};

use crate::error::AxonError;

/// The message a dendrite signs: `"{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}"`.
pub fn signing_message(
    nonce: u64,
    dendrite_hotkey: &str,
    axon_hotkey: &str,
    uuid: &str,
    body_hash: &str,
) -> String {
    format!("{nonce}.{dendrite_hotkey}.{axon_hotkey}.{uuid}.{body_hash}")
}

/// SHA3-256 hex of `data`.
pub fn sha3_hex(data: &[u8]) -> String {
    hex::encode(Sha3_256::digest(data))
}

/// The SDK's body hash: SHA3-256 hex of the concatenated SHA3-256 hex of each required
/// field's string form (`str(value)` in Python; this takes the strings). With no required
/// fields it is the hash of the empty string.
pub fn body_hash(required_field_strings: &[&str]) -> String {
    let joined: String = required_field_strings
        .iter()
        .map(|s| sha3_hex(s.as_bytes()))
        .collect();
    sha3_hex(joined.as_bytes())
}

/// Check an sr25519 signature (`0x` + 128 hex digits) by the SS58 `hotkey` over `message`,
/// or over `<Bytes>{message}</Bytes>` as the SDK's keypair also accepts.
pub fn verify_signature(hotkey: &str, message: &str, signature: &str) -> Result<(), AxonError> {
    let (key, _) = crate::ss58::decode(hotkey)?;
    let public = PublicKey::from_bytes(&key)
        .map_err(|e| AxonError::Signature(format!("hotkey {hotkey}: {e}")))?;
    let hex_part = signature.strip_prefix("0x").unwrap_or(signature);
    let bytes =
        hex::decode(hex_part).map_err(|_| AxonError::Signature("not hexadecimal".into()))?;
    let sig = Signature::from_bytes(&bytes)
        .map_err(|e| AxonError::Signature(format!("malformed: {e}")))?;
    let ctx = schnorrkel::signing_context(b"substrate");
    let wrapped = format!("<Bytes>{message}</Bytes>");
    if public.verify(ctx.bytes(message.as_bytes()), &sig).is_ok()
        || public.verify(ctx.bytes(wrapped.as_bytes()), &sig).is_ok()
    {
        Ok(())
    } else {
        Err(AxonError::Signature(format!(
            "does not verify for hotkey {hotkey}"
        )))
    }
}

/// How old a dendrite's first nonce may be, in ns: a server constant (the SDK's 4 s
/// allowance plus its default 12 s timeout). The SDK widens the window by the request's
/// `timeout` header, which is not signed, so anyone on the path could widen it; here no
/// request field changes it.
pub const REPLAY_WINDOW_NS: u64 = 16_000_000_000;

/// The range a request's `timeout` is clamped to for its deadline, in seconds (the
/// subnet's validators use 9–12 s).
pub const TIMEOUT_RANGE_S: (f64, f64) = (1.0, 30.0);

/// A request's `timeout` header as a number of seconds: finite and not negative, else
/// `None` (the request is refused). The caller clamps it to [`TIMEOUT_RANGE_S`].
pub fn parse_timeout(header: &str) -> Option<f64> {
    header
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
}

/// The deadline budget of a request with the parsed `timeout` header (12 s without one),
/// clamped to [`TIMEOUT_RANGE_S`].
pub fn timeout_budget(timeout: Option<f64>) -> f64 {
    timeout
        .unwrap_or(12.0)
        .clamp(TIMEOUT_RANGE_S.0, TIMEOUT_RANGE_S.1)
}

/// Nonce rules per dendrite (`"{hotkey}:{uuid}"`), with at most `capacity` dendrites
/// remembered (the oldest forgotten first, so a flood of new keys cannot grow memory).
#[derive(Debug)]
pub struct NonceTracker {
    last: HashMap<String, u64>,
    order: VecDeque<String>,
    capacity: usize,
    /// Allowed age of a dendrite's first nonce, in ns ([`REPLAY_WINDOW_NS`]).
    pub window_ns: u64,
    /// How far in the future a nonce may be, in ns (clock skew; 2 s).
    pub future_ns: u64,
}

impl NonceTracker {
    /// A tracker remembering up to `capacity` dendrites.
    pub fn new(capacity: usize) -> Self {
        Self {
            last: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            window_ns: REPLAY_WINDOW_NS,
            future_ns: 2_000_000_000,
        }
    }

    /// Check `nonce` of dendrite `key` at time `now_ns`, and record it when accepted.
    pub fn check(&mut self, key: &str, nonce: u64, now_ns: u64) -> Result<(), AxonError> {
        if nonce > now_ns.saturating_add(self.future_ns) {
            return Err(AxonError::Nonce(format!(
                "{nonce} is {:.1} s in the future",
                (nonce - now_ns) as f64 / 1e9
            )));
        }
        match self.last.get(key) {
            Some(&last) if nonce <= last => {
                return Err(AxonError::Nonce(format!(
                    "{nonce} is not newer than the last one seen ({last})"
                )));
            }
            Some(_) => {}
            None => {
                let window = self.window_ns;
                if nonce < now_ns.saturating_sub(window) {
                    return Err(AxonError::Nonce(format!(
                        "{nonce} is older than the allowed {:.1} s",
                        window as f64 / 1e9
                    )));
                }
                self.order.push_back(key.to_string());
                if self.order.len() > self.capacity
                    && let Some(old) = self.order.pop_front()
                {
                    self.last.remove(&old);
                }
            }
        }
        self.last.insert(key.to_string(), nonce);
        Ok(())
    }

    /// Dendrites remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_hash_is_the_hash_of_nothing() {
        assert_eq!(
            body_hash(&[]),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
    }

    #[test]
    fn nonces_follow_the_rules_and_memory_stays_bounded() {
        let mut t = NonceTracker::new(3);
        let now = 1_000_000_000_000u64;
        assert!(t.check("a:1", now - 1_000_000_000, now).is_ok());
        assert!(t.check("a:1", now - 1_000_000_000, now).is_err(), "replay");
        assert!(t.check("a:1", now, now).is_ok());
        assert!(
            t.check("b:1", now - 20_000_000_000, now).is_err(),
            "stale first"
        );
        assert!(t.check("c:1", now + 5_000_000_000, now).is_err(), "future");
        for i in 0..100 {
            t.check(&format!("flood:{i}"), now, now).unwrap();
        }
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn the_replay_window_is_a_constant_and_timeouts_are_checked_and_clamped() {
        let now = 1_000_000_000_000_000u64;
        let mut t = NonceTracker::new(8);
        assert!(
            t.check("v:1", now - 20_000_000_000, now).is_err(),
            "20 s old"
        );
        assert!(
            t.check("v:2", now - 15_000_000_000, now).is_ok(),
            "15 s old"
        );
        assert!(
            t.check("v:3", 0, u64::MAX).is_err(),
            "no overflow at the ends"
        );
        assert!(t.check("v:4", u64::MAX, 0).is_err());
        for bad in ["nan", "NaN", "inf", "-inf", "1e400", "-1", "x", ""] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
        assert_eq!(parse_timeout("12.0"), Some(12.0));
        assert_eq!(parse_timeout(" 9 "), Some(9.0));
        assert_eq!(timeout_budget(None), 12.0);
        assert_eq!(timeout_budget(Some(0.0)), 1.0);
        assert_eq!(timeout_budget(Some(3600.0)), 30.0);
        assert_eq!(timeout_budget(Some(9.0)), 9.0);
    }
}
