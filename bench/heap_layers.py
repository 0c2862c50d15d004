#!/usr/bin/env python3
"""Per-session heap by layer, from two heaptrack peak flame graphs.

    heap_layers.py SMALL.stacks LARGE.stacks N

SMALL and LARGE are `heaptrack_print --print-flamegraph F --flamegraph-cost-type peak`
outputs of the same server holding N and 2N idle sessions. Each line is a call stack
(outermost frame first, `;`-separated) and the bytes it held at the heap's peak. The
difference between the two runs, divided by N, is what one more session costs; the
fixed costs (the runtime, the endpoint's buffers) cancel out.

Each allocation is charged to the innermost frame that belongs to a library with a
stake in it, skipping the allocator, the standard library, containers and the runtime
(tokio, tokio-util, tracing): a channel or a task that wtransport creates is
wtransport's, one that jam-server spawns is jam-server's.
"""

import collections
import re
import sys

PASS_THROUGH = {
    "alloc", "core", "std", "hashbrown", "bytes", "slab", "smallvec", "tinyvec",
    "indexmap", "arrayvec", "tokio", "tokio_util", "tracing",
}
LAYERS = {
    "quinn": "QUIC (quinn)",
    "quinn_proto": "QUIC (quinn)",
    "quinn_udp": "QUIC (quinn)",
    "rustls": "TLS (rustls, ring)",
    "ring": "TLS (rustls, ring)",
    "wtransport": "HTTP/3 + WebTransport (wtransport)",
    "wtransport_proto": "HTTP/3 + WebTransport (wtransport)",
}


def load(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        cut = line.rfind(" ")
        if cut < 0:
            continue
        frames = [re.sub(r" \([^()]*\)$", "", f) for f in line[:cut].split(";")]
        yield frames, int(line[cut + 1:])


def crate_of(frame):
    """The crate a (legacy- or v0-mangled, demangled or not) frame belongs to."""
    plain = frame.replace("_$LT$", "").replace("$LT$", "<")
    m = re.match(r"([a-z_][a-z0-9_]*)(::|\.\.)", plain)
    if m:
        return m.group(1)
    m = re.search(r"Cs[0-9a-zA-Z]*_(\d+)([a-z_][a-z0-9_]*)", frame)
    if m:
        return m.group(2)[: int(m.group(1))]
    return None


def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("..", "::"),
                 ("$u7b$$u7b$closure$u7d$$u7d$", "{closure}"), ("$C$", ","), ("$RF$", "&")):
        frame = frame.replace(a, b)
    return frame.lstrip("_")[:110]


def owner(frames):
    for frame in reversed(frames):
        crate = crate_of(frame)
        if crate and crate not in PASS_THROUGH and not crate.startswith("__"):
            return crate, frame
    return None, ""


def per_session(small, large, n, key):
    a, b = collections.Counter(), collections.Counter()
    for frames, cost in load(small):
        a[key(frames)] += cost
    for frames, cost in load(large):
        b[key(frames)] += cost
    return {k: (b[k] - a[k]) / n for k in set(a) | set(b)}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    small, large, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def layer(frames):
        crate, _ = owner(frames)
        if crate is None:
            return "other (unattributed)"
        if crate.startswith("jam_"):
            return "jam-server"
        return LAYERS.get(crate, f"other ({crate})")

    def site(frames):
        crate, frame = owner(frames)
        return short(frame) if crate else "(unattributed)"

    layers = per_session(small, large, n, layer)
    print(f"| layer | KiB per idle session |")
    print(f"|---|---:|")
    for name, v in sorted(layers.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 51.2:
            print(f"| {name} | {v / 1024:.1f} |")
    print(f"| **total** | **{sum(layers.values()) / 1024:.1f}** |")
    print()
    sites = per_session(small, large, n, site)
    print("| call site (innermost frame with a stake) | bytes per idle session |")
    print("|---|---:|")
    for name, v in sorted(sites.items(), key=lambda kv: -abs(kv[1]))[:25]:
        print(f"| `{name}` | {v:.0f} |")


if __name__ == "__main__":
    main()
