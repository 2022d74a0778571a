// Kernel parameters under /proc/sys (sysctl(8), proc_sys_net(5)): the host
// veth's proxy_arp, proxy_delay and forwarding. /proc/sys/net shows the
// network namespace of the thread that opens the file, so a caller enters
// the namespace (netns::run_in) before writing a namespaced key.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::NetlinkError;

/// Writes `value` to /proc/sys/`key` (key like
/// "net/ipv4/conf/podr12/proxy_arp"). /proc/sys/net reflects the calling
/// thread's netns.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), NetlinkError> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value.as_bytes()).map_err(|source| NetlinkError::Sysctl {
        path: path.display().to_string(),
        source,
    })
}

/// Reads /proc/sys/`key`, without surrounding whitespace.
pub fn read_sysctl(key: &str) -> Result<String, NetlinkError> {
    let path = sysctl_path(key)?;
    std::fs::read_to_string(&path)
        .map(|value| value.trim().to_owned())
        .map_err(|source| NetlinkError::Sysctl {
            path: path.display().to_string(),
            source,
        })
}

const PROC_SYS: &str = "/proc/sys";

/// /proc/sys/`key`; a key that would leave /proc/sys ("..", an absolute
/// path) or names nothing is refused.
fn sysctl_path(key: &str) -> Result<PathBuf, NetlinkError> {
    let relative = Path::new(key);
    let plain = !key.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(NetlinkError::Sysctl {
            path: key.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a key below /proc/sys (like net/ipv4/ip_forward)",
            ),
        });
    }
    Ok(Path::new(PROC_SYS).join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            sysctl_path("net/ipv4/conf/podr12/proxy_arp").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/podr12/proxy_arp")
        );
        for bad in ["", "/etc/passwd", "net/../../etc/passwd", "./net", ".."] {
            assert!(
                matches!(sysctl_path(bad), Err(NetlinkError::Sysctl { .. })),
                "{bad:?}"
            );
        }
    }

    /// Reads a key every kernel with IPv4 has (read-only: the test's own
    /// namespace is never changed).
    #[test]
    fn reads_ip_forward() {
        let value = read_sysctl("net/ipv4/ip_forward").unwrap();
        assert!(value == "0" || value == "1", "{value:?}");
    }

    #[test]
    fn missing_key_names_the_path() {
        let err = read_sysctl("net/ipv4/conf/no-such-link-x/proxy_arp").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("sysctl /proc/sys/net/ipv4/conf/no-such-link-x/proxy_arp: "),
            "{text}"
        );
    }
}
