//! Blob transfers with the controller: GET (droplet, package, cache) and PUT.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{DeaError, Result};

/// Downloads `url` into `path` (at most `max` bytes: beyond, the file is
/// removed and the download refused), returning the sha256 hex of the
/// body, or `None` on 404.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    path: &Path,
    max: u64,
) -> Result<Option<String>> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| DeaError::Http(format!("GET {}: {e}", redact(url))))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(DeaError::Http(format!(
            "GET {}: status {}",
            redact(url),
            resp.status()
        )));
    }
    let too_big = |n: u64| {
        DeaError::Archive(format!(
            "GET {}: more than {} MB (the download limit)",
            redact(url),
            n / (1024 * 1024)
        ))
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_big(max));
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| DeaError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let result = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| DeaError::Http(format!("GET {}: {e}", redact(url))))?
        {
            size += chunk.len() as u64;
            if size > max {
                return Err(too_big(max));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| DeaError::io(path, e))?;
        }
        file.flush().await.map_err(|e| DeaError::io(path, e))
    }
    .await;
    if let Err(e) = result {
        drop(file);
        let _ = tokio::fs::remove_file(path).await;
        return Err(e);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// Uploads the file at `path` with PUT, streaming it.
pub async fn upload_file(client: &reqwest::Client, url: &str, path: &Path) -> Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| DeaError::io(path, e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| DeaError::io(path, e))?
        .len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let resp = client
        .put(url)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .body(body)
        .send()
        .await
        .map_err(|e| DeaError::Http(format!("PUT {}: {e}", redact(url))))?;
    if !resp.status().is_success() {
        return Err(DeaError::Http(format!(
            "PUT {}: status {}",
            redact(url),
            resp.status()
        )));
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The URL without its query (signatures stay out of logs and errors).
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
