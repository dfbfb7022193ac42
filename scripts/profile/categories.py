#!/usr/bin/env python3
"""categories.py SAMPLES: the CPU samples of Holdfast's processes by cost category.

SAMPLES is `perf script -F comm,pid,ip,sym,dso` output. A sample belongs to Holdfast when
its thread is a tokio worker or named `holdfast*` (processes with under 1 % of
the samples are left out); the first matching rule below
names its category (symbols are matched in order, the kernel's by subsystem). Prints the
share of each category over all Holdfast samples and per process (pid), and each process's
share of the samples, so the leader's and the followers' costs can be told apart.
"""
import collections
import re
import sys

RULES = [
    ("state machine (apply, lookups)", r"holdfast_statemachine|probetable|idmap|RowIndex"),
    ("RocksDB (log write, WAL)", r"rocksdb"),
    ("openraft core and replication", r"openraft"),
    ("peer RPC (tonic, h2, prost)", r"tonic::|h2::|prost|holdfast_raft::network|holdfast_raft::server|RaftService|PeerService"),
    ("HTTP/1.1 edge (hyper, axum, middleware, rate limit)",
     r"hyper::|axum|tower|http::|httparse|holdfast_node::app|holdfast_node::rate|governor|dashmap|holdfast_node::auth"),
    ("JSON (serde_json)", r"serde_json|serde::|ryu|itoa"),
    ("bincode (log and peer encoding)", r"bincode"),
    ("allocator and copies (mimalloc, memmove)", r"^_?mi_|malloc|^free|memmove|memcpy|memset|memcmp|realloc"),
    ("async runtime (tokio tasks, wakeups, channels)",
     r"tokio::|parking_lot|mio::|epoll|AtomicWaker|Condvar|futures_util|Semaphore"),
    ("metrics, tracing, clocks", r"metrics|tracing|clock_gettime|vdso|read_tsc"),
    ("node service layer and replica", r"holdfast_node|holdfast_raft"),
]
KERNEL = [
    ("kernel: TCP over loopback", r"tcp|inet|sock|ip_|skb|net_|__dev|loopback|napi|softirq|sk_"),
    ("kernel: disk, fsync, page cache", r"ext4|jbd2|blk|bio|virtio|iowrite|fsync|filemap|folio|page|writeback"),
    ("kernel: syscalls, scheduler, other", r"."),
]
LINE = re.compile(r"\s*(.+?)\s+(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")


def category(sym, dso):
    rules = KERNEL if "kernel" in dso else RULES
    for name, pattern in rules:
        if re.search(pattern, sym):
            return name
    return "other (std, libc)"


def main():
    per_pid = collections.defaultdict(collections.Counter)
    for line in open(sys.argv[1], errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, sym, dso = m.groups()
        if not (comm.startswith("tokio-rt") or comm.startswith("holdfast")):
            continue
        per_pid[pid][category(sym, dso)] += 1
    counts = {p: sum(c.values()) for p, c in per_pid.items()}
    # Threads of other programs named like tokio's (a test binary, say) are left out.
    pids = sorted((p for p in counts if counts[p] * 100 >= sum(counts.values())),
                  key=lambda p: -counts[p])
    totals = {p: counts[p] for p in pids}
    total = sum(totals.values())
    if not total:
        sys.exit("no Holdfast samples")
    every = collections.Counter()
    for p in pids:
        every.update(per_pid[p])
    print(f"{total} samples; per process: " + ", ".join(f"pid {p} {totals[p] * 100 / total:.0f} %" for p in pids))
    print(f"{'category':52} {'all':>6}   " + "  ".join(f"{'pid ' + p:>10}" for p in pids))
    for name, n in every.most_common():
        cells = "  ".join(f"{per_pid[p][name] * 100 / totals[p]:9.1f}%" for p in pids)
        print(f"{name:52} {n * 100 / total:5.1f}%   {cells}")


if __name__ == "__main__":
    main()
