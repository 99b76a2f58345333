//! Who a pid is, and which sockets have an owner. A pid is described once (an
//! `Event::Process`), the first time a record names it: from /proc while the process still
//! exists, else from what the kernel recorded (short-lived processes are often gone by then).
//! After an exit the pid may be reused, so it is described afresh when seen again.
use std::collections::HashSet;

use log::debug;
use netmon_common::KernelEvent;

use super::{super::cgroups::CgroupPaths, decode, maps::KernelMaps};
use crate::{event::Event, source::procfs::ProcfsSource};

pub(super) struct Identity {
    procfs: ProcfsSource,
    cgroups: CgroupPaths,
    known_pids: HashSet<u32>,
    /// Cookies a process owns: a raw socket among them is a user's, not the kernel's.
    owned: HashSet<u64>,
}

impl Identity {
    /// Processes read from `procfs`, cgroup ids named through `cgroups`.
    pub(super) fn new(procfs: ProcfsSource, cgroups: CgroupPaths) -> Self {
        Identity {
            procfs,
            cgroups,
            known_pids: HashSet::new(),
            owned: HashSet::new(),
        }
    }

    /// Describes `pid` if it is new; `r` is the kernel's record naming it (its comm, uid,
    /// ppid and cgroup id stand in for what /proc no longer has).
    pub(super) fn learn_pid(&mut self, pid: u32, r: &KernelEvent, out: &mut Vec<Event>) {
        if !self.known_pids.insert(pid) {
            return;
        }
        // Gone already: what the kernel recorded.
        let mut ev = self
            .procfs
            .process_event(pid)
            .unwrap_or_else(|| Event::Process {
                pid,
                ppid: r.ppid,
                comm: decode::comm(&r.comm),
                cmdline: String::new(),
                uid: r.uid,
                exe: String::new(),
                cgroup: String::new(),
                netns: 0,
                start_time: 0,
            });
        // Gone, or exiting while /proc was read (the cgroup file goes first): the cgroup the
        // kernel named by its id.
        if let Event::Process { cgroup, .. } = &mut ev
            && cgroup.is_empty()
        {
            *cgroup = self.cgroups.path(r.cgroup_id).unwrap_or_default();
        }
        out.push(ev);
    }

    /// The pid exited: whoever has it next must be looked up afresh.
    pub(super) fn exited(&mut self, pid: u32) {
        self.known_pids.remove(&pid);
    }

    pub(super) fn set_owned(&mut self, cookie: u64) {
        self.owned.insert(cookie);
    }

    pub(super) fn owns(&self, cookie: u64) -> bool {
        self.owned.contains(&cookie)
    }

    pub(super) fn forget_socket(&mut self, cookie: u64) {
        self.owned.remove(&cookie);
    }

    /// After ring-buffer losses: owners whose SOCK_OWNER record was lost are read from the
    /// OWNERS map, so their sockets are not left unattributed. OWNERS is read only then (it
    /// holds every live socket), and a failed read only leaves those sockets as they were.
    pub(super) fn recover_owners(&mut self, maps: &impl KernelMaps, out: &mut Vec<Event>) {
        let Ok(all) = maps.owners() else {
            return;
        };
        let missing: Vec<_> = all
            .into_iter()
            .filter(|(c, _)| !self.owned.contains(c))
            .collect();
        if !missing.is_empty() {
            debug!(
                "recovered {} socket owners lost with ring-buffer records",
                missing.len()
            );
        }
        for (cookie, o) in missing {
            self.owned.insert(cookie);
            let ev = KernelEvent {
                tgid: o.tgid,
                uid: o.uid,
                comm: o.comm,
                ppid: o.ppid,
                cgroup_id: o.cgroup_id,
                ..KernelEvent::default()
            };
            self.learn_pid(o.tgid, &ev, out);
            out.push(decode::owner_event(cookie, &o));
        }
    }

    /// Pids and sockets kept, for tests that check nothing is kept forever.
    #[cfg(test)]
    pub(super) fn kept_sockets(&self) -> usize {
        self.owned.len()
    }
}
