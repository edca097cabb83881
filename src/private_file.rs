//! Files only their owner may read: secrets and private keys, written whole
//! or not at all (a reader never sees half a key).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Writes a file only its owner may read (the servers run as that user).
pub(crate) fn write(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o400))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
