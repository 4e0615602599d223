//! What both proxies publish: `GET /.rollouts/served` (any Host) answers the JSON of the
//! configuration being served, with its generation (a counter the translator bumps on every
//! change). The JSON is part of the proxy's own configuration, so seeing a generation proves
//! that the proxy has loaded it; the translator itself waits for that after every change.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// The path every proxy answers the served configuration on.
pub const SERVED_PATH: &str = "/.rollouts/served";

/// Who publishes: this translator process (pid and start time), so that a wait for a
/// generation is never satisfied by another proxy that holds the same port.
pub fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{}-{}", std::process::id(), since_epoch.as_nanos())
    })
}

/// Replaces `path` with `contents` at once (a rename of a sibling file).
pub async fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    tokio::fs::write(&tmp, contents)
        .await
        .map_err(|e| Error::io(Path::new(&tmp), e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| Error::io(path, e))
}

/// Records the proxy's pid in `<dir>/proxy.pid` (for the scripts that stop what they started).
pub async fn write_pid(dir: &Path, pid: Option<u32>) -> Result<(), Error> {
    let pid = pid.map(|p| p.to_string()).unwrap_or_default();
    write_atomically(&dir.join("proxy.pid"), pid.as_bytes()).await
}

/// The served JSON of the proxy on `127.0.0.1:port` (one request on a connection of its own;
/// HTTP/1.1, as Envoy refuses HTTP/1.0 by default).
pub async fn fetch(port: u16) -> Result<Value, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {SERVED_PATH} HTTP/1.1\r\nHost: rollouts-dataplane\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_string())??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "answered {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))
}

/// Waits until the proxy on `port`, the process `child`, serves `generation` (or a later
/// one); fails at once if the process exits meanwhile (a port taken, a refused configuration).
pub async fn wait_generation_of(
    child: Option<&mut tokio::process::Child>,
    port: u16,
    generation: u64,
    timeout: Duration,
) -> Result<(), Error> {
    let Some(child) = child else {
        return wait_generation(port, generation, timeout).await;
    };
    tokio::select! {
        served = wait_generation(port, generation, timeout) => served,
        status = child.wait() => Err(Error::Proxy(format!("the proxy exited ({status:?}) before serving generation {generation}"))),
    }
}

/// Waits until the proxy on `port` serves `generation` (or a later one).
pub async fn wait_generation(port: u16, generation: u64, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match fetch(port).await {
            Ok(v) if v["instance"] != instance() => {
                format!("another proxy (instance {})", v["instance"])
            }
            Ok(v) if v["generation"].as_u64().is_some_and(|g| g >= generation) => return Ok(()),
            Ok(v) => format!("generation {}", v["generation"]),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(Error::Proxy(format!(
                "the proxy on 127.0.0.1:{port} did not serve generation {generation} within {timeout:?} (last: {last})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
