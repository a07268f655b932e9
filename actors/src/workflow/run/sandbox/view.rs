//! The filesystem a sandboxed step sees, as bubblewrap arguments: `/usr` and the `/bin`,
//! `/sbin` and `/lib*` links (or directories) into it read-only, and a read-only copy of
//! `/etc` holding only what other users may read anyway, minus the files that are secret by
//! name (`shadow`, `gshadow`, `sudoers`, SSH host keys, private TLS keys, ...). Nothing else
//! of the host: no `/root`, `/home`, `/var`, `/srv`, `/opt`, `/run`, no checkout or server
//! config, no other execution's work directory. The sandbox adds `/dev`, `/proc`, a
//! size-capped `/tmp` and the execution's own work directory.
//!
//! `/etc` is rebuilt entry by entry on a tmpfs: a directory holding something hidden is
//! rebuilt in turn, anything else is bound whole, and symbolic links are recreated as links
//! (a link leading out of `/etc` and `/usr`, such as `resolv.conf` into `/run`, is bound as
//! the file it leads to). [`FsView::of_host`] reads the host once per run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Names under `/etc` never shown, whatever their permissions.
const SECRET_NAMES: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    ".pwd.lock",
    "subuid",
    "subgid",
    "private",
    "opasswd",
    "krb5.keytab",
];

/// How deep `/etc` is rebuilt; deeper directories holding secrets are left out whole.
const MAX_DEPTH: usize = 4;

/// Top-level paths that may be directories or links into `/usr` (merged `/usr` or not).
const SYSTEM_DIRS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The read-only part of a step's filesystem, as bwrap arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsView {
    pub args: Vec<String>,
}

impl FsView {
    /// The view of this host's `/usr`, system directories and `/etc`.
    pub fn of_host() -> Self {
        Self::of_root(Path::new("/"))
    }

    /// The view of a tree rooted at `root` (the host's `/` outside tests).
    fn of_root(root: &Path) -> Self {
        let mut args = Vec::new();
        push_all(&mut args, ["--ro-bind", &host(root, "/usr"), "/usr"]);
        for dir in SYSTEM_DIRS {
            let source = PathBuf::from(host(root, dir));
            match fs::symlink_metadata(&source) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = fs::read_link(&source) {
                        push_all(&mut args, ["--symlink", &target.to_string_lossy(), dir]);
                    }
                }
                Ok(meta) if meta.is_dir() => {
                    push_all(&mut args, ["--ro-bind", &source.to_string_lossy(), dir]);
                }
                _ => {}
            }
        }
        push_all(&mut args, ["--tmpfs", "/etc"]);
        rebuild_dir(root, Path::new("/etc"), 0, &mut args);
        push_all(&mut args, ["--remount-ro", "/etc"]);
        Self { args }
    }
}

fn host(root: &Path, path: &str) -> String {
    root.join(path.trim_start_matches('/'))
        .to_string_lossy()
        .into_owned()
}

fn push_all<'a>(args: &mut Vec<String>, items: impl IntoIterator<Item = &'a str>) {
    args.extend(items.into_iter().map(str::to_owned));
}

/// Whether other users may read it (and enter it, for a directory).
fn world_readable(meta: &fs::Metadata) -> bool {
    let mode = meta.permissions().mode();
    let wanted = if meta.is_dir() { 0o005 } else { 0o004 };
    mode & wanted == wanted
}

fn is_secret(name: &str) -> bool {
    SECRET_NAMES.contains(&name) || (name.starts_with("ssh_host_") && name.contains("key"))
}

/// Whether anything inside `dir` (at host path `source`) must be hidden.
fn holds_hidden(source: &Path, depth: usize) -> bool {
    let Ok(entries) = fs::read_dir(source) else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.path().symlink_metadata() else {
            return true;
        };
        if is_secret(&name) {
            return true;
        }
        if meta.file_type().is_symlink() {
            return false;
        }
        !world_readable(&meta)
            || (meta.is_dir() && (depth >= MAX_DEPTH || holds_hidden(&entry.path(), depth + 1)))
    })
}

