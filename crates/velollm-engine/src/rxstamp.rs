//! Kernel receive timestamps: when a response's bytes reached this host, not when the client got round to
//! reading them.
//!
//! A client stamps a chunk when it reads it. Under load it reads late: its thread was busy with other
//! streams, or the scheduler ran something else, and every such delay would be added to the server's TTFT
//! and ITL. [`RxSocket`] asks the kernel (`SO_TIMESTAMPNS`) to stamp every packet as it is received
//! (software receive timestamps: on loopback, during the sender's `write()`; on a network, when the network
//! stack receives it) and reads the socket with `recvmsg`, which returns the stamp of the newest data the
//! read delivered. [`Arrivals`] keeps that stamp, on the run's [`Clock`], for the code that reads the
//! response: a chunk is then stamped at the arrival of the read that carried it, which the client's own
//! scheduling no longer moves.
//!
//! The kernel stamps on the wall clock (`CLOCK_REALTIME`). Each read converts its stamp to the monotonic
//! clock by the age it has at that instant (`wall now − stamp`, subtracted from `monotonic now`): the age is
//! small, so a wall clock that is slewed (NTP) changes it by nothing measurable; a wall clock that steps
//! gives an age below zero or above [`MAX_AGE`], and that read keeps the instant of the read itself. So does
//! a read of data the kernel did not stamp. The kernel turns stamping on for the whole machine a moment after
//! the first socket asks for it (deferred work: about 0.1 ms, 4 ms at worst on an idle 2-core machine, more
//! under load), and turns it off again when the last such socket closes; a packet received in between has no
//! stamp. So before its first stamped socket, a process turns stamping on with a loopback pair of its own,
//! waits until that pair's packets come stamped (at most [`STAMPING_WAIT`]), and keeps the pair open until it
//! exits ([`keep_stamping_on`]).
//!
//! What it cannot undo: one read that delivers several chunks gives all of them the newest one's arrival
//! (TCP keeps one stamp per read), as reading did before. So a stamp is never earlier than its data
//! arrived: it can only err late, by less than reading late errs. Where the kernel gives no stamp
//! (another OS, or `VELOLLM_USER_STAMPS=1`), [`Arrivals::stamp`] returns the read instant, as before.

use crate::transport::Clock;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use velollm_core::measure::record::Nanos;

/// The oldest a kernel stamp may be when it is read; an older one (or one from the future) means the wall
/// clock stepped, and the read's own instant is used instead.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// The longest [`keep_stamping_on`] waits for the kernel to stamp packets.
pub const STAMPING_WAIT: Duration = Duration::from_millis(500);

/// The environment variable that turns kernel stamps off (`1`): chunks are then stamped when read.
pub const USER_STAMPS_ENV: &str = "VELOLLM_USER_STAMPS";

/// The arrival of the newest data read from a socket, on the run's clock: its kernel stamp, or the instant
/// of the read when the kernel gave none.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Nanoseconds + 1 (0: none yet).
    latest: AtomicU64,
}

impl Arrivals {
    /// The newest arrival so far (`None` before the first read of a stamped socket).
    pub fn latest(&self) -> Option<Nanos> {
        match self.latest.load(Ordering::Acquire) {
            0 => None,
            t => Some(t - 1),
        }
    }

    /// The stamp of data just read at `now`: the arrival of the newest read, never later than `now`
    /// (`now` itself when there is none).
    pub fn stamp(&self, now: Nanos) -> Nanos {
        self.latest().map_or(now, |t| t.min(now))
    }

    fn record(&self, t: Nanos) {
        self.latest.fetch_max(t + 1, Ordering::AcqRel);
    }
}

/// True unless `VELOLLM_USER_STAMPS=1` turns kernel stamps off (read once per process).
pub fn kernel_stamps_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var(USER_STAMPS_ENV).map_or(true, |v| v.trim() != "1"))
}

/// How this process stamps chunk arrivals, as results record it: `kernel-arrival` (each socket asks the
/// kernel; one that gets no stamp falls back to the read) or `read`.
pub fn stamping() -> &'static str {
    if kernel_stamps_wanted() && cfg!(target_os = "linux") { "kernel-arrival" } else { "read" }
}

/// A TCP socket read with `recvmsg`, recording each read's kernel arrival stamp in its [`Arrivals`].
pub struct RxSocket {
    fd: AsyncFd<std::net::TcpStream>,
    arrivals: Arc<Arrivals>,
    clock: Clock,
    /// Whether the kernel was asked to stamp (else reads are plain reads).
    stamped: bool,
}

