//! The wallet flags shared by the commands that sign.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sv_axon::Hotkey;

#[derive(Args, Debug, Clone)]
pub struct WalletArgs {
    /// Wallet name (env WALLET_NAME).
    #[arg(long, env = "WALLET_NAME", default_value = "default")]
    pub wallet_name: String,
    /// Hotkey name (env WALLET_HOTKEY).
    #[arg(long, env = "WALLET_HOTKEY", default_value = "default")]
    pub wallet_hotkey: String,
    /// Wallets directory (default $BT_WALLET_PATH or ~/.bittensor/wallets).
    #[arg(long)]
    pub wallet_path: Option<PathBuf>,
}

impl WalletArgs {
    /// The wallets directory.
    pub fn root(&self) -> PathBuf {
        self.wallet_path
            .clone()
            .unwrap_or_else(sv_axon::keys::default_wallets_dir)
    }

    /// The hotkey file's key.
    pub fn hotkey(&self) -> Result<Hotkey> {
        Hotkey::from_wallet(&self.root(), &self.wallet_name, &self.wallet_hotkey)
            .context("reading the hotkey")
    }
}

/// The wallet of `sv-miner challenge`: a validator's, never the miner's, so it reads its
/// own variables (`CHALLENGE_WALLET_NAME`, `CHALLENGE_WALLET_HOTKEY`), not the
/// `WALLET_*` of the miner's `miner.env`.
#[derive(Args, Debug, Clone)]
pub struct ChallengerWalletArgs {
    /// Wallet name (env CHALLENGE_WALLET_NAME).
    #[arg(long, env = "CHALLENGE_WALLET_NAME", default_value = "default")]
    pub wallet_name: String,
    /// Hotkey name (env CHALLENGE_WALLET_HOTKEY).
    #[arg(long, env = "CHALLENGE_WALLET_HOTKEY", default_value = "default")]
    pub wallet_hotkey: String,
    /// Wallets directory (default $BT_WALLET_PATH or ~/.bittensor/wallets).
    #[arg(long)]
    pub wallet_path: Option<PathBuf>,
}

impl ChallengerWalletArgs {
    /// The hotkey file's key.
    pub fn hotkey(&self) -> Result<Hotkey> {
        WalletArgs {
            wallet_name: self.wallet_name.clone(),
            wallet_hotkey: self.wallet_hotkey.clone(),
            wallet_path: self.wallet_path.clone(),
        }
        .hotkey()
    }
}
