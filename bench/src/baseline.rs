//! The baseline: a bare hyper HTTP/1.1 server that responds to every request with the same 60-byte
//! JSON body. It shows what this machine and the load generator manage without any application work.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body of every baseline response: 60 bytes of JSON.
pub const BODY: &str = r#"{"status":"ok","server":"uig-bench baseline","padding":"--"}"#;

async fn respond(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("static response parts are valid");
    Ok(response)
}

/// Serves the baseline on `address` (loopback only) until the process is killed.
pub async fn serve(address: SocketAddr) -> anyhow::Result<()> {
    if !address.ip().is_loopback() {
        bail!("invalid --listen {address}: the baseline server listens on loopback only, such as 127.0.0.1:0");
    }
    let listener = TcpListener::bind(address).await.with_context(|| format!("failed to listen on {address}"))?;
    eprintln!("baseline server listening on {}", listener.local_addr()?);

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let served = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service_fn(respond)).await;
            if let Err(error) = served {
                eprintln!("connection failed: {error}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_60_bytes_of_json() {
        assert_eq!(BODY.len(), 60);
        assert!(serde_json::from_str::<serde_json::Value>(BODY).is_ok());
    }
}
