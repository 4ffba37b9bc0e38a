//! Just enough rtnetlink (a raw `NETLINK_ROUTE` socket, messages built by
//! hand) to set up a container's network without running `ip`: named
//! network namespaces, a veth pair with one end moved into the namespace
//! and enslaved to the bridge (isolated port), addresses, routes, links up,
//! and link deletion. Each call sends its messages in one `sendmsg` and
//! reads one acknowledgement per message.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_ISOLATED: u16 = 33;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const HDR: usize = 16;
const IFINFO: usize = 16;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message under construction.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; HDR];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
    }

    /// `struct ifinfomsg` (family, type, index, flags, change).
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) -> &mut Msg {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn str_attr(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    fn begin(&mut self, ty: u16) -> &mut Msg {
        self.pad();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        self.pad();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A `NETLINK_ROUTE` socket, bound to the network namespace it was opened
/// in (for ever, whatever the thread's namespace later).
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid (pid 0: the kernel picks).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: valid address of the right size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // A kernel that never answers must not hang a DEA thread.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: valid option value of the right size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        Ok(Rtnl { fd, seq: 0 })
    }

    /// Sends `msgs` at once and waits for every acknowledgement; the first
    /// error wins (later messages are still processed by the kernel).
    /// `on_reply` sees the payload of every non-ack reply.
    fn call(&mut self, msgs: Vec<Msg>, mut on_reply: impl FnMut(u16, &[u8])) -> io::Result<()> {
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        let count = msgs.len() as u32;
        for m in msgs {
            self.seq = self.seq.wrapping_add(1);
            out.extend(m.finish(self.seq));
        }
        // SAFETY: valid buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), out.as_ptr().cast(), out.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut acked = 0u32;
        let mut err: Option<io::Error> = None;
        let mut buf = vec![0u8; 32 * 1024];
        while acked < count {
            // SAFETY: valid buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= HDR {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < HDR || len > rest.len() {
                    break;
                }
                let payload = &rest[HDR..len];
                let ours = seq.wrapping_sub(first) < count;
                if ty == NLMSG_ERROR && payload.len() >= 4 && ours {
                    let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    acked += 1;
                    if code != 0 && err.is_none() {
                        err = Some(io::Error::from_raw_os_error(-code));
                    }
                } else if ours {
                    on_reply(ty, payload);
                }
                rest = &rest[align(len).min(rest.len())..];
            }
        }
        err.map_or(Ok(()), Err)
    }

    /// The index of the link `name` in this socket's namespace.
    pub fn link_index(&mut self, name: &str) -> io::Result<i32> {
        let mut m = Msg::new(RTM_GETLINK, 0);
        m.ifinfo(0, 0, 0).str_attr(IFLA_IFNAME, name);
        let mut index = None;
        self.call(vec![m], |ty, p| {
            if ty == RTM_NEWLINK && p.len() >= IFINFO {
                index = Some(i32::from_ne_bytes([p[4], p[5], p[6], p[7]]));
            }
        })?;
        index.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {name}")))
    }

    /// A veth pair `host` ⇄ `peer`: `peer` created directly in the
    /// namespace `netns`, `host` enslaved to the bridge `master` as an
    /// isolated port, and up.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        netns: RawFd,
        master: i32,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, IFF_UP, IFF_UP)
            .str_attr(IFLA_IFNAME, host)
            .attr(IFLA_MASTER, &(master as u32).to_ne_bytes())
            .begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER)
            .ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, peer)
            .attr(IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes())
            .end()
            .end()
            .end();
        let mut iso = Msg::new(RTM_NEWLINK, 0);
        iso.ifinfo(0, 0, 0)
            .str_attr(IFLA_IFNAME, host)
            .begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_SLAVE_KIND, "bridge")
            .begin(IFLA_INFO_SLAVE_DATA)
            .attr(IFLA_BRPORT_ISOLATED, &[1])
            .end()
            .end();
        self.call(vec![m, iso], |_, _| {})
    }

    /// Inside a fresh namespace: `lo` and `dev` up, `addr/prefix` on `dev`,
    /// default route via `gateway`.
    pub fn configure(
        &mut self,
        dev: &str,
        addr: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> io::Result<()> {
        let index = self.link_index(dev)?;
        let mut lo = Msg::new(RTM_NEWLINK, 0);
        lo.ifinfo(0, IFF_UP, IFF_UP).str_attr(IFLA_IFNAME, "lo");
        let mut a = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index
        a.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, RT_SCOPE_UNIVERSE]);
        a.buf.extend_from_slice(&(index as u32).to_ne_bytes());
        a.attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        let mut up = Msg::new(RTM_NEWLINK, 0);
        up.ifinfo(index, IFF_UP, IFF_UP);
        let mut r = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        // scope, type, flags
        r.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        ]);
        r.buf.extend_from_slice(&0u32.to_ne_bytes());
        r.attr(RTA_GATEWAY, &gateway.octets());
        self.call(vec![lo, a, up, r], |_, _| {})
    }

    /// Deletes the link `name` (a veth takes its peer along).
    pub fn del_link(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_DELLINK, 0);
        m.ifinfo(0, 0, 0).str_attr(IFLA_IFNAME, name);
        self.call(vec![m], |_, _| {})
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `/run/netns` as `ip netns` keeps it: a shared mount, so that deleting a
/// namespace there also unmounts it in mount namespaces copied from the
/// host.
fn prepare_netns_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let d = cpath(dir)?;
    // SAFETY: valid strings.
    unsafe {
        if libc::mount(
            c"none".as_ptr(),
            d.as_ptr(),
            c"none".as_ptr(),
            libc::MS_SHARED | libc::MS_REC,
            std::ptr::null(),
        ) == 0
        {
            return Ok(());
        }
        // Not a mount point yet: bind it on itself first.
        check(libc::mount(
            d.as_ptr(),
            d.as_ptr(),
            c"none".as_ptr(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"none".as_ptr(),
            d.as_ptr(),
            c"none".as_ptr(),
            libc::MS_SHARED | libc::MS_REC,
            std::ptr::null(),
        ))
    }
}

