"""The local lab: a real, throwaway, single-node SEAPATH-like cluster on loopback.

Ceph (mon, mgr, one bluestore OSD on a sparse file), libvirtd + virtlogd with QEMU, and corosync +
pacemaker with an ``ocf:seapath:VirtualDomain`` agent, all under one directory. The tests, the demo
and the benchmarks run against it; core and the console never import it.
"""
