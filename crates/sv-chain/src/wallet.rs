//! Wallets as btcli and the Python `bittensor-wallet` keep them:
//! `<root>/<name>/coldkey`, `coldkeypub.txt`, `hotkeys/<hotkey>`, files of mode 0600.
//!
//! An encrypted coldkey is `$NACL` + a 24-byte nonce + an XSalsa20-Poly1305 secretbox
//! whose key is Argon2i v1.3 (8 passes, 512 MiB, 32 bytes) of the password with a fixed
//! salt. The password comes from `SV_WALLET_PASSWORD`, from the variable the Python
//! package sets (`BT_PW_<path>`, obfuscated as it writes it), or from a prompt on a
//! terminal — never from a command-line flag.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use serde_json::json;
use sv_axon::keys::Hotkey;

use crate::error::ChainError;

/// The fixed Argon2 salt of NaCl-encrypted key files.
const NACL_SALT: [u8; 16] = [
    0x13, 0x71, 0x83, 0xdf, 0xf1, 0x5a, 0x09, 0xbc, 0x9c, 0x90, 0xb5, 0x51, 0x87, 0x39, 0xe9, 0xb1,
];

/// The environment variable read first for a coldkey password.
pub const PASSWORD_ENV: &str = "SV_WALLET_PASSWORD";

/// Where a coldkey password comes from.
#[derive(Debug, Clone)]
pub enum Password {
    /// This password (for library callers and tests).
    Given(String),
    /// `SV_WALLET_PASSWORD`, else the Python package's `BT_PW_<path>` variable, else a
    /// prompt when standard input is a terminal.
    FromEnvironment,
}

/// One wallet: `<root>/<name>`.
#[derive(Debug, Clone)]
pub struct Wallet {
    /// The wallets directory.
    pub root: PathBuf,
    /// The wallet's name.
    pub name: String,
}

impl Wallet {
    /// Wallet `name` under `root`.
    pub fn new(root: &Path, name: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// Wallet `name` under `$BT_WALLET_PATH` or `~/.bittensor/wallets`.
    pub fn named(name: &str) -> Self {
        Self::new(&sv_axon::keys::default_wallets_dir(), name)
    }

    /// The wallet's directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// The path of hotkey `hotkey`.
    pub fn hotkey_path(&self, hotkey: &str) -> PathBuf {
        self.dir().join("hotkeys").join(hotkey)
    }

    /// Read hotkey `hotkey` (unencrypted, as btcli writes hotkeys).
    pub fn hotkey(&self, hotkey: &str) -> Result<Hotkey, ChainError> {
        Ok(Hotkey::from_key_file(&self.hotkey_path(hotkey))?)
    }

    /// The coldkey's SS58 address from `coldkeypub.txt` (no password needed).
    pub fn coldkeypub(&self) -> Result<String, ChainError> {
        let path = self.dir().join("coldkeypub.txt");
        let text = std::fs::read(&path)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| ChainError::Key(format!("{}: not a key file: {e}", path.display())))?;
        let address = v["ss58Address"]
            .as_str()
            .ok_or_else(|| ChainError::Key(format!("{}: no ss58Address", path.display())))?;
        sv_axon::ss58::decode(address)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
        Ok(address.to_string())
    }

    /// Read (and when encrypted, decrypt) the coldkey.
    pub fn coldkey(&self, password: &Password) -> Result<Hotkey, ChainError> {
        let path = self.dir().join("coldkey");
        let data = std::fs::read(&path)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
        let plain = if data.starts_with(b"$NACL") {
            let pw = match password {
                Password::Given(p) => p.clone(),
                Password::FromEnvironment => password_from_environment(&path)?,
            };
            decrypt_nacl(&data, &pw)
                .ok_or_else(|| ChainError::WrongPassword(path.display().to_string()))?
        } else if data.starts_with(b"$ANSIBLE_VAULT") || data.starts_with(b"gAAAAA") {
            return Err(ChainError::Unsupported(format!(
                "{}: a legacy encrypted coldkey (Ansible Vault or Fernet); re-encrypt it with \
                 `btcli wallet update` first",
                path.display()
            )));
        } else {
            data
        };
        let key = Hotkey::from_key_data(&plain, &path.display().to_string())?;
        if let Ok(public) = self.coldkeypub()
            && public != key.ss58
        {
            return Err(ChainError::Key(format!(
                "{}: the coldkey is {} but coldkeypub.txt says {public}",
                path.display(),
                key.ss58
            )));
        }
        Ok(key)
    }

    /// Make a new hotkey `hotkey` from a fresh 12-word mnemonic and write its file (mode
    /// 0600, atomically); refuses to replace an existing one unless `overwrite`. Returns
    /// the key and its mnemonic (show it once: it is the only backup).
    pub fn create_hotkey(
        &self,
        hotkey: &str,
        overwrite: bool,
    ) -> Result<(Hotkey, String), ChainError> {
        let mut entropy = [0u8; 16];
        getrandom::getrandom(&mut entropy)
            .map_err(|e| ChainError::Write(format!("no randomness: {e}")))?;
        let mnemonic = bip39::Mnemonic::from_entropy(&entropy)
            .map_err(|e| ChainError::Write(format!("mnemonic: {e}")))?
            .to_string();
        let key = Hotkey::from_phrase(&mnemonic)?;
        self.write_hotkey(hotkey, &key, Some(&mnemonic), overwrite)?;
        Ok((key, mnemonic))
    }

