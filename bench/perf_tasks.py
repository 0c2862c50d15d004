#!/usr/bin/env python3
"""A server profile's samples grouped by the tokio task they ran in.

    perf record -F 4999 -e cpu-clock -g --call-graph dwarf,16384 -o OUT.data -p PID -- sleep 6
    perf script -i OUT.data -F ip,sym > OUT.script
    perf_tasks.py OUT.script [ROWS]

Use the profiling build (`cargo build --profile profiling`) so that inlined frames have
names. A sample belongs to the task whose future the runtime was polling: the first frame
that is not a wrapper (instrumentation, cancellation, the task tracker, std or core)
leafward of tokio's `Core::poll`. Samples outside any task (the runtime parked in the I/O
driver, waking tasks) are grouped by what they were doing. Two runs of the same load over
the same window compare directly by samples: docs/performance.md compares WebSocket's one
writer task per receiver against Socket.IO's two this way.
"""

import collections
import re
import sys

WRAPPERS = ("tokio_util::", "tracing::instrument", "core::", "std::", "<core::",
            "<tokio_util", "<tracing", "futures_util", "<futures")


def stacks(path):
    stack = []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if not line:
            if stack:
                yield stack
            stack = []
            continue
        parts = line.split(" ", 1)
        stack.append(parts[1] if len(parts) > 1 else parts[0])
    if stack:
        yield stack


def clean(frame):
    frame = re.sub(r" \(inlined\)$", "", frame)
    return re.sub(r"::\{\{closure\}\}", "", frame)[:90]


def task_of(stack):
    for i, frame in enumerate(stack):
        if "tokio::runtime::task::core::Core<T,S>::poll" in frame:
            for inner in reversed(stack[:i]):
                name = clean(inner)
                if not name.startswith(WRAPPERS) and "tokio::runtime" not in name:
                    return name
            return "(a wrapper only)"
    outer = clean(stack[-2] if len(stack) > 1 else stack[0])
    return f"(outside a task: {outer[:60]})"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    counts = collections.Counter(task_of(s) for s in stacks(sys.argv[1]))
    total = sum(counts.values())
    print(f"{total} samples")
    print("| task | samples | share |")
    print("|---|---:|---:|")
    for name, n in counts.most_common(rows):
        print(f"| `{name}` | {n} | {100 * n / total:.1f} % |")


if __name__ == "__main__":
    main()
