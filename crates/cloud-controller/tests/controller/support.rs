//! Shared test helpers.

use std::io::Write;
use std::time::Duration;

pub fn zip_bytes(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in files {
        w.start_file(*name, opts).expect("start file");
        w.write_all(content.as_bytes()).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

pub fn multipart(field: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----cctestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"app.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub use testkit::NatsServer as Nats;

/// Polls `f` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    testkit::wait_for(what, timeout, f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
