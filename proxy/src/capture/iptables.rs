//! `SO_ORIGINAL_DST`: the destination a REDIRECT/DNAT rule rewrote, from conntrack.

use std::{
    fs::File,
    mem::{size_of, MaybeUninit},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
    path::Path,
};

use anyhow::{Context, Result};
use tokio::net::TcpStream;

const SO_ORIGINAL_DST: libc::c_int = 80;
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;

/// The pre-NAT destination of a redirected connection (IPv4 or IPv6).
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let fd = stream.as_raw_fd();
    match stream.local_addr().ok()? {
        SocketAddr::V4(_) => {
            let sin: libc::sockaddr_in = getsockopt(fd, libc::SOL_IP, SO_ORIGINAL_DST)?;
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        SocketAddr::V6(_) => {
            let sin6: libc::sockaddr_in6 = getsockopt(fd, libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST)?;
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
    }
}

fn getsockopt<T: Copy>(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> Option<T> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a writable buffer of `len` bytes for a plain C struct.
    let rc = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
    // SAFETY: the kernel filled the struct (it was zeroed before, so any short write is defined).
    (rc == 0).then(|| unsafe { value.assume_init() })
}

/// A listener inside another network namespace (a pod's), as ztunnel's in-pod mode does: the
/// pod's REDIRECT rule sends its connections to this socket, and `SO_ORIGINAL_DST` finds them in
/// the pod's conntrack table. Only the socket lives there; strait itself stays where it is.
pub fn listen_in_netns(netns: &Path, addr: SocketAddr) -> Result<std::net::TcpListener> {
    let netns = File::open(netns)
        .with_context(|| format!("opening network namespace {}", netns.display()))?;
    // setns changes only the calling thread: do it on a thread of its own.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the network namespace")?;
                let listener =
                    std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the listener thread panicked"))?
    })
}
