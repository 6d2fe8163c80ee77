//! Paths and roots as written in the config, resolved against the config file's directory.
//!
//! Invariant: pure (no file system access beyond making a path absolute): a relative path means
//! the same thing from any working directory.

use std::path::{Path, PathBuf};

use crate::domain::Root;
use crate::error::ConfigError;

/// `p` made absolute against the working directory (unchanged if that fails).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The table root `root` (a path, `file://` or an object-store URL); errors name `key`.
pub fn parse_root(root: &str, key: &str, base_dir: &Path) -> Result<Root, ConfigError> {
    if root.trim().is_empty() {
        return Err(ConfigError::invalid(
            key,
            "the root is empty",
            "set root = \"./lake\" or a URL",
        ));
    }
    match url::Url::parse(root) {
        Ok(url) if url.scheme() == "file" => {
            let path = url.to_file_path().map_err(|()| {
                ConfigError::invalid(
                    key,
                    format!("`{root}` is not a local file URL"),
                    "write file:///absolute/path",
                )
            })?;
            Ok(Root::Local(path))
        }
        // (abfss://container@account.… names the container where a user name would be.)
        Ok(url)
            if url.password().is_some()
                || (!url.username().is_empty() && !url.scheme().starts_with("abfs")) =>
        {
            Err(ConfigError::invalid(
                key,
                "the root URL carries credentials",
                "remove them from the URL and set them in the environment (AWS_ACCESS_KEY_ID, AZURE_STORAGE_ACCOUNT_KEY, GOOGLE_SERVICE_ACCOUNT, …)",
            ))
        }
        Ok(url) if crate::storage::Cloud::of(&url).is_some() || url.scheme() == "memory" => {
            Ok(Root::Url(url))
        }
        Ok(url) if url.scheme().len() > 1 => Err(ConfigError::Root {
            key: key.to_string(),
            root: root.to_string(),
            reason: format!(
                "the `{}` scheme is not supported; use a local path, file://, memory://, s3://, az://, abfss:// or gs://",
                url.scheme()
            ),
        }),
        // Not a URL (or a Windows drive letter): a path.
        _ => Ok(Root::Local(absolute(&base_dir.join(root)))),
    }
}
