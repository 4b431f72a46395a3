#!/usr/bin/env bash
# Before a GPU session, here (where PyPI is reachable): the wheels the GPU machine's image lacks, for its
# Python 3.12, into .whl/ (ignored by git, carried to the machine). The image already holds torch, numpy,
# scipy, pandas, scikit-learn, typer, rich, safetensors, einops, pyyaml, matplotlib and the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl \
  monai==1.6.1 nibabel==5.4.2 nilearn==0.14.1 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 \
  dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 zict==3.0.0 tornado==6.6.1 \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.7.0 typing-inspection==0.4.5 google-crc32c==1.9.0
du -sh .whl
