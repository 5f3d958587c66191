//! `sv-miner register` (burned registration on chain through sv-chain, then optionally
//! the model with the operator), `sv-miner register-model` (flags onto sv-hub's
//! operator client) and `sv-miner new-hotkey` (onto sv-chain's wallet).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use sv_cli::Output;
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
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    json: bool,
}

pub fn register_model(args: RegisterModelArgs) -> Result<()> {
    check_repo(&args.model_repo)?;
    let hotkey = args.wallet.hotkey()?;
    let out = Output::new(args.json);
    let operator = ModelRegistration {
        base_url: &args.base_url,
        poll_seconds: args.poll_seconds,
        yes: args.yes,
        out,
    };
    let reply = operator.run(&hotkey, args.uid, &args.model_repo)?;
    out.result(&serde_json::json!({
        "uid": args.uid,
        "hotkey": hotkey.ss58,
        "hub_repo": args.model_repo,
        "operator": args.base_url,
        "reply": reply,
    }))
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
    out: Output,
}

impl ModelRegistration<'_> {
    /// Registers `model_repo` for `uid`; the operator's final answer.
    fn run(&self, hotkey: &sv_axon::Hotkey, uid: u16, model_repo: &str) -> Result<String> {
        let out = self.out;
        let registration = Registration {
            uid,
            hotkey: hotkey.ss58.clone(),
            model_repo: model_repo.to_string(),
        };
        out.line(format!(
            "will register model {model_repo} for uid {uid} (hotkey {}) with {}",
            hotkey.ss58, self.base_url
        ));
        sv_cli::confirm("go ahead?", self.yes, "model not registered")?;
        let mut operator = Operator::new(self.base_url);
        operator.poll_every = Duration::from_secs_f64(self.poll_seconds.max(0.01));
        let reply = operator
            .register_and_wait(
                &registration,
                |m| hotkey.sign(m),
                |state| match state {
                    State::Pending(s) => out.line(format!("status: {s}")),
                    State::Succeeded => out.line("status: succeeded"),
                    State::Failed(m) => out.line(format!("status: failed ({m})")),
                },
            )
            .context("registering the model with the operator")?;
        out.line(format!("the operator answered {reply}"));
        out.line(format!("model {model_repo} registered for uid {uid}"));
        Ok(reply.to_string())
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
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    json: bool,
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
    let out = Output::new(args.json);
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
    let mut block = None;
    let uid = match chain.uid_of(netuid, &hotkey.ss58)? {
        Some(uid) => {
            out.line(format!(
                "hotkey {} is already registered on subnet {netuid} as uid {uid}; nothing to burn",
                hotkey.ss58
            ));
            uid
        }
        None => {
            let coldkey_ss58 = wallet
                .coldkeypub()
                .context("reading the coldkey's address")?;
            let burn = chain.burn(netuid)?;
            let balance = chain.free_balance(&coldkey_ss58)?;
            out.line(format!(
                "will register hotkey {} on subnet {netuid} at {}
  burning {} from coldkey {} (balance {})",
                hotkey.ss58,
                endpoint,
                sv_chain::format_tao(burn as u128),
                coldkey_ss58,
                sv_chain::format_tao(balance),
            ));
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
            out.line(format!("registered as uid {uid} (block {})", done.block));
            block = Some(done.block);
            uid
        }
    };
    let mut model = None;
    if let Some(repo) = &args.model_repo {
        let reply = ModelRegistration {
            base_url: &args.base_url,
            poll_seconds: args.poll_seconds,
            yes: args.yes,
            out,
        }
        .run(&hotkey, uid, repo)?;
        model = Some(serde_json::json!({ "hub_repo": repo, "reply": reply }));
    }
    out.result(&serde_json::json!({
        "netuid": netuid,
        "hotkey": hotkey.ss58,
        "uid": uid,
        "registered_in_block": block,
        "model": model,
    }))
}

#[derive(Args, Debug)]
pub struct NewHotkeyArgs {
    /// The wallet, and the name of the new hotkey.
    #[command(flatten)]
    wallet: WalletArgs,
    /// Replace an existing hotkey of that name (its key is lost unless backed up).
    #[arg(long)]
    overwrite: bool,
    /// Print the result as JSON on standard output (other lines go to standard error).
    #[arg(long)]
    json: bool,
}

pub fn new_hotkey(args: NewHotkeyArgs) -> Result<()> {
    let wallet = sv_chain::Wallet::new(&args.wallet.root(), &args.wallet.wallet_name);
    let (key, mnemonic) = wallet
        .create_hotkey(&args.wallet.wallet_hotkey, args.overwrite)
        .context("creating the hotkey")?;
    let out = Output::new(args.json);
    let path = wallet.hotkey_path(&args.wallet.wallet_hotkey);
    let public = wallet.hotkeypub_path(&args.wallet.wallet_hotkey);
    out.line(format!(
        "hotkey {} written to {} (public half: {})",
        key.ss58,
        path.display(),
        public.display()
    ));
    if !out.is_json() {
        out.line(format!(
            "mnemonic (write it down; it is the only backup): {mnemonic}"
        ));
    }
    out.result(&serde_json::json!({
        "ss58": key.ss58,
        "file": path,
        "public_file": public,
        "mnemonic": mnemonic.to_string(),
    }))
}
