"""``python -m bench._launch MODULE ARGS…``: run ``python -m MODULE ARGS…`` and, at exit, write the
process's peak resident set (``VmHWM`` of /proc/self/status, kB) to ``$SIGMABATCH_BENCH_RSS_FILE``.

Needed because ``ru_maxrss`` of a child counts the pages it inherited from the (large) benchmark process
at fork time; ``VmHWM`` of the exec-ed image covers the phase's own memory only.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def _write_hwm() -> None:
    path = os.environ.get("SIGMABATCH_BENCH_RSS_FILE")
    if not path:
        return
    try:
        with open("/proc/self/status") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        with open(path, "w") as out:
            out.write(str(kb))
    except (OSError, StopIteration):  # not Linux: no figure
        pass


if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    atexit.register(_write_hwm)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
