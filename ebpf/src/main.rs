//! strait's kernel side.
//!
//! - `connect4`/`connect6` (cgroup): a TCP connect to a captured Service address is rewritten to the
//!   proxy's outbound listener; the original destination is recorded by socket cookie.
//! - `sockops`: when a captured connection is established, ties the original destination to its
//!   4-tuple (the proxy's key after `accept()`), counts it, and at close adds its byte counts.
//! - `getpeername4`/`getpeername6` (cgroup): the application sees the Service address as its peer.
//!
//! Never captured: UDP, destinations not in `SERVICES`, sockets carrying the proxy's mark,
//! processes outside the enrolled pods' cgroups (when the proxy enrolls by list), and everything
//! when the proxy's heartbeat is stale (fail open).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        bpf_sock_addr, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG, BPF_TCP_CLOSE, BPF_TCP_CLOSE_WAIT, BPF_TCP_CLOSING,
        BPF_TCP_FIN_WAIT2, BPF_TCP_LAST_ACK, BPF_TCP_TIME_WAIT,
    },
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_socket_cookie, bpf_ktime_get_ns},
    macros::{cgroup_sock_addr, map, sock_ops},
    maps::{Array, HashMap, LruHashMap, PerCpuHashMap},
    programs::{SockAddrContext, SockOpsContext},
    EbpfContext,
};
use strait_common::{
    ConnTuple, Counters, ProxyConfig, ServiceFlags, SockAddr, ENROLL_ALL, HEARTBEAT_TIMEOUT_NS,
    MAX_CGROUP_DEPTH, MAX_CONNECTIONS, MAX_COUNTERS, MAX_ENROLLED, MAX_SERVICES,
};

/// Allow the syscall to go on (cgroup programs return 1 to allow, 0 to deny).
const ALLOW: i32 = 1;
const SOCK_STREAM: u32 = 1;

#[map]
static SERVICES: HashMap<SockAddr, ServiceFlags> = HashMap::with_max_entries(MAX_SERVICES, 0);

#[map]
static PROXY: Array<ProxyConfig> = Array::with_max_entries(1, 0);

#[map]
static ORIG_DST_COOKIE: LruHashMap<u64, SockAddr> =
    LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

#[map]
static ORIG_DST_TUPLE: LruHashMap<ConnTuple, SockAddr> =
    LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

#[map]
static COUNTERS: PerCpuHashMap<SockAddr, Counters> =
    PerCpuHashMap::with_max_entries(MAX_COUNTERS, 0);

#[map]
static ENROLLED: HashMap<u64, u32> = HashMap::with_max_entries(MAX_ENROLLED, 0);

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid context for the program's lifetime.
    let sa = unsafe { &mut *ctx.sock_addr };
    let dst = SockAddr::from_raw_v4(sa.user_ip4, sa.user_port as u16);
    if let Some(proxy) = capture(&ctx, sa, &dst) {
        sa.user_ip4 = proxy.ip[0];
        sa.user_port = proxy.port as u32;
    }
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    let ip6 = [
        sa.user_ip6[0],
        sa.user_ip6[1],
        sa.user_ip6[2],
        sa.user_ip6[3],
    ];
    let dst = SockAddr::from_raw_v6(ip6, sa.user_port as u16);
    if let Some(proxy) = capture(&ctx, sa, &dst) {
        // The proxy listens on IPv4: dual-stack sockets reach it at its IPv4-mapped address.
        let ip = proxy.to_raw_v6();
        sa.user_ip6[0] = ip[0];
        sa.user_ip6[1] = ip[1];
        sa.user_ip6[2] = ip[2];
        sa.user_ip6[3] = ip[3];
        sa.user_port = proxy.port as u32;
    }
    ALLOW
}

/// Decides whether this connect is captured; if so records its original destination by cookie
/// and returns the proxy address to rewrite it to.
#[inline(always)]
fn capture(ctx: &SockAddrContext, sa: &bpf_sock_addr, dst: &SockAddr) -> Option<SockAddr> {
    if sa.type_ != SOCK_STREAM {
        return None;
    }
    // SAFETY: map lookups return pointers into the map valid for this program run.
    unsafe { SERVICES.get(dst) }?;
    let proxy = live_proxy()?;
    if !enrolled(&proxy) {
        return None;
    }
    // SAFETY: `sk` is the kernel's socket for this context.
    let sk = unsafe { sa.__bindgen_anon_1.sk };
    if sk.is_null() || unsafe { (*sk).mark } == proxy.mark {
        return None;
    }
    // SAFETY: the helper only reads the context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Without a record the proxy could not route the connection: leave it uncaptured.
    ORIG_DST_COOKIE.insert(cookie, dst, 0).ok()?;
    Some(proxy.outbound)
}

/// The proxy's config when its heartbeat is fresh; `None` means strait is gone: fail open.
#[inline(always)]
fn live_proxy() -> Option<ProxyConfig> {
    let proxy = *PROXY.get(0)?;
    // SAFETY: no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if proxy.heartbeat_ns == 0 || now.saturating_sub(proxy.heartbeat_ns) > HEARTBEAT_TIMEOUT_NS {
        return None;
    }
    Some(proxy)
}

/// Whether the connecting process belongs to an enrolled pod: its cgroup, or one above it, is
/// listed (a pod's containers are cgroups below the pod's).
#[inline(always)]
fn enrolled(proxy: &ProxyConfig) -> bool {
    if proxy.enroll == ENROLL_ALL {
        return true;
    }
    for level in 1..=MAX_CGROUP_DEPTH {
        // SAFETY: the helper reads the current task's cgroup; 0 past its own depth.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 {
            return false;
        }
        // SAFETY: only the presence is read.
        if unsafe { ENROLLED.get(id) }.is_some() {
            return true;
        }
    }
    false
}

