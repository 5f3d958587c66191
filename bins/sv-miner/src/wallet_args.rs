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
