//! Signing transactions with a wallet key (sr25519, signing context `substrate`).

use subxt::PolkadotConfig;
use subxt::tx::Signer;
use subxt::utils::{AccountId32, MultiSignature};
use sv_axon::Hotkey;

/// A hotkey or coldkey as subxt's transaction signer.
pub struct KeySigner<'a> {
    key: &'a Hotkey,
}

impl<'a> KeySigner<'a> {
    /// Sign with `key`.
    pub fn new(key: &'a Hotkey) -> Self {
        Self { key }
    }
}

impl Signer<PolkadotConfig> for KeySigner<'_> {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.key.public())
    }

    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.key.sign_bytes(signer_payload))
    }
}
