"""Run every benchmark (JSON lines on stdout). Usage: python benchmarks/run.py [--quick]"""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
for script in sorted(here.glob("bench_*.py")):
    print(f"# {script.name}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=True)
