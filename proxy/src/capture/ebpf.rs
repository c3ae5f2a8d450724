//! Loads strait's kernel programs, attaches them to a cgroup, and owns the user side of their maps.
//!
//! Lifetime is fail-open by construction: the links live in the [`KernelCapture`] value, so they go
//! when it is dropped or the process dies (the kernel closes the link fds), and while strait lives
//! a heartbeat in the `PROXY` map tells the kernel it is still there (stale after 2 s: no rewrite).
//! The maps are pinned ([`pins`](super::pins)): a strait started beside this one shares them.

use std::{
    collections::BTreeSet,
    fmt,
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuHashMap},
    programs::{CgroupAttachMode, CgroupSockAddr, SockOps},
    Ebpf, EbpfLoader,
};
use strait_common::{
    maps, programs, ConnTuple, Counters, ProxyConfig, ServiceFlags, SockAddr, ENROLL_ALL,
    ENROLL_LISTED, PROXY_SOCKET_MARK,
};
use tracing::{info, warn};

use super::{
    enrollment::Enrollment,
    pins::{Lock, PinDir},
};

/// The kernel object: `--ebpf-object PATH`, else the one embedded at build time.
pub fn object_bytes(path: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(path) = path {
        return std::fs::read(path)
            .with_context(|| format!("reading eBPF object {}", path.display()));
    }
    embedded_object().map(<[u8]>::to_vec).ok_or_else(|| {
        anyhow!(
            "this strait was built without its eBPF object: run `cargo xtask build-ebpf` and \
             rebuild, pass --ebpf-object PATH, or run with --no-ebpf"
        )
    })
}

#[cfg(strait_embedded_ebpf)]
fn embedded_object() -> Option<&'static [u8]> {
    // aya parses the ELF in place and needs it aligned.
    Some(aya::include_bytes_aligned!(env!("STRAIT_EBPF_OBJECT")))
}

#[cfg(not(strait_embedded_ebpf))]
fn embedded_object() -> Option<&'static [u8]> {
    None
}

/// The attached programs and the maps strait writes and reads.
pub struct KernelCapture {
    /// Owns the programs and their links: dropping it detaches everything.
    ebpf: Ebpf,
    pins: PinDir,
    cgroup: PathBuf,
    services: KernelSet<SockAddr, ServiceFlags>,
    /// The cgroups of the enrolled pods (read only with [`Enrollment::Ambient`]).
    enrolled: KernelSet<u64, u32>,
    proxy: Array<MapData, ProxyConfig>,
    proxy_config: ProxyConfig,
    orig_dst: Arc<OrigDstTable>,
    counters: Arc<KernelCounters>,
}

impl KernelCapture {
    /// Loads the object on the maps pinned in `pins` (made there if none are), points the kernel
    /// at `outbound`, installs `services` and the `enrolled` pods' cgroups, then attaches the
    /// programs to `cgroup`: nothing is redirected before the maps are ready.
    pub fn attach(
        object: &[u8],
        cgroup: &Path,
        pins: PinDir,
        outbound: SocketAddr,
        enrollment: &Enrollment,
        services: &BTreeSet<SockAddr>,
        enrolled: &BTreeSet<u64>,
    ) -> Result<Self> {
        // Until the programs are attached, a leaving strait must not unpin these maps.
        let _loading = pins.lock(Lock::Shared)?;
        let mut loader = EbpfLoader::new();
        let pin_paths: Vec<(&str, PathBuf)> = maps::ALL
            .iter()
            .map(|name| (*name, pins.map(name)))
            .collect();
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(object).context("loading the eBPF object")?;
        let mut capture = Self {
            pins,
            services: KernelSet::open(take_map(&mut ebpf, maps::SERVICES)?, 0, maps::SERVICES),
            enrolled: KernelSet::open(take_map(&mut ebpf, maps::ENROLLED)?, 0, maps::ENROLLED),
            proxy: take_map(&mut ebpf, maps::PROXY)?,
            orig_dst: Arc::new(OrigDstTable(take_map(&mut ebpf, maps::ORIG_DST_BY_TUPLE)?)),
            counters: Arc::new(KernelCounters(take_map(&mut ebpf, maps::COUNTERS)?)),
            proxy_config: ProxyConfig {
                outbound: SockAddr::from(outbound),
                mark: PROXY_SOCKET_MARK,
                heartbeat_ns: 0,
                enroll: match enrollment {
                    Enrollment::All => ENROLL_ALL,
                    Enrollment::Ambient { .. } => ENROLL_LISTED,
                },
                reserved: 0,
            },
            cgroup: cgroup.to_path_buf(),
            ebpf,
        };
        capture.heartbeat()?;
        capture.sync_services(services)?;
        capture.sync_enrolled(enrolled)?;
        capture.attach_programs()?;
        Ok(capture)
    }

    fn attach_programs(&mut self) -> Result<()> {
        let cgroup = File::open(&self.cgroup)
            .with_context(|| format!("opening cgroup {}", self.cgroup.display()))?;
        // `bpf_link` attachments are always multi (a CNI's programs keep running beside
        // strait's); the kernel rejects any flag on them, so the mode must be the default.
        let mode = CgroupAttachMode::Single;
        for name in [
            programs::CONNECT4,
            programs::CONNECT6,
            programs::GETPEERNAME4,
            programs::GETPEERNAME6,
        ] {
            let program: &mut CgroupSockAddr = program(&mut self.ebpf, name)?;
            program.load().with_context(|| format!("loading {name}"))?;
            program
                .attach(&cgroup, mode)
                .with_context(|| format!("attaching {name} to {}", self.cgroup.display()))?;
        }
        let sockops: &mut SockOps = program(&mut self.ebpf, programs::SOCKOPS)?;
        sockops.load().context("loading sockops")?;
        sockops
            .attach(&cgroup, mode)
            .with_context(|| format!("attaching sockops to {}", self.cgroup.display()))?;
        Ok(())
    }

