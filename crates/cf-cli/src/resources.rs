//! Resource matching on push (CF's): the package's files are fingerprinted
//! (sha1, size, mode), `POST /v3/resource_matches` says which of them the
//! controller's resource cache holds, and the upload carries only the
//! others in `bits`, naming the matched ones in `resources`.
//!
//! Works on the zip [`crate::zipdir::zip_path`] made (so whatever decides
//! what goes into a package decides here too): matched entries are left
//! out of the zip uploaded, the others are copied as they are.

use crate::client::{Client, ReqBody};
use crate::error::{CliError, Result};
use crate::models::Package;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::io::{Cursor, Read};

/// Resources per `POST /v3/resource_matches` (the CF CLI's batch size).
pub const MATCH_BATCH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub value: String,
}

/// A file as the v3 API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub checksum: Checksum,
    pub size_in_bytes: u64,
    pub path: String,
    pub mode: String,
}

#[derive(Debug, Deserialize)]
struct Matches {
    resources: Vec<Resource>,
}

/// The files of a package zip that may be matched: regular files (no
/// directories or links) the controller would accept by mode (at least
/// 0600, CF's rule); the others always travel in the zip.
pub fn fingerprint(zip: &[u8]) -> Result<Vec<Resource>> {
    let zerr = |e: zip::result::ZipError| {
        CliError::other(format!(
            "the package is not a valid zip file ({})",
            match e {
                zip::result::ZipError::Io(e) => crate::terminal::io_text(&e),
                _ => "unreadable archive".to_string(),
            }
        ))
    };
    let mut z = zip::ZipArchive::new(Cursor::new(zip)).map_err(zerr)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(zerr)?;
        let mode = entry.unix_mode().unwrap_or(0o100644);
        let is_link = mode & 0o170000 == 0o120000;
        if !entry.is_file() || is_link || mode & 0o600 != 0o600 {
            continue;
        }
        let Ok(path) = entry.name().map(|n| n.to_string()) else {
            continue;
        };
        let mut hasher = Sha1::new();
        let mut size = 0u64;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| CliError::io(format!("reading {path} from the package"), e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        out.push(Resource {
            checksum: Checksum {
                value: hex::encode(hasher.finalize()),
            },
            size_in_bytes: size,
            path,
            mode: format!("{:o}", mode & 0o777),
        });
    }
    Ok(out)
}

/// The zip without the entries `matched` names (copied, not recompressed);
/// `None` when nothing is left to upload.
pub fn unmatched_zip(zip: &[u8], matched: &HashSet<String>) -> Result<Option<Vec<u8>>> {
    let zerr = |e: zip::result::ZipError| CliError::other(format!("packaging: {e}"));
    let mut z = zip::ZipArchive::new(Cursor::new(zip)).map_err(zerr)?;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut kept = 0;
    for i in 0..z.len() {
        let entry = z.by_index_raw(i).map_err(zerr)?;
        if entry.name().is_ok_and(|n| matched.contains(n.as_ref())) {
            continue;
        }
        w.raw_copy_file(entry).map_err(zerr)?;
        kept += 1;
    }
    if kept == 0 {
        return Ok(None);
    }
    Ok(Some(w.finish().map_err(zerr)?.into_inner()))
}

/// Asks which resources the controller has, in batches; an API without
/// resource matching (404) has none.
async fn matches(client: &Client, all: &[Resource]) -> Result<Vec<Resource>> {
    let mut found = Vec::new();
    for batch in all.chunks(MATCH_BATCH) {
        let r: Result<Matches> = client
            .post("/v3/resource_matches", json!({ "resources": batch }))
            .await;
        match r {
            Ok(m) => found.extend(m.resources),
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Uploads the package zip `zip` to package `guid`: only the files the
/// controller does not have, the others named in `resources`. Prints the
/// upload's progress (the bytes sent).
pub async fn upload_package(client: &Client, guid: &str, zip: Vec<u8>) -> Result<Package> {
    let zip = Bytes::from(zip);
    let z = zip.clone();
    let all = tokio::task::spawn_blocking(move || fingerprint(&z))
        .await
        .map_err(|e| CliError::other(format!("packaging failed: {e}")))??;
    let candidates: Vec<Resource> = all.into_iter().filter(|r| r.size_in_bytes > 0).collect();
    let matched = if candidates.is_empty() {
        Vec::new()
    } else {
        matches(client, &candidates).await?
    };
    // Only what we asked about, as we described it.
    let asked: HashSet<(&str, &str, u64)> = candidates
        .iter()
        .map(|r| (r.path.as_str(), r.checksum.value.as_str(), r.size_in_bytes))
        .collect();
    let matched: Vec<Resource> = matched
        .into_iter()
        .filter(|r| asked.contains(&(r.path.as_str(), r.checksum.value.as_str(), r.size_in_bytes)))
        .collect();
    let path = format!("/v3/packages/{guid}/upload");
    if matched.is_empty() {
        return client
            .request(reqwest::Method::POST, &path, ReqBody::Bits(zip))
            .await;
    }
    let names: HashSet<String> = matched.iter().map(|r| r.path.clone()).collect();
    let z = zip.clone();
    let bits = tokio::task::spawn_blocking(move || unmatched_zip(&z, &names))
        .await
        .map_err(|e| CliError::other(format!("packaging failed: {e}")))??;
    let resources = serde_json::to_string(&matched)
        .map_err(|e| CliError::other(format!("packaging failed: {e}")))?;
    if bits.is_none() {
        println!(
            " {} / {} [{}] 100.00% 0s",
            crate::size::format_kib(0),
            crate::size::format_kib(0),
            "=".repeat(25)
        );
    }
    client
        .request(
            reqwest::Method::POST,
            &path,
            ReqBody::Package {
                resources,
                bits: bits.map(Bytes::from),
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_directory("d/", SimpleFileOptions::default())
            .expect("dir");
        for (name, data, mode) in files {
            w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                .expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn fingerprints_files_and_leaves_matched_ones_out() {
        let zip = zip_of(&[
            ("a.txt", b"hello", 0o644),
            ("d/run", b"#!/bin/sh\n", 0o755),
            ("ro.txt", b"read only", 0o444),
        ]);
        let fps = fingerprint(&zip).expect("fingerprint");
        let by: Vec<(&str, &str, u64, &str)> = fps
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    r.checksum.value.as_str(),
                    r.size_in_bytes,
                    r.mode.as_str(),
                )
            })
            .collect();
        assert_eq!(
            by,
            vec![
                (
                    "a.txt",
                    "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
                    5,
                    "644"
                ),
                (
                    "d/run",
                    "bd971bec88149956458a10fc9c5ecb3eb99dd452",
                    10,
                    "755"
                ),
            ]
        );
        let matched: HashSet<String> = ["a.txt".to_string()].into();
        let rest = unmatched_zip(&zip, &matched).expect("zip").expect("some");
        let z = zip::ZipArchive::new(Cursor::new(rest)).expect("archive");
        let names: Vec<String> = z
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.to_string()))
            .collect();
        for (name, want) in [("a.txt", false), ("d/run", true), ("d/", true)] {
            assert_eq!(names.contains(&name.to_string()), want, "{names:?}");
        }
        let only: HashSet<String> = ["x".to_string()].into();
        let empty = zip::ZipWriter::new(Cursor::new(Vec::new()))
            .finish()
            .expect("finish")
            .into_inner();
        assert!(unmatched_zip(&empty, &only).expect("zip").is_none());
    }
}
