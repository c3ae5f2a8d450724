//! Where the kernel state lives between two straits: the maps pinned in bpffs under
//! `<root>/v<KERNEL_STATE_VERSION>`, so that a strait started beside a running one (a rolling
//! update) loads its programs on the same maps: connections either one redirected are found by
//! the other, and the counters go on. The programs' links are not pinned: they go with the
//! process, so a strait that dies stops capturing at once (fail open) and leaves no program
//! attached. The last strait to leave removes the pins.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use aya::{maps::MapInfo, programs::loaded_programs};
use nix::fcntl::{Flock, FlockArg};
use strait_common::{maps, KERNEL_STATE_VERSION};

/// bpffs's `statfs` magic.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How [`PinDir::lock`] locks.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    Shared,
    Exclusive,
}

/// The pin directory of this map layout.
#[derive(Clone, Debug)]
pub struct PinDir(PathBuf);

impl PinDir {
    /// `<root>/v<version>`, made if missing; `root` must be on bpffs.
    pub fn under(root: &Path) -> Result<Self> {
        let dir = root.join(format!("v{KERNEL_STATE_VERSION}"));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if !is_bpffs(&dir)? {
            bail!(
                "{} is not on bpffs: mount it (`mount -t bpf bpf /sys/fs/bpf`) or pass \
                 --bpf-pin-dir",
                dir.display()
            );
        }
        Ok(Self(dir))
    }

    /// Where map `name` is pinned.
    pub fn map(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Takes the directory's lock (`flock`), released when the value is dropped. A strait holds
    /// it shared from loading its maps until its programs are attached, and the leaving strait
    /// exclusive while it decides whether to unpin: it never unpins under a successor that has
    /// the maps open but no programs yet.
    pub fn lock(&self, how: Lock) -> Result<Flock<File>> {
        let dir = File::open(&self.0).with_context(|| format!("opening {}", self.0.display()))?;
        let arg = match how {
            Lock::Shared => FlockArg::LockShared,
            Lock::Exclusive => FlockArg::LockExclusive,
        };
        Flock::lock(dir, arg)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("locking {}", self.0.display()))
    }

    /// Whether a loaded program other than `ours` uses the maps: another strait runs on them.
    pub fn shared(&self, ours: &[u32]) -> Result<bool> {
        let services = MapInfo::from_pin(self.map(maps::SERVICES))
            .context("reading the pinned SERVICES map")?
            .id();
        for program in loaded_programs() {
            let program = program.context("listing loaded BPF programs")?;
            if ours.contains(&program.id()) {
                continue;
            }
            let uses = program.map_ids().ok().flatten().unwrap_or_default();
            if uses.contains(&services) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Unpins every map and removes the directory; what is already gone is no error.
    pub fn remove(&self) -> Result<()> {
        for name in maps::ALL {
            let pin = self.map(name);
            match fs::remove_file(&pin) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| format!("unpinning {}", pin.display()))
                }
                _ => {}
            }
        }
        match fs::remove_dir(&self.0) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", self.0.display()))
            }
            _ => Ok(()),
        }
    }
}

fn is_bpffs(dir: &Path) -> Result<bool> {
    let stat =
        nix::sys::statfs::statfs(dir).with_context(|| format!("statfs {}", dir.display()))?;
    Ok(stat.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}
