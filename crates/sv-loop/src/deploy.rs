//! The deploy steps: publish the export in one commit, register the repository with the
//! subnet operator, and record the new production. A failure in any of them leaves
//! production.json as it was; a rerun retries the step.

use serde::{Deserialize, Serialize};
use sv_hub::operator::{Operator, Registration};
use sv_hub::publish::{Published, Publisher, Upload};

use crate::cycle::{Cycle, step_error};
use crate::error::Result;
use crate::journal::{Production, read_json, write_json};
use crate::step::Step;

/// What `published.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublishedRecord {
    /// `owner/name`.
    pub repo: String,
    /// The branch committed to.
    pub revision: String,
    /// The commit.
    pub commit: String,
    /// Its URL.
    pub url: String,
}

/// Commit a checked publication `plan` (the export's files and a README model card)
/// to `repo` at `revision` in one commit, creating the repository when missing.
pub fn publish_plan(
    plan: &sv_train::publish::Plan,
    settings: &sv_hub::HubSettings,
    repo: &str,
    revision: &str,
    private: bool,
) -> std::result::Result<Published, sv_hub::publish::PublishError> {
    let mut uploads = plan
        .files
        .iter()
        .map(|(local, remote)| Upload::file(local, remote))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    uploads.push(Upload::bytes("README.md", plan.readme.clone().into_bytes()));
    let publisher = Publisher::new(&settings.endpoint, settings.token.as_deref())?;
    publisher.create_and_commit(
        repo,
        revision,
        private,
        &uploads,
        &plan.summary,
        &plan.description,
    )
}

fn taken_names(c: &Cycle) -> Result<Vec<String>> {
    match &c.config.publish.taken_names {
        Some(p) => sv_train::publish::read_taken_names(p).map_err(|e| step_error(Step::Publish, e)),
        None => Ok(Vec::new()),
    }
}

/// `export/` → one Hub commit → `published.json`.
pub(crate) fn publish(c: &Cycle) -> Result<String> {
    let hotkey = c.hotkey.ss58.as_str();
    let err = |e| step_error(Step::Publish, e);
    let run = crate::candidate::run_dir(c);
    let eval: sv_train::metrics::Report = read_json(&run.eval())?;
    let now = crate::cycle::now();
    let plan = sv_train::publish::plan(
        &c.file("export"),
        hotkey,
        now,
        &taken_names(c)?,
        Some((&eval, "validation")),
    )
    .map_err(err)?;
    let p = &c.config.publish;
    let settings = sv_hub::HubSettings::from_env();
    let done = publish_plan(&plan, &settings, &p.repo, &p.revision, p.private)
        .map_err(|e| step_error(Step::Publish, e))?;
    let record = PublishedRecord {
        repo: p.repo.clone(),
        revision: p.revision.clone(),
        commit: done.commit.clone(),
        url: done.url,
    };
    write_json(&c.file("published.json"), &record)?;
    Ok(format!(
        "{} at {} as commit {}",
        record.repo, settings.endpoint, record.commit
    ))
}

/// The published repository registered for the configured uid → `registered.json`.
pub(crate) fn register(c: &Cycle) -> Result<String> {
    let hotkey = &c.hotkey;
    let Some(r) = &c.config.register else {
        return Ok("no [register] section: not registered".into());
    };
    let published: PublishedRecord = read_json(&c.file("published.json"))?;
    let mut operator = Operator::new(&r.base_url);
    operator.poll_every = std::time::Duration::from_secs_f64(r.poll_seconds.clamp(0.01, 600.0));
    let registration = Registration {
        uid: r.uid,
        hotkey: hotkey.ss58.clone(),
        model_repo: published.repo.clone(),
    };
    let reply = operator
        .register_and_wait(&registration, |m| hotkey.sign(m), |_| {})
        .map_err(|e| step_error(Step::Register, e))?;
    write_json(
        &c.file("registered.json"),
        &serde_json::json!({
            "uid": r.uid,
            "hotkey": hotkey.ss58,
            "model_repo": published.repo,
            "operator": r.base_url,
            "reply": reply,
        }),
    )?;
    Ok(format!(
        "{} registered for uid {} with {}",
        published.repo, r.uid, r.base_url
    ))
}

/// production.json → the cycle's run and export.
pub(crate) fn record(c: &Cycle) -> Result<(String, Production)> {
    let published: PublishedRecord = read_json(&c.file("published.json"))?;
    let card = sv_records::card::CardStamp::read(&c.file("export/model_card.json"));
    let production = Production {
        run: c.file("run"),
        export: Some(c.file("export")),
        repo: Some(published.repo.clone()),
        commit: Some(published.commit.clone()),
        submission_time: card.and_then(|s| s.submission_time),
        cycle: Some(c.journal.cycle),
    };
    write_json(&crate::cycle::production_file(&c.work), &production)?;
    Ok((
        format!(
            "production is cycle {}'s model ({} commit {})",
            c.journal.cycle, published.repo, published.commit
        ),
        production,
    ))
}
