"""May a page shared copy-on-write be discarded?  (pure)

After fork(2) parent and child map the same physical page until one of them
writes it.  Discarding it in one process frees nothing and loses that
process's copy, so the kernel patches discarded such a page only if EVERY
process mapping it had it in a volatile range; then from all of them.
The caller reads the facts (pagemap PFNs, /proc/kpagecount) and this module
decides.

>>> from vrangeemu.model.space import AddressSpace
>>> a, b = AddressSpace(1, "a"), AddressSpace(2, "b")
>>> a.ranges.mark(0, 4096); b.ranges.mark(0, 4096)
>>> sharers_if_discardable(0, a, [b], mapcount=2) == [a, b]
True
"""


def volatile_unpurged(space, addr, page=4096):
    """True if `addr`'s page is in a volatile range of `space` and not purged."""
    return bool(space.ranges.overlapping(addr, addr + page)) and \
        not space.ranges.is_purged(addr, addr + page)


def sharers_if_discardable(addr, owner, others, mapcount):
    """The spaces to discard the page at `addr` from, or None to keep it.

    `owner` has the page volatile (it is being purged); `others` are the
    traced spaces seen mapping the same physical page at the same address;
    `mapcount` is how many mappings the kernel counts for it.  Keep the page
    if anyone else maps it (an untraced process, or one at another address:
    the count is higher than what we found) or if any sharer still needs it
    (not volatile there, or already purged there, so its copy is in use)."""
    sharers = [owner, *others]
    if mapcount != len(sharers):
        return None
    if not all(volatile_unpurged(sp, addr) for sp in sharers):
        return None
    return sharers
