//! SS58 addresses (Substrate's base58 with a Blake2b-512 checksum), simple prefixes
//! (0–63) as Bittensor uses (42).

use blake2::{Blake2b512, Digest};

use crate::error::AxonError;

const PREFIX: &[u8] = b"SS58PRE";

fn checksum(body: &[u8]) -> [u8; 2] {
    let mut h = Blake2b512::new();
    h.update(PREFIX);
    h.update(body);
    let d = h.finalize();
    [d[0], d[1]]
}

/// The 32-byte public key and the network prefix of an SS58 address.
pub fn decode(address: &str) -> Result<([u8; 32], u8), AxonError> {
    let bad = |why: &str| AxonError::Address(format!("{address:?}: {why}"));
    let raw = bs58::decode(address)
        .into_vec()
        .map_err(|_| bad("not base58"))?;
    if raw.len() != 35 {
        return Err(bad("not a 32-byte account with a one-byte prefix"));
    }
    let prefix = raw[0];
    if prefix > 63 {
        return Err(bad("two-byte prefixes are not used by Bittensor"));
    }
    if checksum(&raw[..33]) != [raw[33], raw[34]] {
        return Err(bad("checksum mismatch"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&raw[1..33]);
    Ok((key, prefix))
}

/// The SS58 address of a public key under `prefix` (0–63; Bittensor uses 42).
pub fn encode(key: &[u8; 32], prefix: u8) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(prefix & 63);
    raw.extend_from_slice(key);
    let c = checksum(&raw);
    raw.extend_from_slice(&c);
    bs58::encode(raw).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_round_trips() {
        // Substrate's well-known development account //Alice.
        let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let (key, prefix) = decode(alice).unwrap();
        assert_eq!(prefix, 42);
        assert_eq!(
            hex::encode(key),
            "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert_eq!(encode(&key, 42), alice);
        let mut broken = alice.to_string();
        broken.replace_range(10..11, "x");
        assert!(decode(&broken).is_err());
    }
}
