//! The kernel/user contract of strait.
//!
//! Everything both sides of a BPF map must agree on lives here and only here: map names, key and
//! value layouts (`#[repr(C)]`, no implicit padding), byte orders and constants. The eBPF programs
//! (`ebpf/`) and the proxy's capture module (`proxy/src/capture`) both build on these types.
//!
//! Byte orders follow the kernel's `bpf_sock_addr`: addresses and ports are kept in network order,
//! exactly as the kernel hands them over, so the hot path never converts.
#![no_std]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Map names, as the user-space loader looks them up in the object.
pub mod maps {
    /// `HashMap<SockAddr, ServiceFlags>`: the Service addresses (cluster IP, port) to capture.
    pub const SERVICES: &str = "SERVICES";
    /// `Array<ProxyConfig>` with one entry: where to redirect, and the proxy's liveness.
    pub const PROXY: &str = "PROXY";
    /// `LruHashMap<u64, SockAddr>`: original destination by socket cookie (written in connect).
    pub const ORIG_DST_BY_COOKIE: &str = "ORIG_DST_COOKIE";
    /// `LruHashMap<ConnTuple, SockAddr>`: original destination by the client's 4-tuple (written in
    /// sockops when the client's connection is established; the proxy reads and deletes it).
    pub const ORIG_DST_BY_TUPLE: &str = "ORIG_DST_TUPLE";
    /// `PerCpuHashMap<SockAddr, Counters>`: per Service address, summed over CPUs in user space.
    pub const COUNTERS: &str = "COUNTERS";
    /// `HashMap<u64, u32>`: the cgroup ids of the enrolled pods (with [`ENROLL_LISTED`]).
    pub const ENROLLED: &str = "ENROLLED";

    /// Every map, pinned by these names so that a restarted strait shares them.
    pub const ALL: [&str; 6] = [
        SERVICES,
        PROXY,
        ORIG_DST_BY_COOKIE,
        ORIG_DST_BY_TUPLE,
        COUNTERS,
        ENROLLED,
    ];
}

/// The version of the maps' layouts, the name of their pin directory (`v1` under the pin root).
/// Bump it with any change to a map's key, value or size: a strait never opens maps pinned by
/// another layout (aya reuses a pinned map without checking its types).
pub const KERNEL_STATE_VERSION: u32 = 2;

/// Program names (the function names in `ebpf/src/main.rs`).
pub mod programs {
    pub const CONNECT4: &str = "connect4";
    pub const CONNECT6: &str = "connect6";
    pub const GETPEERNAME4: &str = "getpeername4";
    pub const GETPEERNAME6: &str = "getpeername6";
    pub const SOCKOPS: &str = "strait_sockops";
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Capacity of the Service map: Service ports, cluster-wide.
pub const MAX_SERVICES: u32 = 65_536;
/// Capacity of the per-connection maps (LRU: the oldest entries go first when full).
pub const MAX_CONNECTIONS: u32 = 262_144;
/// Capacity of the counter map.
pub const MAX_COUNTERS: u32 = 65_536;
/// Capacity of the enrolled pods map: pods on one node.
pub const MAX_ENROLLED: u32 = 16_384;
/// How deep below the cgroup v2 root a pod's cgroup may sit (kubelet's systemd layout puts a
/// Burstable pod at depth 3, its containers at 4).
pub const MAX_CGROUP_DEPTH: i32 = 8;

/// [`ProxyConfig::enroll`]: every process in the cgroup the programs are attached to.
pub const ENROLL_ALL: u32 = 0;
/// [`ProxyConfig::enroll`]: only processes in (or below) a cgroup listed in `ENROLLED`.
pub const ENROLL_LISTED: u32 = 1;

/// The kernel stops redirecting when the proxy's heartbeat is older than this (fail open).
pub const HEARTBEAT_TIMEOUT_NS: u64 = 2_000_000_000;
/// How often the proxy refreshes its heartbeat; well inside [`HEARTBEAT_TIMEOUT_NS`].
pub const HEARTBEAT_INTERVAL_MS: u64 = 500;

/// SO_MARK the proxy sets on its own upstream sockets; the kernel never redirects them (no loop).
/// The same value Istio uses for its proxies' traffic.
pub const PROXY_SOCKET_MARK: u32 = 1337;

/// A socket address as the kernel sees it: IPv4 in `ip[0]`, IPv6 in all four words, each word and
/// the port in network byte order. IPv4-mapped IPv6 addresses are always stored as IPv4.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SockAddr {
    pub ip: [u32; 4],
    /// Network byte order.
    pub port: u16,
    pub family: u16,
}

impl SockAddr {
    /// From the kernel's representation of an IPv4 address and port (both network order).
    #[inline(always)]
    pub const fn from_raw_v4(ip_be: u32, port_be: u16) -> Self {
        Self {
            ip: [ip_be, 0, 0, 0],
            port: port_be,
            family: AF_INET,
        }
    }

