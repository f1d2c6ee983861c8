"""Run a command; print its wall time and peak RSS as JSON on stderr's last line.

A separate, small (stdlib-only) parent, because Linux carries a parent's peak RSS
into a forked child's ru_maxrss: measured from a parent that holds librosa, every
child would look as large as the parent.
"""

import json
import os
import subprocess
import sys
import time

t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - t0,
                  "maxrss_mb": usage.ru_maxrss / 1024.0}))
