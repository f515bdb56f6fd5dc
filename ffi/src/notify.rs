//! A file descriptor that is readable while a poll-mode object has events
//! pending: an eventfd on Linux, a pipe on other Unix systems.

use std::io;

/// The readiness descriptor of one poll-mode object. Owned by the object;
/// closed when it is dropped.
#[derive(Debug)]
pub(crate) struct Notifier {
    read_fd: i32,
    write_fd: i32,
}

#[cfg(target_os = "linux")]
impl Notifier {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            read_fd: fd,
            write_fd: fd,
        })
    }

    /// Makes the descriptor readable.
    pub(crate) fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        unsafe { libc::write(self.write_fd, (&one as *const u64).cast(), 8) };
    }

    /// Makes the descriptor unreadable again.
    pub(crate) fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own eventfd.
        unsafe { libc::read(self.read_fd, (&mut v as *mut u64).cast(), 8) };
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
impl Notifier {
    pub(crate) fn new() -> io::Result<Self> {
        let mut fds = [0i32; 2];
        // SAFETY: plain syscalls on fds owned by the returned value.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Self {
            read_fd: fds[0],
            write_fd: fds[1],
        })
    }

    pub(crate) fn raise(&self) {
        let b = 1u8;
        // SAFETY: one byte into our own pipe.
        unsafe { libc::write(self.write_fd, (&b as *const u8).cast(), 1) };
    }

    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live buffer from our own non-blocking pipe.
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(not(unix))]
impl Notifier {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            read_fd: -1,
            write_fd: -1,
        })
    }
    pub(crate) fn raise(&self) {}
    pub(crate) fn clear(&self) {}
}

impl Notifier {
    /// The descriptor to wait on (-1 where unsupported).
    pub(crate) fn fd(&self) -> i32 {
        self.read_fd
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: we own these descriptors and close each exactly once.
        unsafe {
            libc::close(self.read_fd);
            if self.write_fd != self.read_fd {
                libc::close(self.write_fd);
            }
        }
    }
}