/// Adds the visible entries of the directory `dir` (a sandbox path) onto the tmpfs there.
fn rebuild_dir(root: &Path, dir: &Path, depth: usize, args: &mut Vec<String>) {
    let source = PathBuf::from(host(root, &dir.to_string_lossy()));
    let Ok(entries) = fs::read_dir(&source) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_secret(&name) {
            continue;
        }
        let inside = dir.join(&name).to_string_lossy().into_owned();
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            push_link(root, &entry.path(), &inside, args);
            continue;
        }
        if !world_readable(&meta) {
            continue;
        }
        let path = entry.path().to_string_lossy().into_owned();
        if meta.is_dir() && holds_hidden(&entry.path(), depth + 1) {
            if depth + 1 >= MAX_DEPTH {
                continue;
            }
            push_all(args, ["--dir", &inside]);
            rebuild_dir(root, Path::new(&inside), depth + 1, args);
        } else if meta.is_dir() || meta.is_file() {
            push_all(args, ["--ro-bind", &path, &inside]);
        }
    }
}

/// A link inside `/etc`: kept as a link when it stays within what the sandbox shows, else
/// bound as what it points to (when that is a readable file).
fn push_link(root: &Path, link: &Path, inside: &str, args: &mut Vec<String>) {
    let Ok(target) = fs::read_link(link) else {
        return;
    };
    let resolved = link
        .parent()
        .map_or_else(|| target.clone(), |parent| parent.join(&target));
    let shown = |path: &Path| {
        let path = path.strip_prefix(root).unwrap_or(path);
        let path = Path::new("/").join(path);
        // /proc and /dev are the sandbox's own: a link there (mtab) must stay a link, never
        // become the server's file.
        ["/usr", "/etc", "/bin", "/proc", "/dev"]
            .iter()
            .any(|shown| path.starts_with(shown))
    };
    let Some(name) = link
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
    else {
        return;
    };
    if is_secret(&name) {
        return;
    }
    if shown(&resolved) && !target.is_absolute() || target.is_absolute() && shown(&target) {
        push_all(args, ["--symlink", &target.to_string_lossy(), inside]);
        return;
    }
    if let Ok(real) = fs::canonicalize(link)
        && let Ok(meta) = fs::metadata(&real)
        && meta.is_file()
        && world_readable(&meta)
    {
        push_all(args, ["--ro-bind", &real.to_string_lossy(), inside]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_private_files_are_left_out_and_the_rest_is_bound() {
        let root = std::env::temp_dir().join(format!("view-{}", uuid::Uuid::new_v4().simple()));
        let etc = root.join("etc");
        fs::create_dir_all(etc.join("ssh")).unwrap();
        fs::create_dir_all(etc.join("apt")).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        for (path, mode) in [
            ("etc/passwd", 0o644),
            ("etc/shadow", 0o644),
            ("etc/app.key", 0o600),
            ("etc/ssh/ssh_config", 0o644),
            ("etc/ssh/ssh_host_ed25519_key", 0o600),
            ("etc/apt/sources.list", 0o644),
        ] {
            fs::write(root.join(path), "x").unwrap();
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(mode)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/true", etc.join("alt")).unwrap();
        let view = FsView::of_root(&root).args.join(" ");
        let r = root.to_string_lossy();
        assert!(view.contains("--symlink usr/bin /bin"), "{view}");
        assert!(
            view.contains(&format!("--ro-bind {r}/etc/passwd /etc/passwd")),
            "{view}"
        );
        assert!(
            view.contains(&format!("--ro-bind {r}/etc/apt /etc/apt")),
            "{view}"
        );
        assert!(view.contains("--dir /etc/ssh"), "{view}");
        assert!(
            view.contains(&format!(
                "--ro-bind {r}/etc/ssh/ssh_config /etc/ssh/ssh_config"
            )),
            "{view}"
        );
        assert!(view.contains("--symlink /usr/bin/true /etc/alt"), "{view}");
        for hidden in ["shadow", "app.key", "ssh_host_ed25519_key"] {
            assert!(!view.contains(hidden), "{hidden} shown: {view}");
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
