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
    sockets(port)
        .filter(|(_, nodelay)| !nodelay)
        .filter(|(fd, _)| imp::set_nodelay(*fd))
        .count()
}

/// This process's TCP sockets to peer port `port` that still have Nagle's algorithm on.
pub fn sockets_with_nagle(port: u16) -> usize {
    sockets(port).filter(|(_, nodelay)| !nodelay).count()
}

/// This process's TCP sockets to peer port `port`, with Nagle on or off.
pub fn tcp_sockets(port: u16) -> usize {
    sockets(port).count()
}

/// `(descriptor, TCP_NODELAY set)` of this process's TCP sockets to peer port `port`.
fn sockets(port: u16) -> impl Iterator<Item = (i32, bool)> {
    std::fs::read_dir("/proc/self/fd")
        .or_else(|_| std::fs::read_dir("/dev/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(move |fd| match imp::tcp_peer(fd) {
            Some((p, nodelay)) if p == port => Some((fd, nodelay)),
            _ => None,
        })
}

#[cfg(unix)]
mod imp {
    use nix::sys::socket::sockopt::TcpNoDelay;
    use nix::sys::socket::{
        SockaddrIn, SockaddrIn6, SockaddrStorage, getpeername, getsockopt, setsockopt,
    };

    /// The peer port of a TCP socket and whether it has `TCP_NODELAY`; `None` for anything
    /// else (a file, a pipe, a Unix socket: they have no such option).
    pub(super) fn tcp_peer(fd: i32) -> Option<(u16, bool)> {
        let nodelay = getsockopt(fd, TcpNoDelay).ok()?;
        let peer = getpeername::<SockaddrStorage>(fd).ok()?;
        let port = peer
            .as_sockaddr_in()
            .map(SockaddrIn::port)
            .or_else(|| peer.as_sockaddr_in6().map(SockaddrIn6::port))?;
        Some((port, nodelay))
    }

    pub(super) fn set_nodelay(fd: i32) -> bool {
        setsockopt(fd, TcpNoDelay, &true).is_ok()
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn tcp_peer(_fd: i32) -> Option<(u16, bool)> {
        None
    }

    pub(super) fn set_nodelay(_fd: i32) -> bool {
        false
    }
}
