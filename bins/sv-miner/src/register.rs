//! `sv-miner register-model` (flags onto sv-hub's operator client) and `sv-miner
//! new-hotkey` (onto sv-chain's wallet).

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use sv_hub::operator::{DEFAULT_BASE, Operator, Registration, State};

use crate::wallet_args::WalletArgs;

#[derive(Args, Debug)]
pub struct RegisterModelArgs {
    /// The miner's uid on the subnet.
    #[arg(long)]
    uid: u16,
    /// The published model, `owner/name` on Hugging Face.
    #[arg(long)]
    model_repo: String,
    #[command(flatten)]
    wallet: WalletArgs,
    /// The operator's endpoint.
    #[arg(long, default_value = DEFAULT_BASE)]
    base_url: String,
    /// Do not ask before sending.
    #[arg(long)]
    yes: bool,
    /// Seconds between status polls.
    #[arg(long, default_value_t = 3.0)]
    poll_seconds: f64,
}

pub fn register_model(args: RegisterModelArgs) -> Result<()> {
    let parts: Vec<&str> = args.model_repo.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        bail!("--model-repo {:?} is not owner/name", args.model_repo);
    }
    let hotkey = args.wallet.hotkey()?;
    let registration = Registration {
        uid: args.uid,
        hotkey: hotkey.ss58.clone(),
        model_repo: args.model_repo.clone(),
    };
    println!(
        "will register model {} for uid {} (hotkey {}) with {}",
        args.model_repo, args.uid, hotkey.ss58, args.base_url
    );
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not on a terminal: pass --yes to register without being asked");
        }
        print!("go ahead? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not registered");
        }
    }
    let mut operator = Operator::new(&args.base_url);
    operator.poll_every = Duration::from_secs_f64(args.poll_seconds.max(0.01));
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let reply = operator
        .register(&registration, timestamp, |m| hotkey.sign(m))
        .context("sending the registration")?;
    println!("sent; the operator answered {reply}");
    operator
        .wait(args.uid, |state| match state {
            State::Pending(s) => println!("status: {s}"),
            State::Succeeded => println!("status: succeeded"),
            State::Failed(m) => println!("status: failed ({m})"),
        })
        .context("waiting for the registration")?;
    println!("model {} registered for uid {}", args.model_repo, args.uid);
    Ok(())
}

#[derive(Args, Debug)]
pub struct NewHotkeyArgs {
    /// The wallet, and the name of the new hotkey.
    #[command(flatten)]
    wallet: WalletArgs,
    /// Replace an existing hotkey of that name (its key is lost unless backed up).
    #[arg(long)]
    overwrite: bool,
}

pub fn new_hotkey(args: NewHotkeyArgs) -> Result<()> {
    let wallet = sv_chain::Wallet::new(&args.wallet.root(), &args.wallet.wallet_name);
    let (key, mnemonic) = wallet
        .create_hotkey(&args.wallet.wallet_hotkey, args.overwrite)
        .context("creating the hotkey")?;
    println!(
        "hotkey {} written to {}",
        key.ss58,
        wallet.hotkey_path(&args.wallet.wallet_hotkey).display()
    );
    println!("mnemonic (write it down; it is the only backup): {mnemonic}");
    Ok(())
}
