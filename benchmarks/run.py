"""Run every benchmark (JSON lines on stdout). Usage: python benchmarks/run.py [--quick]

Skipped: ``bench_gpu.py`` (the GPU check, run by ``benchmarks/gpu_check.sh`` on a GPU machine) and
``bench_samplers.py`` (it compares samplers on a checkpoint you give it, e.g. one from ``bench_quality.py``).
"""

import subprocess
import sys
from pathlib import Path

SKIP = {"bench_gpu.py": "needs a GPU: benchmarks/gpu_check.sh", "bench_samplers.py": "needs a checkpoint argument"}

here = Path(__file__).parent
for script in sorted(here.glob("bench_*.py")):
    if script.name in SKIP:
        print(f"# {script.name}: skipped ({SKIP[script.name]})", file=sys.stderr, flush=True)
        continue
    print(f"# {script.name}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=True)
