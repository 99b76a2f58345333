//! Background load for root tests: short loopback connections at a steady rate, stopped when
//! dropped. For tests that need traffic while they do something else (kill a daemon, stop a
//! hub); tests that check exact bytes use trafficgen instead.
use std::time::Duration;

/// Short loopback connections at about `per_sec` a second (each sends 100 bytes) until
/// dropped; bounded to 60 s whatever happens.
pub struct Loopback {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Loopback {
    pub fn start(per_sec: u64) -> Loopback {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let s1 = stop.clone();
        let server = std::thread::spawn(move || {
            let end = std::time::Instant::now() + Duration::from_secs(60);
            while !s1.load(Ordering::Relaxed) && std::time::Instant::now() < end {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let mut buf = [0u8; 128];
                        let _ = c.read(&mut buf);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        let s2 = stop.clone();
        let client = std::thread::spawn(move || {
            let end = std::time::Instant::now() + Duration::from_secs(60);
            let gap = Duration::from_micros(1_000_000 / per_sec.max(1));
            while !s2.load(Ordering::Relaxed) && std::time::Instant::now() < end {
                if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                    let _ = c.write_all(&[7u8; 100]);
                }
                std::thread::sleep(gap);
            }
        });
        Loopback {
            stop,
            threads: vec![server, client],
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
