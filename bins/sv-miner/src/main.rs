//! `sv-miner`: the StreetVision (netuid 72) miner.
//!
//! `serve` answers validators over the axon protocol; `challenge` sends validator-style
//! challenges to a miner and scores the answers; `classify` runs the model on files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sv_models::{
    Architecture, Device, Ensemble, NetworkOptions, RoadworkClassifier, device_by_name,
};

/// mimalloc, keeping freed buffers for reuse (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

/// StreetVision miner: answers validators with the probability that a street image shows
/// roadwork (cones, barriers, signs, crews, machines).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the axon protocol: verified, signed requests from permitted validators are
    /// answered with P(roadwork), micro-batched on one inference pool; `/metrics` and
    /// `/healthz` on their own port; a prediction log; the model reloads when its files
    /// change or on SIGHUP. Settings: defaults < --config file < environment (NETUID,
    /// WALLET_NAME, WALLET_HOTKEY, MINER_AXON_PORT, BLACKLIST_FORCE_VALIDATOR_PERMIT,
    /// SUBTENSOR_CHAIN_ENDPOINT, BT_WALLET_PATH) < flags.
    Serve(serve::ServeArgs),
    /// Send validator-style challenges to a miner: each labelled image goes through one of
    /// the validator's augmentation levels 0–3 and becomes a 224×224 quality-75 JPEG,
    /// signed with a wallet hotkey; prints accuracy, MCC, the subnet's reward and latency.
    Challenge(serve::ChallengeArgs),
    /// Register the wallet's hotkey on the subnet by burning TAO from its coldkey
    /// (`burned_register`): shows the current burn and balance and asks before spending
    /// unless --yes; the coldkey password comes from SV_WALLET_PASSWORD, the SDK's
    /// BT_PW_* variable or a prompt. With --model-repo, then registers the model with the
    /// subnet operator for the new uid.
    Register(register::RegisterArgs),
    /// Register a published model with the subnet operator as the subnet's `register.sh`
    /// does: the current time signed by the hotkey, the uid and the model repository,
    /// then the registration status polled until it settles (up to 3 minutes).
    RegisterModel(register::RegisterModelArgs),
    /// Make a new hotkey in a btcli wallet (a fresh 12-word mnemonic, file mode 0600);
    /// prints its address and, once, its mnemonic.
    NewHotkey(register::NewHotkeyArgs),
    /// Classify image files with a DINOv2-with-registers or ConvNeXt-V2 classifier and
    /// print, per image, the roadwork probability and the latency.
    Classify(ClassifyArgs),
}

#[derive(Args, Debug)]
struct ClassifyArgs {
    /// The model, as `serve --model` takes it: an export directory, an ensemble file, a
    /// checkpoint, or a Hugging Face repository `owner/name[@revision]`.
    #[arg(long, value_name = "SOURCE", conflicts_with_all = ["checkpoint", "hub", "ensemble"])]
    model: Option<String>,

    /// Local checkpoint (.safetensors, .bin or .pth): DINOv2 with registers (HF
    /// transformers, timm or original layout) or ConvNeXt-V2 (HF transformers or timm).
    /// `config.json` and `preprocessor_config.json` beside it (or `<stem>.config.json`)
    /// are used when present.
    #[arg(long, conflicts_with_all = ["hub", "ensemble"], required_unless_present_any = ["hub", "ensemble", "model"])]
    checkpoint: Option<PathBuf>,

    /// Ensemble file (JSON) instead: members' checkpoints, weights (default DINOv2 0.6,
    /// ConvNeXt-V2 0.4) and temperatures; prints each member's probability too.
    #[arg(long, conflicts_with = "hub", value_name = "FILE")]
    ensemble: Option<PathBuf>,

    /// Hugging Face repository to load instead (uses the HF cache; honours HF_HOME,
    /// HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1).
    #[arg(long, value_name = "ORG/NAME")]
    hub: Option<String>,

    /// Revision (branch, tag or commit) of the --hub repository.
    #[arg(long, requires = "hub")]
    revision: Option<String>,

    /// HF-style config.json to use for a local checkpoint.
    #[arg(long, requires = "checkpoint")]
    config: Option<PathBuf>,

    /// Architecture of a local checkpoint: dinov2 or convnextv2 (default: from config.json's
    /// model_type, else from the checkpoint's keys).
    #[arg(long, requires = "checkpoint")]
    architecture: Option<Architecture>,

    /// DINOv2 attention heads, for timm/original checkpoints whose width is not a
    /// multiple of 64.
    #[arg(long)]
    heads: Option<usize>,

    /// Index of the roadwork logit (default: the label named "roadwork", else 1 of 2).
    #[arg(long)]
    roadwork_index: Option<usize>,

    /// Device: cpu, cuda or cuda:N, vulkan or vulkan:N, or wgpu (a GPU backend needs a build with its
    /// feature, e.g. `--features vulkan`).
    #[arg(long, default_value = "cpu")]
    device: String,

    /// What the networks compute in: f32, bf16 or f16 (half precision is for GPUs; the
    /// answers stay within about 0.03 for bf16 or 0.005 for f16 of f32's).
    #[arg(long, default_value = "f32")]
    precision: sv_models::Precision,

    /// Print one JSON object per image instead of text.
    #[arg(long)]
    json: bool,

