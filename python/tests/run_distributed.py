"""CTest's launcher of examples/torch_distributed_sharded.py on N processes:
``run_distributed.py N script [script args...]``.

It runs ``python -m torch.distributed.run --nproc_per_node N`` on 127.0.0.1 with a free port
(gloo on the loopback interface, GLOO_SOCKET_IFNAME=lo, unless set), and
passes only when the example printed its PASSED line and every process exited 0. When torch, its
torch.distributed or the gloo backend is missing it prints why and exits 77, which CTest reports
as skipped (SKIP_RETURN_CODE), never as passed.

Debian 12's torch 1.13 under Python 3.11: torch.distributed.run's default ``--redirects 0`` /
``--tee 0`` parse to None there (Std.from_str; Python 3.11's enum iteration skips the zero flag)
and the launcher dies with "'NoneType' object has no attribute 'get'"; this launcher then passes
``--redirects 1 --tee 1`` (stdout to a log file and to the console), which parse correctly.
"""

import os
import socket
import subprocess
import sys

SKIP = 77


def main():
    if len(sys.argv) < 3:
        print("usage: run_distributed.py N script [args...]", file=sys.stderr)
        return 2
    nproc, script, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        import torch.distributed as dist
    except ImportError as e:
        print("SKIPPED: torch is not installed (%s); Debian: apt-get install python3-torch" % e)
        return SKIP
    if not dist.is_available():
        print("SKIPPED: this torch (%s) was built without torch.distributed"
              % sys.modules["torch"].__version__)
        return SKIP
    if not dist.is_gloo_available():
        print("SKIPPED: this torch (%s) has torch.distributed but not its gloo backend"
              % sys.modules["torch"].__version__)
        return SKIP
    extra = []
    from torch.distributed.elastic.multiprocessing.api import Std
    if Std.from_str("0") is None:
        extra = ["--redirects", "1", "--tee", "1"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", nproc,
           "--master_addr", "127.0.0.1", "--master_port", str(port)] + extra + [script] + rest
    env = dict(os.environ)
    # gloo's connections stay on the loopback interface (else it takes the hostname's address)
    if "GLOO_SOCKET_IFNAME" not in env and os.path.exists("/sys/class/net/lo"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    print(" ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600, env=env)
    print(r.stdout, flush=True)
    if r.returncode != 0:
        print("FAILED: torch.distributed.run exited %d" % r.returncode)
        return 1
    if not any("PASSED: %s ranks" % nproc in line for line in r.stdout.splitlines()):
        print("FAILED: the example did not print its PASSED line for %s ranks" % nproc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
