//! sr25519 hotkeys: read from the key files btcli and the SDK write
//! (`<wallets>/<name>/hotkeys/<hotkey>`, JSON), made from a seed, and used to sign.

use std::path::{Path, PathBuf};

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, SecretKey};
use serde::Deserialize;

use crate::error::AxonError;

/// An sr25519 keypair with its SS58 address (prefix 42).
#[derive(Clone)]
pub struct Hotkey {
    pair: Keypair,
    seed: Option<[u8; 32]>,
    /// SS58 address.
    pub ss58: String,
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hotkey({})", self.ss58)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    secret_phrase: Option<String>,
    secret_seed: Option<String>,
    private_key: Option<String>,
    ss58_address: Option<String>,
}

impl Hotkey {
    /// From a 32-byte mini secret (substrate's seed; `Keypair.create_from_seed`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let mini = MiniSecretKey::from_bytes(seed).expect("32 bytes");
        let mut key = Self::from_pair(mini.expand_to_keypair(ExpansionMode::Ed25519));
        key.seed = Some(*seed);
        key
    }

    /// From a BIP-39 mnemonic as substrate derives it (no password):
    /// PBKDF2-HMAC-SHA512 over the entropy, salt `"mnemonic"`, 2048 rounds.
    pub fn from_phrase(phrase: &str) -> Result<Self, AxonError> {
        let mnemonic = bip39::Mnemonic::parse_normalized(phrase)
            .map_err(|e| AxonError::Key(format!("mnemonic: {e}")))?;
        let entropy = mnemonic.to_entropy();
        let mut seed = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&entropy, b"mnemonic", 2048, &mut seed);
        Ok(Self::from_seed(seed[..32].try_into().expect("32 bytes")))
    }

    /// From the 64-byte secret key (`privateKey` of a key file).
    pub fn from_secret_key(bytes: &[u8]) -> Result<Self, AxonError> {
        let secret = SecretKey::from_bytes(bytes)
            .map_err(|e| AxonError::Key(format!("private key: {e}")))?;
        Ok(Self::from_pair(secret.to_keypair()))
    }

    fn from_pair(pair: Keypair) -> Self {
        let ss58 = crate::ss58::encode(&pair.public.to_bytes(), 42);
        Self {
            pair,
            seed: None,
            ss58,
        }
    }

    /// The 32-byte mini secret, when the key was made from one (seed or mnemonic).
    pub fn seed(&self) -> Option<[u8; 32]> {
        self.seed
    }

    /// The 64-byte secret key (a key file's `privateKey`).
    pub fn secret_key_bytes(&self) -> [u8; 64] {
        self.pair.secret.to_bytes()
    }

    /// The 32-byte public key.
    pub fn public(&self) -> [u8; 32] {
        self.pair.public.to_bytes()
    }

    /// Sign `message` (signing context `substrate`) as `0x` + hex.
    pub fn sign(&self, message: &[u8]) -> String {
        format!("0x{}", hex::encode(self.sign_bytes(message)))
    }

    /// Sign `message` (signing context `substrate`): the 64 signature bytes, as a
    /// transaction carries them.
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        let ctx = schnorrkel::signing_context(b"substrate");
        self.pair.sign(ctx.bytes(message)).to_bytes()
    }

    /// Read an unencrypted key file (`secretPhrase` before `secretSeed` before
    /// `privateKey`, as the SDK reads them); the file's `ss58Address`, when present, must
    /// match the key.
    pub fn from_key_file(path: &Path) -> Result<Self, AxonError> {
        let text =
            std::fs::read(path).map_err(|e| AxonError::Key(format!("{}: {e}", path.display())))?;
        if text.starts_with(b"$NACL")
            || text.starts_with(b"$ANSIBLE_VAULT")
            || text.starts_with(b"gAAAAA")
        {
            return Err(AxonError::Key(format!(
                "{}: the key file is encrypted; hotkeys are read unencrypted",
                path.display()
            )));
        }
        Self::from_key_data(&text, &path.display().to_string())
    }

    /// Read the JSON of an unencrypted (or decrypted) key file; `source` names it in errors.
    pub fn from_key_data(text: &[u8], source: &str) -> Result<Self, AxonError> {
        let at = |m: String| AxonError::Key(format!("{source}: {m}"));
        let file: KeyFile =
            serde_json::from_slice(text).map_err(|e| at(format!("not a key file: {e}")))?;
        let key = if let Some(phrase) = file.secret_phrase.as_deref().filter(|p| !p.is_empty()) {
            Self::from_phrase(phrase).map_err(|e| at(e.to_string()))?
        } else if let Some(seed) = file.secret_seed.as_deref().filter(|s| !s.is_empty()) {
            Self::from_seed(
                &seed_bytes(seed).ok_or_else(|| at("secretSeed is not 32 bytes".into()))?,
            )
        } else if let Some(private) = file.private_key.as_deref().filter(|s| !s.is_empty()) {
            let bytes = hex::decode(private.trim_start_matches("0x"))
                .map_err(|_| at("privateKey is not hexadecimal".into()))?;
            Self::from_secret_key(&bytes).map_err(|e| at(e.to_string()))?
        } else {
            return Err(at("no secretPhrase, secretSeed or privateKey".into()));
        };
        if let Some(address) = &file.ss58_address
            && address != &key.ss58
        {
            return Err(at(format!(
                "ss58Address {address} does not match the key's address {}",
                key.ss58
            )));
        }
        Ok(key)
    }

    /// Read the hotkey `hotkey` of wallet `name` under `wallets` (btcli's layout).
    pub fn from_wallet(wallets: &Path, name: &str, hotkey: &str) -> Result<Self, AxonError> {
        Self::from_key_file(&wallets.join(name).join("hotkeys").join(hotkey))
    }
}

/// `0x` + 64 hex digits, or (as the SDK stores a seed given in hex) `0x` followed by the
/// 32 raw bytes as characters.
fn seed_bytes(seed: &str) -> Option<[u8; 32]> {
    let body = seed.strip_prefix("0x").unwrap_or(seed);
    if body.len() == 64
        && let Ok(bytes) = hex::decode(body)
    {
        return bytes.try_into().ok();
    }
    let raw: Vec<u8> = body
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<_>>()?;
    raw.try_into().ok()
}

/// The wallets directory: `$BT_WALLET_PATH`, else `~/.bittensor/wallets`.
pub fn default_wallets_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("BT_WALLET_PATH") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".bittensor").join("wallets")
}