    /// Tells the kernel strait is alive; call at least every `HEARTBEAT_INTERVAL_MS`.
    pub fn heartbeat(&mut self) -> Result<()> {
        self.proxy_config.heartbeat_ns = monotonic_ns();
        self.proxy
            .set(0, self.proxy_config, 0)
            .context("writing the PROXY map")
    }

    /// Makes the kernel's Service map equal to `wanted`, touching only what changed.
    pub fn sync_services(&mut self, wanted: &BTreeSet<SockAddr>) -> Result<SyncStats> {
        self.services.sync(wanted)
    }

    /// Makes the kernel's enrolled cgroups equal to `wanted`.
    pub fn sync_enrolled(&mut self, wanted: &BTreeSet<u64>) -> Result<SyncStats> {
        self.enrolled.sync(wanted)
    }

    /// Detaches the programs; removes the pinned maps too unless another strait runs on them
    /// (the one taking over, in a rolling update).
    pub fn release(self) {
        let ours: Vec<u32> = self
            .ebpf
            .programs()
            .filter_map(|(_, program)| program.info().ok())
            .map(|info| info.id())
            .collect();
        let pins = self.pins.clone();
        drop(self);
        let _leaving = match pins.lock(Lock::Exclusive) {
            Ok(lock) => lock,
            Err(err) => return warn!(err = format!("{err:#}"), "leaving the kernel state pinned"),
        };
        match pins.shared(&ours) {
            Ok(true) => {
                info!(pins = %pins.path().display(), "kernel state left to the strait that took over")
            }
            Ok(false) => match pins.remove() {
                Ok(()) => {
                    info!(pins = %pins.path().display(), "kernel state unpinned: no strait left")
                }
                Err(err) => warn!(
                    err = format!("{err:#}"),
                    "unpinning the kernel state failed"
                ),
            },
            Err(err) => warn!(
                err = format!("{err:#}"),
                "cannot tell whether another strait uses the kernel state; leaving it pinned"
            ),
        }
    }

    pub fn orig_dst(&self) -> Arc<OrigDstTable> {
        self.orig_dst.clone()
    }

    pub fn counters(&self) -> Arc<KernelCounters> {
        self.counters.clone()
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub added: usize,
    pub removed: usize,
}

/// A kernel hash map used as a set, kept equal to what user space wants with the fewest writes.
/// What it holds is read from the kernel at each sync: while a successor takes over, two straits
/// write it.
struct KernelSet<K, V> {
    map: HashMap<MapData, K, V>,
    value: V,
    name: &'static str,
}

impl<K: aya::Pod + Ord + fmt::Display, V: aya::Pod> KernelSet<K, V> {
    fn open(map: HashMap<MapData, K, V>, value: V, name: &'static str) -> Self {
        Self { map, value, name }
    }

    fn sync(&mut self, wanted: &BTreeSet<K>) -> Result<SyncStats> {
        let installed: BTreeSet<K> = self.map.keys().filter_map(Result::ok).collect();
        let mut stats = SyncStats::default();
        for key in installed.difference(wanted) {
            self.map
                .remove(key)
                .with_context(|| format!("removing {key} from the {} map", self.name))?;
            stats.removed += 1;
        }
        for key in wanted.difference(&installed) {
            self.map
                .insert(key, self.value, 0)
                .with_context(|| format!("adding {key} to the {} map", self.name))?;
            stats.added += 1;
        }
        Ok(stats)
    }
}

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no program {name}"))?;
    program
        .try_into()
        .with_context(|| format!("program {name} has an unexpected type"))
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Original destinations by 4-tuple, written by sockops when a captured client connects.
pub struct OrigDstTable(HashMap<MapData, ConnTuple, SockAddr>);

impl OrigDstTable {
    /// The original destination of the connection from `peer` accepted at `local`. One syscall:
    /// the kernel removes the entry when the connection closes (and the map is LRU).
    pub fn lookup(&self, peer: SocketAddr, local: SocketAddr) -> Option<SocketAddr> {
        let key = ConnTuple {
            client: SockAddr::from(peer),
            proxy: SockAddr::from(local),
        };
        Some(self.0.get(&key, 0).ok()?.socket_addr())
    }
}

/// The kernel's per-Service counters.
pub struct KernelCounters(PerCpuHashMap<MapData, SockAddr, Counters>);

impl KernelCounters {
    /// Per Service address, the counters summed over CPUs.
    pub fn snapshot(&self) -> Vec<(SocketAddr, Counters)> {
        self.0
            .iter()
            .filter_map(Result::ok)
            .map(|(addr, per_cpu)| (addr.socket_addr(), sum(per_cpu.iter())))
            .collect()
    }
}

fn sum<'a>(values: impl Iterator<Item = &'a Counters>) -> Counters {
    values.fold(Counters::default(), |total, c| Counters {
        opened: total.opened + c.opened,
        closed: total.closed + c.closed,
        sent_bytes: total.sent_bytes + c.sent_bytes,
        received_bytes: total.received_bytes + c.received_bytes,
    })
}

impl std::fmt::Debug for KernelCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelCounters")
    }
}
