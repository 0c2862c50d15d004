//! The process's file descriptor limit: raised at start from its soft value to the hard
//! one (a listener's connections, the certificate files and the logs all need
//! descriptors), and read to size the global connection cap below it. Nothing here
//! counts connections; `conn` does.

/// The descriptor limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the most the soft one may be raised to without privileges).
    pub hard: u64,
}

/// Descriptors kept free of connections, for the listeners, the certificate and key
/// files, logs, and the few connections that answer `/healthz` and `/metrics` when the
/// connection cap is reached.
pub const HEADROOM: u64 = 64;

/// Raises the soft descriptor limit to the hard one.
pub fn raise() -> std::io::Result<Limits> {
    let mut limit = get()?;
    let was = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct it is given and nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(Limits {
        was,
        soft: now.rlim_cur,
        hard: now.rlim_max,
    })
}

/// The soft descriptor limit now.
pub fn soft_limit() -> std::io::Result<u64> {
    Ok(get()?.rlim_cur)
}

/// The most connections the process can hold open with [`HEADROOM`] descriptors to
/// spare under a soft limit of `soft` (at least one).
pub fn connection_room(soft: u64) -> usize {
    usize::try_from(soft.saturating_sub(HEADROOM).max(1)).unwrap_or(usize::MAX)
}

fn get() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limits = raise().unwrap();
        assert_eq!(limits.soft, limits.hard);
        assert!(limits.was <= limits.soft);
        assert_eq!(soft_limit().unwrap(), limits.soft);
    }

    #[test]
    fn connections_leave_the_headroom_free() {
        assert_eq!(connection_room(1024), 960);
        assert_eq!(connection_room(10), 1);
    }
}
