#!/bin/bash
# Fill .gpu/ (git-ignored via .git/info/exclude) with what a bare GPU machine lacks to run
# dama_det: the pure-Python packages of this checkout's .venv (detectron2 as
# tools/install_detectron2.py built it, fvcore, iopath, yacs, termcolor, omegaconf, hydra,
# antlr4, submitit), Python-3.12 wheels of the compiled COCO tools, and DSB2018.
# The machine's image provides torch, torchvision, timm, scikit-image, tifffile, opencv.
#   bash benchmarks/gpu/prepare_carry.sh [PYTHON_VERSION=3.12]
# Then run benchmarks/gpu/device_run.sh there with `.gpu` carried (about 32 MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${1:-3.12}
grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .gpu/site && mkdir -p .gpu/site .gpu/whl
for p in detectron2 fvcore iopath yacs termcolor omegaconf hydra antlr4 submitit; do
  cp -r "$SITE/$p" .gpu/site/
done
find .gpu/site -name __pycache__ -type d -exec rm -rf {} +
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
  "pycocotools==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("pycocotools"))')" \
  "faster-coco-eval==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("faster-coco-eval"))')"
rm -rf .gpu/dsb2018 && cp -r ../shared/data/dsb2018 .gpu/dsb2018
du -sh .gpu
