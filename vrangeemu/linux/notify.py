"""The seccomp user-notification listener: receive a trapped call, answer it."""
import errno
import os

from .._native import ffi, lib


class Listener:
    """Wraps the listener fd; one reusable notification buffer (hot path)."""

    def __init__(self, fd):
        self.fd = fd
        self._notif = ffi.new("struct seccomp_notif *")

    def recv(self):
        """(id, tid, nr, args) of the next call, or None if it vanished (ENOENT)."""
        n = self._notif
        rc = lib.vr_notif_recv(self.fd, n)
        if rc:
            if rc in (-errno.ENOENT, -errno.EINTR):
                return None
            raise OSError(-rc, os.strerror(-rc))
        return n.id, n.pid, n.data.nr, list(n.data.args)

    def valid(self, notif_id):
        """True while the calling thread still waits for this answer."""
        return lib.vr_notif_id_valid(self.fd, notif_id) == 0

    def send(self, notif_id, value, err=0, continue_=False):
        """Answer a call (or, with `continue_`, let the real syscall run);
        False if the caller is gone (ENOENT)."""
        flags = lib.SECCOMP_USER_NOTIF_FLAG_CONTINUE if continue_ else 0
        rc = lib.vr_notif_send(self.fd, notif_id, value, -err, flags)
        if rc and rc != -errno.ENOENT:
            raise OSError(-rc, os.strerror(-rc))
        return rc == 0

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