thread_local! {
    /// `recvmsg` needs initialised memory; one buffer per thread, the data then copied into the reader's.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

impl RxSocket {
    /// Take over `stream` (set to no-delay by the caller); kernel stamps are asked for when
    /// [`kernel_stamps_wanted`] and the OS has them.
    pub fn new(stream: TcpStream, clock: Clock) -> io::Result<RxSocket> {
        let std = stream.into_std()?;
        let stamped = kernel_stamps_wanted() && {
            keep_stamping_on();
            enable_stamps(&std)
        };
        // `AsyncFd::new` is deprecated because a generic `T` could close or replace its descriptor while it is
        // registered; a `TcpStream` owned by the `AsyncFd` keeps its descriptor until both are dropped.
        #[allow(deprecated)]
        let fd = AsyncFd::new(std)?;
        Ok(RxSocket { fd, arrivals: Arc::default(), clock, stamped })
    }

    /// The arrivals of this socket (shared with whoever reads the responses).
    pub fn arrivals(&self) -> Arc<Arrivals> {
        self.arrivals.clone()
    }

    /// Whether the kernel stamps this socket's packets.
    pub fn is_stamped(&self) -> bool {
        self.stamped
    }

    /// Read into `into`, recording the data's arrival (see [`arrival`]).
    fn recv(&self, into: &mut [u8]) -> io::Result<usize> {
        if self.stamped {
            let (n, stamp) = recv_stamped(self.fd.get_ref(), into)?;
            if n > 0 {
                self.arrivals.record(self.clock.at(arrival(stamp)));
            }
            Ok(n)
        } else {
            self.fd.get_ref().read(into)
        }
    }

    /// Read what the socket holds into `into` (0 bytes: the peer closed it), recording the data's arrival.
    pub fn poll_recv(&self, cx: &mut Context<'_>, into: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|_| self.recv(into)) {
                Ok(Ok(n)) => {
                    // A short read emptied the socket: wait for the next readiness event instead of
                    // finding that out with one more (failing) call, as tokio's own TcpStream does.
                    if n > 0 && n < into.len() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Turn the kernel's receive stamping on for this process's lifetime, and wait (at most [`STAMPING_WAIT`],
/// once per process) until a packet sent now comes stamped; true when it does. Without it, the first packets
/// of a run could arrive before the kernel's deferred switch and keep the instant they are read.
pub fn keep_stamping_on() -> bool {
    static ANCHOR: std::sync::OnceLock<Anchor> = std::sync::OnceLock::new();
    ANCHOR.get_or_init(Anchor::new).stamped
}

/// A loopback pair whose receiving end asks for stamps: while it is open, stamping stays on.
struct Anchor {
    _pair: Option<(std::net::TcpStream, std::net::TcpStream)>,
    /// Whether one of its packets came stamped within [`STAMPING_WAIT`].
    stamped: bool,
}

impl Anchor {
    fn new() -> Anchor {
        let pair = (|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let tx = std::net::TcpStream::connect(listener.local_addr().ok()?).ok()?;
            let (rx, _) = listener.accept().ok()?;
            tx.set_nodelay(true).ok()?;
            enable_stamps(&rx).then_some((tx, rx))
        })();
        // Kept open even when the wait gives up: stamping then comes on a little later.
        let stamped = pair.as_ref().is_some_and(|(tx, rx)| Anchor::wait(tx, rx));
        Anchor { _pair: pair, stamped }
    }

    /// Send a byte and read it back until it comes stamped (false: not within [`STAMPING_WAIT`]).
    fn wait(mut tx: &std::net::TcpStream, rx: &std::net::TcpStream) -> bool {
        let deadline = Instant::now() + STAMPING_WAIT;
        let mut buf = [0u8; 64];
        while Instant::now() < deadline {
            if tx.write_all(b".").is_err() {
                return false;
            }
            // Loopback delivers during the write; a byte not there yet is read on the next round.
            match recv_stamped(rx, &mut buf) {
                Ok((n, Some(_))) if n > 0 => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        false
    }
}

/// Ask the kernel for software receive stamps on `socket`.
#[cfg(target_os = "linux")]
fn enable_stamps(socket: &std::net::TcpStream) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn enable_stamps(_: &std::net::TcpStream) -> bool {
    false
}

/// One `recvmsg`: the bytes read and the kernel's wall-clock stamp of the newest of them.
#[cfg(target_os = "linux")]
fn recv_stamped(socket: &std::net::TcpStream, into: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [IoSliceMut::new(into)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let stamp = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(ts) => {
                Some(Duration::new(u64::try_from(ts.tv_sec()).ok()?, u32::try_from(ts.tv_nsec()).ok()?))
            }
            _ => None,
        })
    });
    Ok((msg.bytes, stamp))
}

#[cfg(not(target_os = "linux"))]
fn recv_stamped(socket: &std::net::TcpStream, into: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut socket = socket;
    Ok((socket.read(into)?, None))
}

/// The monotonic instant at which the data of a read arrived: its kernel stamp (time since the epoch) by
/// its age, or the instant of the read itself when there is no stamp or the wall clock stepped. Data read
/// now is never stamped with an older read's arrival. The wall clock is read first, so the stamp's age is
/// never overestimated by a pause between the two readings: the instant can only come out late, never
/// early.
fn arrival(stamp: Option<Duration>) -> Instant {
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok();
    let now = Instant::now();
    stamp.zip(wall).and_then(|(stamp, wall)| arrival_at(stamp, wall, now)).unwrap_or(now)
}

/// [`arrival`] with the clocks read: `None` when the age is below zero or above [`MAX_AGE`] (the wall
/// clock stepped).
fn arrival_at(stamp: Duration, wall: Duration, now: Instant) -> Option<Instant> {
    let age = wall.checked_sub(stamp)?;
    if age > MAX_AGE {
        return None;
    }
    now.checked_sub(age)
}

impl AsyncRead for RxSocket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // `recvmsg` needs initialised memory: read into the thread's scratch buffer, then copy.
        SCRATCH.with_borrow_mut(|scratch| {
            let want = buf.remaining().min(scratch.len());
            let n = ready!(self.poll_recv(cx, &mut scratch[..want]))?;
            buf.put_slice(&scratch[..n]);
            Poll::Ready(Ok(()))
        })
    }
}

impl AsyncWrite for RxSocket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().write(data)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| fd.get_ref().write_vectored(bufs)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.fd.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn stamp_is_never_later_than_the_read() {
        let a = Arrivals::default();
        assert_eq!(a.stamp(500), 500, "no kernel stamp: the read instant");
        a.record(300);
        assert_eq!(a.stamp(500), 300);
        a.record(200);
        assert_eq!(a.latest(), Some(300), "the newest arrival is kept");
        assert_eq!(a.stamp(250), 250, "never later than the read");
    }

    #[test]
    fn a_stepped_wall_clock_is_not_trusted() {
        let now = Instant::now();
        let wall = Duration::from_secs(1_800_000_000);
        assert!(arrival_at(wall + Duration::from_secs(5), wall, now).is_none(), "a stamp from the future");
        assert!(arrival_at(wall - MAX_AGE - Duration::from_secs(1), wall, now).is_none(), "too old");
        let t = arrival_at(wall - Duration::from_millis(10), wall, now).unwrap();
        assert_eq!(now - t, Duration::from_millis(10));
        // No stamp, or a stepped clock: the instant of the read, never an older read's arrival.
        for stamp in [None, Some(Duration::ZERO)] {
            let before = Instant::now();
            let t = arrival(stamp);
            assert!(before <= t && t <= Instant::now(), "{stamp:?}");
        }
    }

    /// A read asking for more than the per-thread buffer holds gets what fits and keeps reading: the socket
    /// is not taken for empty (that lost the rest of a 10 MB chunk once).
    #[tokio::test]
    async fn reads_larger_than_the_scratch_buffer_get_everything() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = RxSocket::new(TcpStream::connect(addr).await.unwrap(), Clock::start()).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let sent = vec![7u8; 3 << 20];
        let writer = tokio::spawn(async move {
            server.write_all(&sent).await.unwrap();
            server.shutdown().await.unwrap();
        });
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 20];
        let read = async {
            loop {
                match client.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => got += n,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("the read does not stall");
        writer.await.unwrap();
        assert_eq!(got, 3 << 20);
    }

    /// Once [`keep_stamping_on`] has returned, the very first packet a fresh socket receives is stamped: the
    /// kernel's deferred switch no longer leaves the start of a run on read instants.
    #[test]
    fn the_first_packet_of_a_fresh_socket_is_stamped() {
        if !keep_stamping_on() {
            eprintln!("this kernel gives no receive stamps; nothing to check");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        for _ in 0..50 {
            let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (rx, _) = listener.accept().unwrap();
            assert!(enable_stamps(&rx));
            tx.write_all(b"x").unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 8];
            let (n, stamp) = loop {
                match recv_stamped(&rx, &mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(50)),
                    other => break other.unwrap(),
                }
            };
            assert_eq!(n, 1);
            assert!(stamp.is_some(), "the first packet of a fresh socket came without a kernel stamp");
        }
    }

    /// The point of kernel stamps: data that waited in the socket while the reader was busy is stamped
    /// when it arrived, not when it was read.
    #[tokio::test]
    async fn data_read_late_is_stamped_at_its_arrival() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clock = Clock::start();
        let mut client = RxSocket::new(TcpStream::connect(addr).await.unwrap(), clock).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        if !client.is_stamped() {
            eprintln!("this kernel gives no receive stamps; nothing to check");
            return;
        }
        let arrivals = client.arrivals();
        // No pause for the kernel's deferred switch: `RxSocket::new` waited until stamping was on.
        let before = clock.now();
        server.write_all(b"hello").await.unwrap();
        let after = clock.now();
        // The reader is busy for 50 ms while the bytes wait in the socket.
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let n = client.read(&mut buf).await.unwrap();
        let read_at = clock.now();
        assert_eq!(&buf[..n], b"hello");
        let stamp = arrivals.stamp(read_at);
        assert!(stamp >= before, "stamped before it was written: {stamp} < {before}");
        assert!(stamp <= after + 5_000_000, "stamp {} ms after the write", (stamp - after) as f64 / 1e6);
        assert!(read_at - stamp >= 45_000_000, "the wait in the socket is not in the stamp");
        // And writes go through.
        client.write_all(b"ok").await.unwrap();
        let mut back = [0u8; 2];
        server.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ok");
    }
}
