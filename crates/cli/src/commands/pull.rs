//! `models pull`: download a model's files from the Hugging Face Hub (or a
//! mirror named by `HF_ENDPOINT`) through the shared HF cache (`HF_HOME`),
//! then add them like `models add`.

use anyhow::{Context, Result};
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};
use std::path::{Path, PathBuf};

/// Files every model needs.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
/// Sentence-transformers files, used when the repository has them.
const OPTIONAL: &[&str] = &["modules.json", "sentence_bert_config.json", "1_Pooling/config.json"];

/// Downloads the model files of `hf_id` at `revision` into a new directory
/// `staging` (which must not exist), laid out as in the repository.
pub fn download(hf_id: &str, revision: &str, staging: &Path) -> Result<()> {
    let api = ApiBuilder::from_env().build().context("cannot set up the Hugging Face Hub client")?;
    let repo = api.repo(Repo::with_revision(hf_id.to_string(), RepoType::Model, revision.to_string()));
    std::fs::create_dir_all(staging).with_context(|| format!("cannot create {}", staging.display()))?;
    for (file, required) in REQUIRED.iter().map(|f| (f, true)).chain(OPTIONAL.iter().map(|f| (f, false))) {
        let cached = match repo.get(file) {
            Ok(path) => path,
            Err(err) if !required && is_not_found(&err) => continue,
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "cannot download {file} of {hf_id} at revision {revision} from {} \
                         (check the model id, the revision and HF_ENDPOINT; set HF_TOKEN for gated models)",
                        repo.url(file)
                    )
                });
            }
        };
        place(&cached, &staging.join(file))?;
    }
    Ok(())
}

/// True when the hub answered 404 (the file is not in the repository).
fn is_not_found(err: &ApiError) -> bool {
    matches!(err, ApiError::RequestError(e) if matches!(**e, ureq::Error::Status(404, _)))
}

/// Puts the cached file at `to`: a hard link to the cache's blob when the
/// file system allows it, else a copy (never a symlink, which would be added
/// as a link rather than its content).
fn place(cached: &Path, to: &Path) -> Result<()> {
    let blob: PathBuf = cached.canonicalize().with_context(|| format!("cannot read {}", cached.display()))?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if std::fs::hard_link(&blob, to).is_err() {
        std::fs::copy(&blob, to).with_context(|| format!("cannot copy {} to {}", blob.display(), to.display()))?;
    }
    Ok(())
}
