//! `TCP_NODELAY` on the process's PostgreSQL connections.
//!
//! sqlx 0.9.0 opens its TCP sockets with Nagle's algorithm on (the option was dropped in that
//! release: launchbadge/sqlx#4335, fixed upstream by #4336, not released yet). A statement
//! larger than one segment then ends with a short segment that waits for the server's delayed
//! ACK: up to 40 ms per large statement (a group commit of 512 events, a batch of 128
//! projection rows). Measured on the dunning pass at 100,000 cases: 2,870 steps/s over TCP
//! against 6,380 over the Unix socket, with the same SQL.
//!
//! sqlx gives no access to its socket, so after each new connection ([`disable_nagle`] from an
//! `after_connect` hook) the process's own TCP sockets to the database port that still have
//! Nagle on get `TCP_NODELAY`. Only sockets of this process are touched, only TCP ones, and the
//! option changes nothing but when segments are sent. Remove this once sqlx sets it again.

/// Set `TCP_NODELAY` on every TCP socket of this process whose peer port is `port` and that
/// does not have it yet. Returns how many it changed. Best effort: a socket that closes
/// meanwhile, or a platform without a descriptor list, changes nothing.
pub fn disable_nagle(port: u16) -> usize {
    with_nagle(port)
        .into_iter()
        .filter(|fd| imp::set_nodelay(*fd))
        .count()
}

/// This process's TCP sockets to peer port `port` that still have Nagle's algorithm on.
pub fn sockets_with_nagle(port: u16) -> usize {
    with_nagle(port).len()
}

/// This process's TCP sockets to peer port `port`, with Nagle on or off.
pub fn tcp_sockets(port: u16) -> usize {
    descriptors()
        .into_iter()
        .filter(|fd| imp::peer_port(*fd) == Some(port))
        .count()
}

fn with_nagle(port: u16) -> Vec<i32> {
    descriptors()
        .into_iter()
        .filter(|fd| imp::nagle_peer_port(*fd) == Some(port))
        .collect()
}

fn descriptors() -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd").or_else(|_| std::fs::read_dir("/dev/fd"))
    else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

#[cfg(unix)]
mod imp {
    use nix::sys::socket::sockopt::TcpNoDelay;
    use nix::sys::socket::{SockaddrStorage, getpeername, getsockopt, setsockopt};

    /// The peer port of a TCP socket with Nagle on; `None` for anything else (a file, a pipe,
    /// a Unix socket: they have no `TCP_NODELAY`), or a TCP socket that already has it.
    pub(super) fn nagle_peer_port(fd: i32) -> Option<u16> {
        if getsockopt(fd, TcpNoDelay).ok()? {
            return None;
        }
        peer_port(fd)
    }

    /// The peer port of a TCP socket (with or without Nagle).
    pub(super) fn peer_port(fd: i32) -> Option<u16> {
        getsockopt(fd, TcpNoDelay).ok()?;
        let peer = getpeername::<SockaddrStorage>(fd).ok()?;
        peer.as_sockaddr_in()
            .map(nix::sys::socket::SockaddrIn::port)
            .or_else(|| {
                peer.as_sockaddr_in6()
                    .map(nix::sys::socket::SockaddrIn6::port)
            })
    }

    pub(super) fn set_nodelay(fd: i32) -> bool {
        setsockopt(fd, TcpNoDelay, &true).is_ok()
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn nagle_peer_port(_fd: i32) -> Option<u16> {
        None
    }

    pub(super) fn peer_port(_fd: i32) -> Option<u16> {
        None
    }

    pub(super) fn set_nodelay(_fd: i32) -> bool {
        false
    }
}
