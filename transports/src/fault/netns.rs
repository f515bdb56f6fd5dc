//! Kernel-level faults: a private two-host network in Linux network
//! namespaces, whose cable a test can pull.
//!
//! A userspace proxy cannot test the kernel's own liveness (keepalive,
//! TCP_USER_TIMEOUT): the client's kernel talks to the proxy's kernel, which
//! acknowledges everything. [`NetnsPair`] builds two namespaces, `a` and
//! `b`, joined by a veth pair with the addresses 10.203.0.1/30 (`a`) and
//! 10.203.0.2/30 (`b`). These addresses exist only inside the two
//! namespaces: traffic between them never reaches the host's interfaces.
//! Sockets are made inside a namespace by code run with [`Netns::run`] or
//! [`Netns::block_on`] (a thread that entered the namespace with `setns`);
//! a socket stays in the namespace it was created in, whatever thread uses
//! it later.
//!
//! [`NetnsPair::pull_cable`] installs nftables rules that drop every IP
//! packet arriving over the veth in both namespaces: each side keeps
//! sending and hears nothing, with no error from its own kernel (ARP still
//! works, so no "host unreachable" either): a pulled cable somewhere along
//! the path. [`NetnsPair::plug_cable`] removes the rules.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` from iproute2 and `nft`
//! from nftables (`apt-get install -y iproute2 nftables`). [`check`] tells
//! whether this machine can, so that tests can skip with a reason.
//!
//! Namespaces are named `tether-<pid>-<n>-a` / `-b`, so parallel tests and
//! processes never clash; dropping the pair deletes both (with their rules
//! and veth), also when the test panics. Namespaces left behind by a killed
//! process are deleted by the next [`NetnsPair::create`].
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use tether_transports::fault::netns::{self, NetnsPair};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! if let Err(why) = netns::check() {
//!     eprintln!("skipped: {why}");
//!     return Ok(());
//! }
//! let lab = NetnsPair::create()?;
//! let server = lab.b().run(|| TcpListener::bind((lab.b().addr(), 0)))??;
//! let to = server.local_addr()?;
//! let mut client = lab.a().run(|| TcpStream::connect(to))??;
//! let (mut accepted, _) = server.accept()?;
//! client.write_all(b"hi")?;
//! let mut buf = [0u8; 2];
//! accepted.read_exact(&mut buf)?;
//!
//! lab.pull_cable()?; // from now on, silence both ways
//! lab.plug_cable()?;
//! # Ok(()) }
//! ```

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use thiserror::Error;

/// Where `ip netns add` pins named namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// The veth end's name inside each namespace (names are per namespace).
const VETH: &str = "veth0";
/// The nftables table holding the fault rules in each namespace.
const TABLE: &str = "tether_fault";
/// The /30 both ends live in; `a` is .1, `b` is .2.
const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
const PREFIX: u8 = 30;

/// Why a namespace lab could not be built or changed.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// This machine cannot run the lab (not root, `ip` or `nft` missing, no
    /// namespace support). Tests should skip, printing this reason.
    #[error("network namespace lab unavailable: {0}")]
    Unavailable(String),
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        detail: String,
    },
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Checks that this process can build a lab: running as root, with `ip`
/// (iproute2) and `nft` (nftables) installed and network namespaces
/// supported. The error says what is missing.
pub fn check() -> Result<(), NetnsError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetnsError::Unavailable(
            "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)".into(),
        ));
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Err(NetnsError::Unavailable(
            "the kernel has no network namespaces".into(),
        ));
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(NetnsError::Unavailable(format!(
                "`{tool}` not found: apt-get install -y {package}"
            )));
        }
    }
    Ok(())
}

/// One network namespace of a [`NetnsPair`].
#[derive(Debug)]
pub struct Netns {
    name: String,
    addr: Ipv4Addr,
}

impl Netns {
    /// The namespace's name (for `ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This end's address on the veth link.
    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.addr)
    }

    fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `f` on a new thread inside this namespace and returns its
    /// result: every socket `f` creates belongs to the namespace. A panic
    /// in `f` is passed on to the caller.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let ns = File::open(self.path())?;
        let joined = std::thread::scope(|s| {
            s.spawn(move || {
                enter(&ns)?;
                Ok(f())
            })
            .join()
        });
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Runs the future made by `make` to completion on a current-thread
    /// tokio runtime (I/O and time enabled) inside this namespace: every
    /// socket it, its spawned tasks or its blocking threads create belongs
    /// to the namespace.
    pub fn block_on<T, Fut, F>(&self, make: F) -> io::Result<T>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        self.run(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(make()))
        })?
    }

    /// A command that runs `program` inside this namespace
    /// (`ip netns exec NAME program`); add arguments and run it.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Drops every IP packet that arrives over the veth (an nftables rule
    /// in this namespace); loopback inside the namespace still works.
    /// Idempotent.
    pub fn drop_inbound(&self) -> Result<(), NetnsError> {
        self.nft(&format!(
            "add table inet {TABLE}\n\
             delete table inet {TABLE}\n\
             table inet {TABLE} {{\n\
               chain inbound {{\n\
                 type filter hook prerouting priority -300; policy accept;\n\
                 iifname \"{VETH}\" drop\n\
               }}\n\
             }}\n"
        ))
    }

    /// Removes the rules of [`Netns::drop_inbound`]. Idempotent.
    pub fn allow_inbound(&self) -> Result<(), NetnsError> {
        self.nft(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
    }

    /// Loads an nftables script in this namespace, in one transaction.
    fn nft(&self, script: &str) -> Result<(), NetnsError> {
        use std::io::Write;
        let mut cmd = self.command("nft");
        cmd.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = describe(&cmd);
        let mut child = cmd.spawn().map_err(|e| spawn_failed(&line, e))?;
        let written = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes());
        let output = child.wait_with_output()?;
        written?;
        check_output(&line, &output)
    }
}

