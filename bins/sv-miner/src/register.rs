//! `sv-miner register` (burned registration on chain through sv-chain, then optionally
//! the model with the operator), `sv-miner register-model` (flags onto sv-hub's
//! operator client) and `sv-miner new-hotkey` (onto sv-chain's wallet).

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
    /// The published model, `owner/name` on Hugging Face (`--model-repo` is the old
    /// spelling).
    #[arg(long = "hub-repo", alias = "model-repo", value_name = "OWNER/NAME")]
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
    check_repo(&args.model_repo)?;
    let hotkey = args.wallet.hotkey()?;
    let operator = ModelRegistration {
        base_url: &args.base_url,
        poll_seconds: args.poll_seconds,
        yes: args.yes,
    };
    operator.run(&hotkey, args.uid, &args.model_repo)
}

fn check_repo(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        bail!("--hub-repo {repo:?} is not owner/name");
    }
    Ok(())
}

/// Model registration with the subnet operator, as `register.sh` does it.
struct ModelRegistration<'a> {
    base_url: &'a str,
    poll_seconds: f64,
    yes: bool,
}

impl ModelRegistration<'_> {
    fn run(&self, hotkey: &sv_axon::Hotkey, uid: u16, model_repo: &str) -> Result<()> {
        let registration = Registration {
            uid,
            hotkey: hotkey.ss58.clone(),
            model_repo: model_repo.to_string(),
        };
        println!(
            "will register model {model_repo} for uid {uid} (hotkey {}) with {}",
            hotkey.ss58, self.base_url
        );
        sv_cli::confirm("go ahead?", self.yes, "model not registered")?;
        let mut operator = Operator::new(self.base_url);
        operator.poll_every = Duration::from_secs_f64(self.poll_seconds.max(0.01));
        let reply = operator
            .register_and_wait(
                &registration,
                |m| hotkey.sign(m),
                |state| match state {
                    State::Pending(s) => println!("status: {s}"),
                    State::Succeeded => println!("status: succeeded"),
                    State::Failed(m) => println!("status: failed ({m})"),
                },
            )
            .context("registering the model with the operator")?;
        println!("the operator answered {reply}");
        println!("model {model_repo} registered for uid {uid}");
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The wallet: its coldkey pays, its hotkey is registered.
    #[command(flatten)]
    wallet: WalletArgs,
    /// Subnet (env NETUID).
    #[arg(long, env = "NETUID", default_value_t = 72)]
    netuid: u16,
    /// Subtensor endpoint (env SUBTENSOR_CHAIN_ENDPOINT) [default: --network's].
    #[arg(long, env = "SUBTENSOR_CHAIN_ENDPOINT")]
    endpoint: Option<String>,
    /// The network as the SDK names it: finney, test, archive, local, subvortex,
    /// latent-lite, or a ws:// URL (env SUBTENSOR_NETWORK).
    #[arg(long, env = "SUBTENSOR_NETWORK", default_value = "finney")]
    network: String,
    /// Then register this published model (`owner/name` on Hugging Face) with the
    /// subnet operator for the new uid (`--model-repo` is the old spelling).
    #[arg(long = "hub-repo", alias = "model-repo", value_name = "OWNER/NAME")]
    model_repo: Option<String>,
    /// The operator's endpoint (with --hub-repo).
    #[arg(long, default_value = DEFAULT_BASE)]
    base_url: String,
    /// Seconds between operator status polls (with --hub-repo).
    #[arg(long, default_value_t = 3.0)]
    poll_seconds: f64,
    /// Do not ask before burning TAO (or before registering the model).
    #[arg(long)]
    yes: bool,
}

pub fn register(mut args: RegisterArgs) -> Result<()> {
    let endpoint = match args.endpoint.take() {
        Some(e) => e,
        None => sv_chain::network_endpoint(&args.network).with_context(|| {
            format!(
                "--network {:?} is not finney, test, archive, local, subvortex, latent-lite or a ws:// URL",
                args.network
            )
        })?,
    };
    if let Some(repo) = &args.model_repo {
        check_repo(repo)?;
    }
    let hotkey = args.wallet.hotkey()?;
    let wallet = sv_chain::Wallet::new(&args.wallet.root(), &args.wallet.wallet_name);
    let chain =
        sv_chain::BlockingSubtensor::connect(&endpoint).context("connecting to the chain")?;
    let netuid = args.netuid;
    if !chain.subnet_exists(netuid)? {
        bail!(
            "subnet {netuid} does not exist at {}; nothing was signed",
            endpoint
        );
    }
    let uid = match chain.uid_of(netuid, &hotkey.ss58)? {
        Some(uid) => {
            println!(
                "hotkey {} is already registered on subnet {netuid} as uid {uid}; nothing to burn",
                hotkey.ss58
            );
            uid
        }
        None => {
            let coldkey_ss58 = wallet
                .coldkeypub()
                .context("reading the coldkey's address")?;
            let burn = chain.burn(netuid)?;
            let balance = chain.free_balance(&coldkey_ss58)?;
            println!(
                "will register hotkey {} on subnet {netuid} at {}
  burning {} from coldkey {} (balance {})",
                hotkey.ss58,
                endpoint,
                sv_chain::format_tao(burn as u128),
                coldkey_ss58,
                sv_chain::format_tao(balance),
            );
            if balance < burn as u128 {
                bail!(
                    "the coldkey's balance {} is below the burn {}",
                    sv_chain::format_tao(balance),
                    sv_chain::format_tao(burn as u128)
                );
            }
            sv_cli::confirm(
                "burn and register?",
                args.yes,
                "not registered; nothing was spent",
            )?;
            let coldkey = wallet
                .coldkey(&sv_chain::Password::FromEnvironment)
                .context("unlocking the coldkey")?;
            let done = chain
                .burned_register(&coldkey, netuid, &hotkey.ss58)
                .context("burned_register")?;
            let Some(uid) = done.uid else {
                bail!(
                    "burned_register was finalized in block {} but the chain shows no uid for {} yet",
                    done.block,
                    hotkey.ss58
                );
            };
            println!("registered as uid {uid} (block {})", done.block);
            uid
        }
    };
    if let Some(repo) = &args.model_repo {
        ModelRegistration {
            base_url: &args.base_url,
            poll_seconds: args.poll_seconds,
            yes: args.yes,
        }
        .run(&hotkey, uid, repo)?;
    }
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
        "hotkey {} written to {} (public half: {})",
        key.ss58,
        wallet.hotkey_path(&args.wallet.wallet_hotkey).display(),
        wallet.hotkeypub_path(&args.wallet.wallet_hotkey).display()
    );
    println!("mnemonic (write it down; it is the only backup): {mnemonic}");
    Ok(())
}
