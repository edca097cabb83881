//! Files that outlive a process (product images): a local directory by
//! default, S3-compatible storage when `SHOP_FILE_STORE` is an `s3://` URL,
//! both through `object_store`. Keys are content-addressed by their writers,
//! so a key's bytes never change and its name can serve as its ETag.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use secrecy::{ExposeSecret as _, SecretString};
use tokio_stream::StreamExt as _;

/// Where files are kept.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Files")]
pub struct FileStoreConfig {
    /// Where product images are kept: a local directory (every catalog
    /// replica and the gateway must see the same one), or `s3://bucket` or
    /// `s3://bucket/prefix` for S3-compatible storage (the SHOP_FILE_STORE_S3_*
    /// settings, else the standard AWS_* variables).
    #[arg(id = "file-store", long, env = "SHOP_FILE_STORE", default_value_t = default_dir())]
    pub location: String,
    /// The S3 endpoint, for storage other than AWS's (`http://minio:9000`;
    /// an `http://` one is allowed as given). Empty: AWS_ENDPOINT or AWS.
    #[arg(id = "file-store-s3-endpoint", long, env = "SHOP_FILE_STORE_S3_ENDPOINT", default_value = "")]
    pub s3_endpoint: String,
    /// The S3 region. Empty: AWS_REGION, else us-east-1.
    #[arg(id = "file-store-s3-region", long, env = "SHOP_FILE_STORE_S3_REGION", default_value = "")]
    pub s3_region: String,
    /// The S3 access key id. Empty: AWS_ACCESS_KEY_ID (or the instance's role).
    #[arg(id = "file-store-s3-access-key-id", long, env = "SHOP_FILE_STORE_S3_ACCESS_KEY_ID", default_value = "")]
    pub s3_access_key_id: String,
    /// The S3 secret access key. Empty: AWS_SECRET_ACCESS_KEY.
    #[arg(
        id = "file-store-s3-secret-access-key",
        long,
        env = "SHOP_FILE_STORE_S3_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub s3_secret_access_key: SecretString,
    /// The gateway's address as clients reach it (scheme, host, port, no
    /// path): the start of every picture's `image_url`.
    #[arg(id = "public-url", long, env = "SHOP_PUBLIC_URL", default_value = "http://127.0.0.1:50051")]
    pub public_url: String,
}

impl FileStoreConfig {
    /// A local directory (tests: one of their own).
    pub fn local(dir: impl Into<PathBuf>, public_url: &str) -> Self {
        Self {
            location: dir.into().to_string_lossy().into_owned(),
            public_url: public_url.to_owned(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: SecretString::from(String::new()),
        }
    }
}

/// `shop-files` in the system's temporary directory.
fn default_dir() -> String {
    std::env::temp_dir().join("shop-files").to_string_lossy().into_owned()
}

/// A file's bytes as they arrive from the store.
pub type FileStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Bytes, FileStoreError>> + Send>>;

/// A store failed; the caller may retry.
#[derive(Debug, thiserror::Error)]
#[error("file store: {0}")]
pub struct FileStoreError(#[from] object_store::Error);

/// The file store, cheap to clone.
#[derive(Debug, Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// The `s3://bucket/prefix` prefix, or none.
    prefix: Option<Path>,
}

impl Files {
    pub fn open(config: &FileStoreConfig) -> anyhow::Result<Self> {
        if let Some(rest) = config.location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "SHOP_FILE_STORE: s3:// needs a bucket (s3://bucket/prefix)");
            // reqwest's rustls takes the process's provider: ring, as the servers use.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if !config.s3_endpoint.is_empty() {
                builder = builder
                    .with_endpoint(&config.s3_endpoint)
                    .with_allow_http(config.s3_endpoint.starts_with("http://"))
                    // `http://host:port/bucket/key`: the form S3-compatible servers all take.
                    .with_virtual_hosted_style_request(false);
            }
            if !config.s3_region.is_empty() {
                builder = builder.with_region(&config.s3_region);
            }
            if !config.s3_access_key_id.is_empty() {
                builder = builder.with_access_key_id(&config.s3_access_key_id);
            }
            let secret = config.s3_secret_access_key.expose_secret();
            if !secret.is_empty() {
                builder = builder.with_secret_access_key(secret);
            }
            let store = builder.build()?;
            let prefix = (!prefix.trim_matches('/').is_empty()).then(|| Path::from(prefix.trim_matches('/')));
            return Ok(Self { store: Arc::new(store), prefix });
        }
        let dir = PathBuf::from(&config.location);
        std::fs::create_dir_all(&dir).map_err(|error| anyhow::anyhow!("SHOP_FILE_STORE {}: {error}", dir.display()))?;
        Ok(Self { store: Arc::new(LocalFileSystem::new_with_prefix(&dir)?), prefix: None })
    }

    fn path(&self, key: &str) -> Path {
        match &self.prefix {
            Some(prefix) => Path::from(format!("{prefix}/{key}")),
            None => Path::from(key),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), FileStoreError> {
        self.store.put(&self.path(key), PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// The file as a stream of chunks (never held whole) and its size, or
    /// none when there is no such file.
    pub async fn stream(&self, key: &str) -> Result<Option<(u64, FileStream)>, FileStoreError> {
        match self.store.get(&self.path(key)).await {
            Ok(found) => {
                let size = found.meta.size;
                Ok(Some((size, Box::pin(found.into_stream().map(|chunk| chunk.map_err(FileStoreError::from))))))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the file is there (its bytes are not read).
    pub async fn exists(&self, key: &str) -> Result<bool, FileStoreError> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the file; a file already gone is deleted too.
    pub async fn delete(&self, key: &str) -> Result<(), FileStoreError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_store_keeps_gets_and_deletes_files() {
        let dir = std::env::temp_dir().join(format!("shop-files-test-{}", std::process::id()));
        let files = Files::open(&FileStoreConfig::local(&dir, "http://shop.test")).unwrap();
        files.put("products/1/abc.png", Bytes::from_static(b"png")).await.unwrap();
        let (size, mut chunks) = files.stream("products/1/abc.png").await.unwrap().expect("the file");
        let mut read = Vec::new();
        while let Some(chunk) = chunks.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!((size, read.as_slice()), (3, &b"png"[..]));
        files.delete("products/1/abc.png").await.unwrap();
        assert!(!files.exists("products/1/abc.png").await.unwrap());
        assert!(files.stream("products/1/abc.png").await.unwrap().is_none());
        files.delete("products/1/abc.png").await.unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}
