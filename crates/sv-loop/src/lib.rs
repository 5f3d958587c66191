//! The improvement loop of a StreetVision (netuid 72) miner as one restartable command:
//! ingest the miner's prediction log (with challenge labels) → curate (embed, dedup,
//! mine, autolabel, mix) → incremental fine-tune with hard negatives → age-aware reward
//! gate → export with the model card → publish to the Hub in one commit → register with
//! the subnet operator → record the new production.
//!
//! Each cycle has a folder under `work_dir/cycles/` whose `journal.json` is rewritten
//! atomically after every step, once that step's outputs are written; a rerun after a
//! crash or SIGKILL continues at the first step without an entry (training from its
//! last checkpoint). A gate that keeps production ends the cycle without publishing; a
//! failed publish or registration leaves `production.json` as it was.
//!
//! ```no_run
//! let config = sv_loop::LoopConfig::load("loop.toml".as_ref())?;
//! print!("{}", sv_loop::plan(&config, 0)?);
//! let finish = sv_loop::run(&config, &mut |event| eprintln!("{event:?}"))?;
//! # Ok::<(), sv_loop::LoopError>(())
//! ```

mod candidate;
pub mod config;
mod curation;
mod cycle;
mod deploy;
pub mod error;
pub mod journal;
pub mod spot;
pub mod step;

pub use config::LoopConfig;
pub use cycle::{Event, Finish, Plan, current_production, plan, production_file, run};
pub use deploy::{PublishedRecord, publish_plan};
pub use error::LoopError;
pub use journal::{Journal, Outcome, Production};
pub use step::Step;