    /// From the kernel's IPv6 words (network order); IPv4-mapped addresses become IPv4.
    #[inline(always)]
    pub const fn from_raw_v6(ip_be: [u32; 4], port_be: u16) -> Self {
        if is_v4_mapped(ip_be) {
            Self::from_raw_v4(ip_be[3], port_be)
        } else {
            Self {
                ip: ip_be,
                port: port_be,
                family: AF_INET6,
            }
        }
    }

    pub const fn is_v4(&self) -> bool {
        self.family == AF_INET
    }

    /// The address as IPv6 words, IPv4 as `::ffff:a.b.c.d`.
    #[inline(always)]
    pub const fn to_raw_v6(&self) -> [u32; 4] {
        if self.is_v4() {
            [0, 0, V4_MAPPED_PREFIX_WORD, self.ip[0]]
        } else {
            self.ip
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        let port = u16::from_be(self.port);
        let ip = if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.ip[0].to_ne_bytes()))
        } else {
            let mut octets = [0u8; 16];
            for (chunk, word) in octets.chunks_exact_mut(4).zip(self.ip) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        };
        SocketAddr::new(ip, port)
    }
}

impl core::fmt::Display for SockAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.socket_addr())
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> Self {
        let port = addr.port().to_be();
        match addr.ip() {
            IpAddr::V4(ip) => Self::from_raw_v4(u32::from_ne_bytes(ip.octets()), port),
            IpAddr::V6(ip) => {
                let o = ip.octets();
                let word = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                Self::from_raw_v6([word(0), word(4), word(8), word(12)], port)
            }
        }
    }
}

/// The third word of an IPv4-mapped IPv6 address (`::ffff:0:0/96`), as the kernel stores it.
pub const V4_MAPPED_PREFIX_WORD: u32 = 0x0000_ffffu32.to_be();

#[inline(always)]
pub const fn is_v4_mapped(ip_be: [u32; 4]) -> bool {
    ip_be[0] == 0 && ip_be[1] == 0 && ip_be[2] == V4_MAPPED_PREFIX_WORD
}

/// A captured connection as its client sees it: its own address and the proxy's.
/// The proxy builds the same key from an accepted socket's peer and local addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnTuple {
    pub client: SockAddr,
    pub proxy: SockAddr,
}

/// Value of the Service map. Reserved for per-Service capture options; zero today.
pub type ServiceFlags = u32;

/// Where the kernel sends captured connections, and whether the proxy is alive.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProxyConfig {
    /// The proxy's outbound listener. IPv6 sockets are sent to its IPv4-mapped form.
    pub outbound: SockAddr,
    /// SO_MARK of the proxy's own sockets.
    pub mark: u32,
    /// CLOCK_MONOTONIC nanoseconds of the proxy's last heartbeat (`bpf_ktime_get_ns`).
    pub heartbeat_ns: u64,
    /// Whose connects are captured: [`ENROLL_ALL`] or [`ENROLL_LISTED`].
    pub enroll: u32,
    /// Zero; keeps the layout free of implicit padding.
    pub reserved: u32,
}

/// Per Service address: connections opened and closed, and bytes each way from the client's TCP
/// stats at close (`bytes_acked` sent, `bytes_received` received).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub opened: u64,
    pub closed: u64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data without padding or pointers; any bit pattern is valid.
    unsafe impl aya::Pod for super::SockAddr {}
    unsafe impl aya::Pod for super::ConnTuple {}
    unsafe impl aya::Pod for super::ProxyConfig {}
    unsafe impl aya::Pod for super::Counters {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn v4_round_trip_keeps_network_order() {
        let addr: SocketAddr = "10.96.0.10:50051".parse().unwrap();
        let raw = SockAddr::from(addr);
        assert_eq!(raw.ip[0].to_ne_bytes(), [10, 96, 0, 10]);
        assert_eq!(raw.port.to_ne_bytes(), 50051u16.to_be_bytes());
        assert_eq!(raw.socket_addr(), addr);
    }

    #[test]
    fn v4_mapped_v6_is_stored_as_v4() {
        let mapped: SocketAddr = "[::ffff:10.96.0.10]:80".parse().unwrap();
        let plain: SocketAddr = "10.96.0.10:80".parse().unwrap();
        assert_eq!(SockAddr::from(mapped), SockAddr::from(plain));
        assert_eq!(SockAddr::from(plain).to_raw_v6()[2], V4_MAPPED_PREFIX_WORD);
    }

    #[test]
    fn v6_round_trip() {
        let addr: SocketAddr = "[fd00::a:1]:8080".parse().unwrap();
        assert_eq!(SockAddr::from(addr).socket_addr(), addr);
        assert_eq!(SockAddr::from(addr).family, AF_INET6);
    }

    #[test]
    fn layouts_have_no_padding() {
        use core::mem::size_of;
        assert_eq!(size_of::<SockAddr>(), 20);
        assert_eq!(size_of::<ConnTuple>(), 40);
        assert_eq!(size_of::<ProxyConfig>(), 40);
        assert_eq!(size_of::<Counters>(), 32);
    }
}