    /// The public file of hotkey `hotkey`: `hotkeys/<hotkey>pub.txt`, as
    /// bittensor-wallet writes it beside the key.
    pub fn hotkeypub_path(&self, hotkey: &str) -> PathBuf {
        self.dir().join("hotkeys").join(format!("{hotkey}pub.txt"))
    }

    /// Write `key` as hotkey `hotkey` in the key-file JSON btcli reads, and its public
    /// half as `<hotkey>pub.txt`, both mode 0600 as bittensor-wallet writes them.
    pub fn write_hotkey(
        &self,
        hotkey: &str,
        key: &Hotkey,
        mnemonic: Option<&str>,
        overwrite: bool,
    ) -> Result<PathBuf, ChainError> {
        let path = self.hotkey_path(hotkey);
        if path.exists() && !overwrite {
            return Err(ChainError::Write(format!(
                "{} exists; refusing to overwrite a key",
                path.display()
            )));
        }
        let public = format!("0x{}", hex::encode(key.public()));
        let mut file = json!({
            "accountId": public,
            "publicKey": public,
            "privateKey": format!("0x{}", hex::encode(key.secret_key_bytes())),
            "ss58Address": key.ss58,
            "cryptoType": 1,
        });
        if let Some(seed) = key.seed() {
            file["secretSeed"] = json!(format!("0x{}", hex::encode(seed)));
        }
        if let Some(m) = mnemonic {
            file["secretPhrase"] = json!(m);
        }
        let public_file = json!({
            "publicKey": public,
            "cryptoType": 1,
            "accountId": public,
            "ss58Address": key.ss58,
        });
        write_private(
            &self.hotkeypub_path(hotkey),
            &serde_json::to_vec(&public_file).expect("json"),
        )?;
        write_private(&path, &serde_json::to_vec(&file).expect("json"))?;
        Ok(path)
    }
}

/// The variable the Python package reads a coldkey password from: `BT_PW_` and the
/// file's absolute path with `/` and `.` as `_`, upper-cased.
pub fn python_password_var(coldkey: &Path) -> String {
    let path = std::path::absolute(coldkey).unwrap_or_else(|_| coldkey.to_path_buf());
    let flat: String = path
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' || c == '.' { '_' } else { c })
        .collect();
    format!("BT_PW_{}", flat.to_uppercase())
}

/// Decode the Python package's variable: base64 of the password XOR-ed with the name.
pub fn decode_python_password(value: &str, name: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let key = name.as_bytes();
    let plain: Vec<u8> = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % key.len()])
        .collect();
    String::from_utf8(plain).ok()
}

fn password_from_environment(coldkey: &Path) -> Result<String, ChainError> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let var = python_password_var(coldkey);
    if let Ok(v) = std::env::var(&var) {
        return decode_python_password(&v, &var).ok_or_else(|| {
            ChainError::NoPassword(format!("{var} is not a password the Python wallet wrote"))
        });
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("Password for {}: ", coldkey.display()))
            .map_err(|e| ChainError::NoPassword(format!("reading the password: {e}")));
    }
    Err(ChainError::NoPassword(format!(
        "{} is encrypted: set {PASSWORD_ENV} (or run on a terminal to be asked)",
        coldkey.display()
    )))
}

/// Open a `$NACL` file with `password`; `None` when it does not decrypt.
pub fn decrypt_nacl(data: &[u8], password: &str) -> Option<Vec<u8>> {
    let body = data.strip_prefix(b"$NACL")?;
    if body.len() < 24 + 16 {
        return None;
    }
    let (nonce, sealed) = body.split_at(24);
    let key = nacl_key(password);
    XSalsa20Poly1305::new(&key.into())
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()
}

/// Seal `data` as a `$NACL` file with `password` and a random nonce.
pub fn encrypt_nacl(data: &[u8], password: &str) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).expect("randomness");
    let key = nacl_key(password);
    let sealed = XSalsa20Poly1305::new(&key.into())
        .encrypt(Nonce::from_slice(&nonce), data)
        .expect("encrypt");
    [b"$NACL".as_slice(), &nonce, &sealed].concat()
}

/// Argon2i v1.3, 8 passes, 512 MiB, one lane: libsodium's `OPSLIMIT_SENSITIVE` /
/// `MEMLIMIT_SENSITIVE`.
fn nacl_key(password: &str) -> [u8; 32] {
    let params = Params::new(512 * 1024, 8, 1, Some(32)).expect("valid parameters");
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &NACL_SALT, &mut key)
        .expect("argon2");
    key
}

/// Write `bytes` to `path` with mode 0600 from the first byte, atomically; a planted
/// link or a stale temp file is never written through ([`sv_fs::atomic_write_private`]).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ChainError> {
    sv_fs::atomic_write_private(path, bytes)
        .map_err(|e| ChainError::Write(format!("{}: {e}", path.display())))
}
