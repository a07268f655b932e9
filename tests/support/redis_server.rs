//! A real `redis-server` for tests: started on a free port in a private temporary directory,
//! with no persistence of its own (`--save "" --appendonly no`), and killed (its directory
//! removed) on drop. [`RedisServer::stop`] shuts it down the way an operator would, saving
//! the dataset to its directory, and [`RedisServer::restart`] starts it again on the same
//! port from that file: an outage that loses nothing Redis had acknowledged. `make deps`
//! installs `redis-server`; a machine without it fails the tests that need it, loudly.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh server and waits until it answers PING.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kubiya-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for redis-server");
        // A free port can be taken by someone else before redis binds it: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let mut server = Self {
                port,
                dir: dir.clone(),
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Shuts the server down, saving its dataset to its directory first.
    pub fn stop(&mut self) {
        let reply = self.command(&["SHUTDOWN", "SAVE"]);
        // A clean SHUTDOWN closes the connection without a reply.
        assert!(reply.is_none(), "SHUTDOWN SAVE failed: {reply:?}");
        let mut child = self.child.take().expect("the server is running");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "redis-server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on the same port, from the dataset `stop` saved.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Sends one command and returns the first line of the reply (`None` if the connection
    /// closed without one).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        (!line.is_empty()).then(|| line.trim_end().to_owned())
    }

    /// Spawns redis-server on `self.port`; false if it exited (the port was taken).
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("redis-server could not start ({err}); run `make deps` to install it")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command(&["PING"]).as_deref() == Some("+PONG") {
                return true;
            }
            let child = self.child.as_mut().expect("just spawned");
            if child.try_wait().expect("try_wait").is_some() {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