/// A new network namespace kept by a bind mount on `path` (as `ip netns
/// add`), with an rtnetlink socket inside it. Done on a short-lived thread
/// (`unshare(CLONE_NEWNET)` only affects the calling thread, which then
/// ends).
pub fn create_netns(path: &Path) -> io::Result<(OwnedFd, Rtnl)> {
    static PREPARED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !PREPARED.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(dir) = path.parent() {
            prepare_netns_dir(dir)?;
        }
        PREPARED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let p = cpath(path)?;
    // SAFETY: valid path; creates the mount point file.
    let fd = unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we close at once.
    unsafe { libc::close(fd) };
    let made = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("netns".into())
            .spawn_scoped(s, || -> io::Result<(OwnedFd, Rtnl)> {
                // SAFETY: affects this thread only; it ends right after.
                check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
                let rtnl = Rtnl::open()?;
                // SAFETY: valid strings; binds this thread's namespace.
                check(unsafe {
                    libc::mount(
                        c"/proc/thread-self/ns/net".as_ptr(),
                        p.as_ptr(),
                        c"none".as_ptr(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                })?;
                // SAFETY: valid path.
                let ns = unsafe {
                    libc::open(
                        c"/proc/thread-self/ns/net".as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    )
                };
                if ns < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor we own.
                Ok((unsafe { OwnedFd::from_raw_fd(ns) }, rtnl))
            })
            .and_then(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
            })
    });
    if made.is_err() {
        let _ = delete_netns(path);
    }
    made
}

/// `ip netns del`: unmounts and removes the namespace's file (the
/// namespace itself goes when nothing else holds it).
pub fn delete_netns(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: valid path.
    unsafe {
        libc::umount2(p.as_ptr(), libc::MNT_DETACH);
    }
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nested_attributes() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE);
        m.ifinfo(0, IFF_UP, IFF_UP)
            .str_attr(IFLA_IFNAME, "ab")
            .begin(IFLA_LINKINFO)
            .str_attr(IFLA_INFO_KIND, "veth")
            .end();
        let b = m.finish(7);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 7);
        // header, ifinfomsg, IFNAME (4 + 3 → 8), LINKINFO (4 + KIND 4 + 5 → 12)
        assert_eq!(b.len(), HDR + IFINFO + 8 + 4 + 12);
        let nest = HDR + IFINFO + 8;
        assert_eq!(u16::from_ne_bytes([b[nest], b[nest + 1]]), 4 + 12);
        assert_eq!(
            u16::from_ne_bytes([b[nest + 2], b[nest + 3]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }
}