    /// Images to classify (JPEG, PNG or WebP); they run as one batch.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

mod register;
mod serve;
mod wallet_args;

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let done = |r: Result<()>| r.map(|()| true);
    let cli: Cli = sv_cli::parse("sv-miner", &[("--model-repo", "--hub-repo")]);
    let result = match cli.command {
        Command::Classify(args) => done(classify(args)),
        Command::Serve(args) => done(serve::serve(args)),
        Command::Challenge(args) => serve::challenge(args),
        Command::Register(args) => done(register::register(args)),
        Command::RegisterModel(args) => done(register::register_model(args)),
        Command::NewHotkey(args) => done(register::new_hotkey(args)),
    };
    sv_cli::exit("sv-miner", result)
}

/// `--model SOURCE` as the flags it stands for: an ensemble file or an export directory
/// holding `ensemble.json` → `--ensemble`; an export directory → its
/// `model.safetensors`; another file → `--checkpoint`; `owner/name[@rev]` → `--hub`.
fn resolve_model(args: &mut ClassifyArgs) -> Result<()> {
    let Some(spec) = args.model.take() else {
        return Ok(());
    };
    match sv_models::ModelSource::parse(&spec).with_context(|| format!("--model {spec}"))? {
        sv_models::ModelSource::Local(path) => {
            let ensemble = path.join("ensemble.json");
            if path.is_dir() && ensemble.is_file() {
                args.ensemble = Some(ensemble);
            } else if path.is_dir() {
                args.checkpoint = Some(path.join("model.safetensors"));
            } else if path.extension().is_some_and(|e| e == "json") {
                args.ensemble = Some(path);
            } else {
                args.checkpoint = Some(path);
            }
        }
        sv_models::ModelSource::Hub { repo, revision } => {
            args.hub = Some(repo);
            args.revision = revision;
        }
    }
    Ok(())
}

fn classify(mut args: ClassifyArgs) -> Result<()> {
    resolve_model(&mut args)?;
    let device = device_by_name(&args.device)?;
    sv_models::precision::ensure_computes(args.precision, &device)
        .with_context(|| format!("--device {} --precision {}", args.device, args.precision))?;
    if let Some(path) = &args.ensemble {
        return classify_ensemble(path, &args, device);
    }
    let t0 = std::time::Instant::now();
    let classifier = match (&args.checkpoint, &args.hub) {
        (Some(path), _) => {
            let opts = NetworkOptions {
                architecture: args.architecture,
                config_json: args.config.clone(),
                num_heads: args.heads,
            };
            RoadworkClassifier::load(path, &opts, args.roadwork_index, device)
                .with_context(|| format!("loading checkpoint {}", path.display()))?
                .in_precision(args.precision)
        }
        (None, Some(repo)) => {
            let client = sv_hub::HubClient::from_env().context("setting up the Hub client")?;
            RoadworkClassifier::from_pretrained(
                &client,
                repo,
                args.revision.as_deref(),
                args.roadwork_index,
                device,
            )
            .with_context(|| format!("loading {repo} from the Hugging Face Hub"))?
            .in_precision(args.precision)
        }
        (None, None) => unreachable!("clap requires --model, --checkpoint, --hub or --ensemble"),
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let predictions = classifier
        .classify_files(&args.images)
        .context("classifying images")?;
    for p in &predictions {
        if args.json {
            let line = serde_json::json!({
                "image": p.path,
                "roadwork_probability": p.roadwork,
                "preprocess_ms": p.preprocess_ms,
                "forward_ms": p.forward_ms,
                "load_ms": load_ms,
            });
            println!("{line}");
        } else {
            println!(
                "{}: roadwork probability {:.4}  (latency {:.1} ms: preprocess {:.1} ms, forward {:.1} ms; model load {:.0} ms)",
                p.path.display(),
                p.roadwork,
                p.preprocess_ms + p.forward_ms,
                p.preprocess_ms,
                p.forward_ms,
                load_ms
            );
        }
    }
    Ok(())
}

fn classify_ensemble(path: &std::path::Path, args: &ClassifyArgs, device: Device) -> Result<()> {
    let t0 = std::time::Instant::now();
    let ensemble = Ensemble::load(path, &device)
        .with_context(|| format!("loading ensemble {}", path.display()))?
        .in_precision(args.precision);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let predictions = ensemble
        .classify_files(&args.images)
        .context("classifying images")?;
    for ep in &predictions {
        let p = &ep.prediction;
        if args.json {
            let members: serde_json::Map<String, serde_json::Value> = ensemble
                .members
                .iter()
                .zip(&ep.members)
                .map(|(m, v)| (m.name.clone(), serde_json::json!(v)))
                .collect();
            let line = serde_json::json!({
                "image": p.path,
                "roadwork_probability": p.roadwork,
                "members": members,
                "preprocess_ms": p.preprocess_ms,
                "forward_ms": p.forward_ms,
                "load_ms": load_ms,
            });
            println!("{line}");
        } else {
            let members: Vec<String> = ensemble
                .members
                .iter()
                .zip(&ep.members)
                .map(|(m, v)| format!("{} {v:.4}", m.name))
                .collect();
            println!(
                "{}: roadwork probability {:.4}  ({}; latency {:.1} ms)",
                p.path.display(),
                p.roadwork,
                members.join(", "),
                p.preprocess_ms + p.forward_ms,
            );
        }
    }
    Ok(())
}
