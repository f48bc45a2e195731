//! A TCP proxy on a free loopback port that relays to a server and, when armed, cuts one
//! connection at a chosen request: after forwarding it (the server acts, the client never hears
//! back: the result of the write is unknown to the client) or before (the server never sees it).
//!
//! A cut after forwarding waits until the server has answered the forwarded request (the answer
//! is swallowed) before it closes the connection, so the server has acted on it; it gives up
//! after [`ANSWER_DEADLINE`], which only a broken server reaches.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// How long a cut after forwarding waits for the server's answer at most.
pub(crate) const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

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

/// Whether the server has answered since the cut (or closed the connection), and a condition
/// variable to wait for it on.
#[derive(Default)]
struct Answered {
    answered: Mutex<bool>,
    changed: Condvar,
}

impl Answered {
    fn set(&self) {
        *self.answered.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Waits until the server answered, for at most `deadline`.
    fn wait(&self, deadline: Duration) {
        let guard = self.answered.lock().unwrap();
        let _ = self
            .changed
            .wait_timeout_while(guard, deadline, |answered| !*answered)
            .unwrap();
    }
}

fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let cut = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Answered::default());
    {
        let mut streams = shared.streams.lock().unwrap();
        streams.push(client.try_clone().unwrap());
        streams.push(server.try_clone().unwrap());
    }
    // Server to client: relays until the connection is cut; the first answer after the cut is
    // swallowed and reported.
    {
        let (mut from, mut to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
        let (cut, answered) = (cut.clone(), answered.clone());
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
            answered.set();
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
                    if how == Cut::AfterForward && to.write_all(&buf[..n]).is_ok() {
                        // The server acts on it: its answer is the sign that it did.
                        answered.wait(ANSWER_DEADLINE);
                    }
                    break;
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
