//! The seccomp filter every sandboxed step runs under, compiled with `seccompiler` into the
//! classic BPF program that `bwrap --seccomp FD` loads just before it starts the step.
//!
//! It denies (with `EPERM`) what a workflow step never needs and what escapes start with:
//! mounting, pivoting and namespaces (`mount`, `umount2`, `pivot_root`, `setns`, `unshare`,
//! `clone` with a namespace flag, the new mount API), tracing and reading other processes
//! (`ptrace`, `process_vm_*`), the kernel keyring, `bpf`, `perf_event_open`, `userfaultfd`,
//! module loading, `kexec`, `reboot`, swap, clocks, `acct`, `quotactl`, raw I/O ports and
//! file handles (`open_by_handle_at`). Everything else is allowed: steps run ordinary
//! programs. `clone3` passes its flags in memory, out of a filter's reach; the sandbox stops
//! namespace creation through it with `--disable-userns` and by dropping every capability.
//!
//! The sandbox asks for [`compiled_filter`] once per process; it is the same for every step.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Syscalls a step may never make.
const DENIED: &[libc::c_long] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_syslog,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
];

/// On x86_64, the x32 ABI reaches the same calls with this bit set in the number.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// The filter as the bytes `bwrap --seccomp` reads: `sock_filter` records in native order.
pub fn compiled_filter() -> Result<&'static [u8], String> {
    static FILTER: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    FILTER
        .get_or_init(|| build().map(|program| to_bytes(&program)))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn build() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|error| format!("no seccomp filter for this architecture: {error}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &call in DENIED {
        // An empty rule list matches the call whatever its arguments.
        rules.insert(call, Vec::new());
    }
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = u64::from(flag.unsigned_abs());
            let condition = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .map_err(|error| error.to_string())?;
            SeccompRule::new(vec![condition]).map_err(|error| error.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    #[cfg(target_arch = "x86_64")]
    {
        let x32: Vec<(i64, Vec<SeccompRule>)> = rules
            .iter()
            .map(|(call, rules)| (call | X32_SYSCALL_BIT, rules.clone()))
            .collect();
        rules.extend(x32);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM.unsigned_abs()),
        arch,
    )
    .map_err(|error| format!("cannot build the seccomp filter: {error}"))?;
    BpfProgram::try_from(filter)
        .map_err(|error| format!("cannot compile the seccomp filter: {error}"))
}

fn to_bytes(program: &BpfProgram) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_to_whole_instructions() {
        let bytes = compiled_filter().expect("compiles here");
        assert!(!bytes.is_empty());
        assert_eq!(bytes.len() % 8, 0, "sock_filter records are 8 bytes");
    }
}
