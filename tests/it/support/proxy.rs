//! A TCP proxy on a free loopback port that relays to a server and, when armed, cuts one
//! connection at a chosen request: after forwarding it (the server acts, the client never hears
//! back: the result of the write is unknown to the client) or before (the server never sees it).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Where the armed cut falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The request reaches the server; its answer is swallowed and the connection closed.
    AfterForward,
    /// The connection is closed instead of forwarding the request.
    BeforeForward,
}

/// What the next cut waits for.
struct Trigger {
    /// Bytes a client chunk must contain to count.
    pattern: Vec<u8>,
    /// Matching chunks to let through first.
    skip: usize,
    /// Whether the matching chunk went by.
    matched: bool,
    /// Further chunks (of any content) after the match; the last of them is cut (0: the match).
    then: usize,
    cut: Cut,
}

#[derive(Default)]
struct Shared {
    trigger: Mutex<Option<Trigger>>,
    cuts: AtomicUsize,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

/// The proxy; stops and closes every relayed connection when dropped.
pub(crate) struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts relaying a free loopback port to `127.0.0.1:upstream`.
    pub(crate) fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                relay(client, server, s.clone());
            }
        });
        Proxy { port, shared }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Arms one cut: at the `skip + 1`-th client chunk holding `pattern` (then `then` chunks
    /// more), the connection is cut as `cut` says.
    pub(crate) fn arm(&self, pattern: &str, skip: usize, then: usize, cut: Cut) {
        *self.shared.trigger.lock().unwrap() = Some(Trigger {
            pattern: pattern.as_bytes().to_vec(),
            skip,
            matched: false,
            then,
            cut,
        });
    }

    /// Whether an armed cut is still waiting.
    pub(crate) fn armed(&self) -> bool {
        self.shared.trigger.lock().unwrap().is_some()
    }

    /// How many connections were cut so far.
    pub(crate) fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.shared.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What the client-to-server side decided for one chunk.
enum Step {
    Forward,
    Cut(Cut),
}

fn decide(shared: &Shared, chunk: &[u8]) -> Step {
    let mut guard = shared.trigger.lock().unwrap();
    let Some(t) = guard.as_mut() else {
        return Step::Forward;
    };
    if t.matched {
        t.then = t.then.saturating_sub(1);
        if t.then > 0 {
            return Step::Forward;
        }
    } else {
        if !chunk
            .windows(t.pattern.len())
            .any(|w| w == t.pattern.as_slice())
        {
            return Step::Forward;
        }
        if t.skip > 0 {
            t.skip -= 1;
            return Step::Forward;
        }
        t.matched = true;
        if t.then > 0 {
            return Step::Forward;
        }
    }
    let cut = t.cut;
    *guard = None;
    shared.cuts.fetch_add(1, Ordering::SeqCst);
    Step::Cut(cut)
}

fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let cut = Arc::new(AtomicBool::new(false));
    {
        let mut streams = shared.streams.lock().unwrap();
        streams.push(client.try_clone().unwrap());
        streams.push(server.try_clone().unwrap());
    }
    // Server to client: relays until the connection is cut.
    {
        let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let cut = cut.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    // Client to server: checks each chunk against the trigger.
    thread::spawn(move || {
        let (mut from, mut to) = (client, server);
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match decide(&shared, &buf[..n]) {
                Step::Forward => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Step::Cut(how) => {
                    cut.store(true, Ordering::SeqCst);
                    if how == Cut::AfterForward {
                        let _ = to.write_all(&buf[..n]);
                        // Let the server act on it before the connection goes.
                        thread::sleep(Duration::from_millis(200));
                    }
                    break;
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
