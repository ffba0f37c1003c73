//! A TCP forwarder on a fixed loopback port that can be "unplugged": while closed, nothing
//! listens on its port (connections are refused) and open connections are cut, as when Wi-Fi
//! drops; opened again, it listens on the same port and forwards to the target.
//!
//! While unplugged the port stays *bound* (a second, never-listening socket holds it, both with
//! `SO_REUSEPORT` and without `SO_REUSEADDR`), so no other test running in parallel can bind it,
//! be given it by `bind(…:0)`, or use it as a client's source port:
//! before that holder existed, a parallel test's server once took the released port and the
//! "refused" cell saw that server's resets instead (CI, session 2).

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The forwarder.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    open: Arc<AtomicBool>,
    /// Whether the forwarder thread is listening now (it follows `open`).
    listening: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<new port>` to `target` (`http://127.0.0.1:PORT`), open at start.
    pub fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        // Holds the port for the proxy's whole life; it never listens.
        let holder = shared_socket(0).expect("a loopback port");
        let port = holder.local_addr().unwrap().as_socket().unwrap().port();
        let first = listen_on(port).expect("listening on the held port");
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let listening = Arc::new(AtomicBool::new(true));
        let (o, s, lis) = (open.clone(), stop.clone(), listening.clone());
        let thread = std::thread::spawn(move || {
            let _holder = holder;
            let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
            let mut listener = Some(first);
            while !s.load(Ordering::SeqCst) {
                let want_open = o.load(Ordering::SeqCst);
                if !want_open && listener.is_some() {
                    listener = None;
                    for c in conns.lock().unwrap().drain(..) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                }
                if want_open && listener.is_none() {
                    match listen_on(port) {
                        Ok(l) => listener = Some(l),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    }
                }
                lis.store(listener.is_some(), Ordering::SeqCst);
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = TcpStream::connect(&target) else {
                            continue;
                        };
                        {
                            let mut c = conns.lock().unwrap();
                            c.push(client.try_clone().unwrap());
                            c.push(upstream.try_clone().unwrap());
                        }
                        pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        pipe(upstream, client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
            for c in conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        });
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            open,
            listening,
            stop,
            thread: Some(thread),
        }
    }

    /// Unplugs (`false`: refused, open connections cut) or plugs in (`true`).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        // Wait until the forwarder thread has acted on it (a fixed sleep lost the race on a
        // loaded machine: the test connected before the listener was closed).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.listening.load(Ordering::SeqCst) != open && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Plugs in after `delay`, from another thread.
    pub fn open_after(&self, delay: Duration) {
        let o = self.open.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            o.store(true, Ordering::SeqCst);
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP socket on 127.0.0.1:`port` with `SO_REUSEPORT`, bound but not listening. Such sockets
/// (same user) share a port; sockets without `SO_REUSEPORT` — std's and tokio's listeners set
/// only `SO_REUSEADDR` — cannot bind it, and `bind(…:0)` skips it.
fn shared_socket(port: u16) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    Ok(s)
}

/// A non-blocking listener on the held port.
fn listen_on(port: u16) -> std::io::Result<TcpListener> {
    let s = shared_socket(port)?;
    s.listen(128)?;
    let l: TcpListener = s.into();
    l.set_nonblocking(true)?;
    Ok(l)
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Unplugged, the proxy refuses connections, yet its port cannot be taken by anyone else; plugged
/// in again, it forwards on the same port.
#[test]
fn unplugged_proxy_refuses_and_keeps_its_port() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", upstream.local_addr().unwrap());
    let proxy = Proxy::start(&target);
    let addr = proxy.url.trim_start_matches("http://").to_string();
    proxy.set_open(false);
    let err = TcpStream::connect(&addr).expect_err("an unplugged proxy refuses");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    // Another server (std's and tokio's listeners set SO_REUSEADDR) cannot bind it meanwhile.
    let taken = TcpListener::bind(&addr);
    assert!(taken.is_err(), "the port was free while unplugged: {taken:?}");
    proxy.set_open(true);
    std::thread::sleep(Duration::from_millis(50));
    TcpStream::connect(&addr).expect("plugged in again, the proxy accepts");
}
