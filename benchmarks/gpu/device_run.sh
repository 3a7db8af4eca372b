#!/bin/bash
# On a GPU machine, with `.gpu` carried (benchmarks/gpu/prepare_carry.sh): install the
# carried packages, put DSB2018 where the descriptions expect it, run the test suite
# (verbose, to $OUT/pytest.txt, so that a time limit still leaves each test's outcome),
# then a comparison description. Files for $OUT: pytest.txt, results.md/.json,
# status.json, logs.tgz (logs, metrics, pretraining log.jsonl).
#   bash benchmarks/gpu/device_run.sh DESCRIPTION [TEST_SECONDS=240] [COMPARE_ARGS...]
# With COMPARE_ARGS the description runs through benchmarks/transfer/parallel_compare.py
# (e.g. --jobs 4 --deadline-min 30), else through `dama-det compare`.
export PYTHONUNBUFFERED=1
DESC=$1; TEST_SECONDS=${2:-240}; shift; [ $# -gt 0 ] && shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=$PWD:$PWD/.gpu/site:/tmp/site
mkdir -p ../shared/data && ln -sfn "$PWD/.gpu/dsb2018" ../shared/data/dsb2018 || exit 4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, detectron2, dama_det; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 5
if [ "$TEST_SECONDS" -gt 0 ]; then
  timeout "$TEST_SECONDS" python3 -m pytest -v -p no:cacheprovider -n 12 --timeout 120 tests > "$OUT/pytest.txt" 2>&1
  grep -E " (FAILED|ERROR) " "$OUT/pytest.txt" | sort | uniq | head -40
  grep -cE " PASSED " "$OUT/pytest.txt"
fi
[ -n "$DESC" ] || exit 0
C=/tmp/compare
if [ $# -gt 0 ]; then
  python3 benchmarks/transfer/parallel_compare.py "$DESC" --out $C "$@" 2>&1 | grep -v "^\[skip\]" | tee "$OUT/compare.txt"
else
  python3 -m dama_det compare "$DESC" --out $C 2>&1 | grep -v "^\[skip\]" | tee "$OUT/compare.txt"
fi
rc=${PIPESTATUS[0]}
cp $C/results.md $C/results.json $C/status.json "$OUT/" 2>/dev/null
(cd $C && tar czf "$OUT/logs.tgz" parallel eval/*/metrics.json runs/*/seed*/pretrain/log.jsonl runs/*/seed*/detector/metrics.json 2>/dev/null)
exit $rc