#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    if let Some(orig) = original_destination(&ctx) {
        if orig.is_v4() {
            sa.user_ip4 = orig.ip[0];
            sa.user_port = orig.port as u32;
        }
    }
    ALLOW
}

#[cgroup_sock_addr(getpeername6)]
pub fn getpeername6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    if let Some(orig) = original_destination(&ctx) {
        let ip = orig.to_raw_v6();
        sa.user_ip6[0] = ip[0];
        sa.user_ip6[1] = ip[1];
        sa.user_ip6[2] = ip[2];
        sa.user_ip6[3] = ip[3];
        sa.user_port = orig.port as u32;
    }
    ALLOW
}

#[inline(always)]
fn original_destination<C: EbpfContext>(ctx: &C) -> Option<SockAddr> {
    // SAFETY: the helper only reads the context; the map value is copied out.
    unsafe {
        let cookie = bpf_get_socket_cookie(ctx.as_ptr());
        ORIG_DST_COOKIE.get(cookie).copied()
    }
}

#[sock_ops]
pub fn strait_sockops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => on_established(&ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == BPF_TCP_CLOSE => on_close(&ctx),
        _ => {}
    }
    0
}

/// A captured client's connection to the proxy is up: publish its original destination under
/// the 4-tuple the proxy will see after `accept()`, and count it. While a new strait takes over
/// from the old, both instances of this program run (on the same pinned maps): the second sees
/// the state callback the first asked for on this socket, and does nothing.
#[inline(always)]
fn on_established(ctx: &SockOpsContext) {
    let Some(orig) = original_destination(ctx) else {
        return;
    };
    if ctx.cb_flags() & BPF_SOCK_OPS_STATE_CB_FLAG != 0 {
        return;
    }
    let _ = ORIG_DST_TUPLE.insert(conn_tuple(ctx), orig, 0);
    count(&orig, |c| c.opened += 1);
    // Ask for state changes so the close is seen and its bytes counted.
    let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);
}

#[inline(always)]
fn on_close(ctx: &SockOpsContext) {
    let Some(orig) = original_destination(ctx) else {
        return;
    };
    // SAFETY: reading the context's TCP stats.
    let (acked, received) = unsafe { ((*ctx.ops).bytes_acked, (*ctx.ops).bytes_received) };
    let (sent, received) = payload_bytes(acked, received, ctx.arg(0));
    count(&orig, |c| {
        c.closed += 1;
        c.sent_bytes += sent;
        c.received_bytes += received;
    });
    let _ = ORIG_DST_TUPLE.remove(conn_tuple(ctx));
    // SAFETY: the helper only reads the context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let _ = ORIG_DST_COOKIE.remove(cookie);
}

/// Payload bytes from the TCP stats. `bytes_acked` and `bytes_received` count sequence space:
/// `bytes_acked` includes the SYN (always acknowledged on an established connection), and each
/// includes a FIN once it was acknowledged or received. The state the socket closes from tells:
/// those states are left for CLOSE only after the FIN was acknowledged or received.
/// (FIN_WAIT2 can also end by timeout or reset without the peer's FIN; the peer is strait, which
/// always closes, so that miscount of one byte does not happen in practice.)
#[inline(always)]
fn payload_bytes(bytes_acked: u64, bytes_received: u64, closing_from: u32) -> (u64, u64) {
    let our_fin_acked = matches!(
        closing_from,
        BPF_TCP_FIN_WAIT2 | BPF_TCP_TIME_WAIT | BPF_TCP_CLOSING | BPF_TCP_LAST_ACK
    );
    let peer_fin_received = matches!(
        closing_from,
        BPF_TCP_CLOSE_WAIT
            | BPF_TCP_LAST_ACK
            | BPF_TCP_CLOSING
            | BPF_TCP_FIN_WAIT2
            | BPF_TCP_TIME_WAIT
    );
    (
        bytes_acked.saturating_sub(1 + our_fin_acked as u64),
        bytes_received.saturating_sub(peer_fin_received as u64),
    )
}

/// The client's (local, remote) addresses. `local_port` is host order; `remote_port` is network
/// order in the upper 16 bits (DESIGN.md).
#[inline(always)]
fn conn_tuple(ctx: &SockOpsContext) -> ConnTuple {
    let local_port = (ctx.local_port() as u16).to_be();
    let remote_port = (ctx.remote_port() >> 16) as u16;
    if ctx.family() == strait_common::AF_INET as u32 {
        ConnTuple {
            client: SockAddr::from_raw_v4(ctx.local_ip4(), local_port),
            proxy: SockAddr::from_raw_v4(ctx.remote_ip4(), remote_port),
        }
    } else {
        ConnTuple {
            client: SockAddr::from_raw_v6(ctx.local_ip6(), local_port),
            proxy: SockAddr::from_raw_v6(ctx.remote_ip6(), remote_port),
        }
    }
}

/// Updates this CPU's counters for a Service address, creating them on first use.
#[inline(always)]
fn count(service: &SockAddr, update: impl FnOnce(&mut Counters)) {
    if let Some(counters) = COUNTERS.get_ptr_mut(service) {
        // SAFETY: per-CPU value: no other writer on this CPU while the program runs.
        update(unsafe { &mut *counters });
        return;
    }
    let mut fresh = Counters::default();
    update(&mut fresh);
    let _ = COUNTERS.insert(service, fresh, 0);
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
