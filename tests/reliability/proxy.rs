//! A TCP forwarder on a fixed loopback port that can be "unplugged": while closed, nothing
//! listens on its port (connections are refused) and open connections are cut, as when Wi-Fi
//! drops; opened again, it listens on the same port and forwards to the target.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The forwarder.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<new port>` to `target` (`http://127.0.0.1:PORT`), open at start.
    pub fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, s) = (open.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
            let mut listener = Some(first);
            if let Some(l) = &listener {
                l.set_nonblocking(true).unwrap();
            }
            while !s.load(Ordering::SeqCst) {
                let want_open = o.load(Ordering::SeqCst);
                if !want_open && listener.is_some() {
                    listener = None;
                    for c in conns.lock().unwrap().drain(..) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                }
                if want_open && listener.is_none() {
                    match TcpListener::bind(("127.0.0.1", port)) {
                        Ok(l) => {
                            l.set_nonblocking(true).unwrap();
                            listener = Some(l);
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    }
                }
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
            stop,
            thread: Some(thread),
        }
    }

    /// Unplugs (`false`: refused, open connections cut) or plugs in (`true`).
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        // Let the forwarder thread act on it.
        std::thread::sleep(Duration::from_millis(30));
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

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
