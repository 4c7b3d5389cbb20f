//! A loopback TCP proxy in front of a mock that can reset connections, a fault `uig-mock` has no
//! mode for.
//!
//! While passing, it relays bytes both ways. While resetting, it closes every open connection and
//! ends each new one with a TCP reset (RST) after reading the request, so the client sees
//! "connection reset by peer" after it has sent.

use std::collections::HashMap;
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::SockRef;

#[derive(Default)]
struct Shared {
    resetting: AtomicBool,
    stopping: AtomicBool,
    resets: AtomicU64,
    next_connection: AtomicU64,
    /// Both sockets of each relayed connection, to close them when resetting starts.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
}

/// A running proxy.
pub struct FaultProxy {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a passing proxy on a free loopback port in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the fault proxy")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_thread = {
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, upstream, shared))
        };
        Ok(FaultProxy { address, shared, accept_thread: Some(accept_thread) })
    }

    /// Base URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Starts or stops resetting connections.
    pub fn set_resetting(&self, resetting: bool) {
        self.shared.resetting.store(resetting, Ordering::SeqCst);
        if resetting {
            let open: Vec<(TcpStream, TcpStream)> = self.shared.open.lock().expect("proxy lock").drain().map(|(_, pair)| pair).collect();
            for (client, upstream) in open {
                reset(&client);
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Connections closed with a reset so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
        self.set_resetting(true);
    }
}

/// Closes `stream` with a reset: a zero linger time makes close send RST instead of FIN.
fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(Shutdown::Both);
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = stream else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            if shared.resetting.load(Ordering::SeqCst) {
                reset_after_request(client, &shared);
            } else {
                relay(client, upstream, &shared);
            }
        });
    }
}

fn reset_after_request(mut client: TcpStream, shared: &Shared) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buffer = [0u8; 4096];
    let _ = client.read(&mut buffer);
    let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
    shared.resets.fetch_add(1, Ordering::Relaxed);
    drop(client);
}

fn relay(client: TcpStream, upstream_address: SocketAddr, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect_timeout(&upstream_address, Duration::from_secs(2)) else {
        reset(&client);
        return;
    };
    let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let clones = (client.try_clone(), upstream.try_clone(), client.try_clone(), upstream.try_clone());
    let (Ok(client_read), Ok(upstream_write), Ok(client_kept), Ok(upstream_kept)) = clones else {
        reset(&client);
        return;
    };
    shared.open.lock().expect("proxy lock").insert(id, (client_kept, upstream_kept));

    let forward = std::thread::spawn(move || copy_then_close(client_read, upstream_write));
    copy_then_close(upstream, client);
    let _ = forward.join();
    shared.open.lock().expect("proxy lock").remove(&id);
}

/// Copies until end of stream or an error, then shuts the writing side, so the peer gets the end.
fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