/// Two network namespaces joined by a veth pair: a private network of two
/// hosts, deleted on drop. See the [module docs](self).
#[derive(Debug)]
pub struct NetnsPair {
    a: Netns,
    b: Netns,
}

impl NetnsPair {
    /// Creates both namespaces, the veth pair between them and the
    /// addresses, with loopback up in each. Fails with
    /// [`NetnsError::Unavailable`] when [`check`] does.
    pub fn create() -> Result<Self, NetnsError> {
        check()?;
        sweep_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("tether-{}-{n}", std::process::id());
        let mut pair = Self {
            a: Netns {
                name: format!("{base}-a"),
                addr: ADDR_A,
            },
            b: Netns {
                name: format!("{base}-b"),
                addr: ADDR_B,
            },
        };
        // From here on, Drop deletes whatever was made (an emptied name is
        // skipped).
        if let Err(e) = ip(&["netns", "add", &pair.a.name]) {
            pair.a.name.clear();
            pair.b.name.clear();
            return Err(first_step(e));
        }
        if let Err(e) = ip(&["netns", "add", &pair.b.name]) {
            // Only `a` exists: do not try to delete `b`, which may be
            // someone else's (a name clash is the likely failure).
            let _ = ip(&["netns", "del", &pair.a.name]);
            pair.a.name.clear();
            pair.b.name.clear();
            return Err(e);
        }
        ip(&[
            "-n",
            &pair.a.name,
            "link",
            "add",
            VETH,
            "type",
            "veth",
            "peer",
            "name",
            VETH,
            "netns",
            &pair.b.name,
        ])?;
        for ns in [&pair.a, &pair.b] {
            let cidr = format!("{}/{PREFIX}", ns.addr);
            ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", VETH])?;
            ip(&["-n", &ns.name, "link", "set", VETH, "up"])?;
            ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// The first host, 10.203.0.1 (by convention the client).
    pub fn a(&self) -> &Netns {
        &self.a
    }

    /// The second host, 10.203.0.2 (by convention the server).
    pub fn b(&self) -> &Netns {
        &self.b
    }

    /// Pulls the cable: from now on every packet between the two is lost,
    /// both ways, silently. Idempotent.
    pub fn pull_cable(&self) -> Result<(), NetnsError> {
        self.a.drop_inbound()?;
        self.b.drop_inbound()
    }

    /// Plugs the cable back in: removes the rules of
    /// [`NetnsPair::pull_cable`] (and of [`Netns::drop_inbound`]).
    pub fn plug_cable(&self) -> Result<(), NetnsError> {
        self.a.allow_inbound()?;
        self.b.allow_inbound()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Rules and veth die with their namespaces; sockets still open in a
        // namespace keep it alive, unnamed, until they close.
        for ns in [&self.a, &self.b] {
            if !ns.name.is_empty() {
                if let Err(e) = ip(&["netns", "del", &ns.name]) {
                    eprintln!("tether netns lab: could not delete {}: {e}", ns.name);
                }
            }
        }
    }
}

/// Enters the network namespace `ns` on the calling thread.
fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: `ns` is an open namespace file for the duration of the call;
    // setns only changes the calling thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The first `ip netns add` tells whether this machine can do it at all.
fn first_step(e: NetnsError) -> NetnsError {
    match e {
        NetnsError::Command { command, detail } => NetnsError::Unavailable(format!(
            "`{command}` failed ({detail}); network namespaces need root outside a \
             restricted container"
        )),
        other => other,
    }
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let line = describe(&cmd);
    let output = cmd.output().map_err(|e| spawn_failed(&line, e))?;
    check_output(&line, &output)
}

fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

fn spawn_failed(line: &str, e: io::Error) -> NetnsError {
    if e.kind() == io::ErrorKind::NotFound {
        NetnsError::Unavailable(format!("`{line}`: program not found"))
    } else {
        NetnsError::Io(e)
    }
}

fn check_output(line: &str, output: &Output) -> Result<(), NetnsError> {
    if output.status.success() {
        return Ok(());
    }
    Err(NetnsError::Command {
        command: line.to_string(),
        detail: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// Deletes lab namespaces whose creating process is gone (killed tests).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("tether-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}
